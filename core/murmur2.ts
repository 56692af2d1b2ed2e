/**
 * The partition a Java producer (and Kafka Streams, Kafka Connect, KafkaJS) picks for a key:
 * murmur2 of the key's UTF-8 bytes, made positive, modulo the partition count
 * (org.apache.kafka.common.utils.Utils.murmur2 and BuiltInPartitioner). librdkafka's
 * murmur2_random partitioner, which the pipeline's producers use, is the same function.
 */
export function murmur2(data: Uint8Array): number {
  const seed = 0x9747b28c;
  const m = 0x5bd1e995;
  const length = data.length;
  let h = (seed ^ length) | 0;
  const whole = length & ~3;
  for (let i = 0; i < whole; i += 4) {
    let k = (data[i]! & 0xff) | ((data[i + 1]! & 0xff) << 8) | ((data[i + 2]! & 0xff) << 16) | ((data[i + 3]! & 0xff) << 24);
    k = Math.imul(k, m);
    k ^= k >>> 24;
    k = Math.imul(k, m);
    h = Math.imul(h, m) ^ k;
  }
  switch (length & 3) {
    case 3:
      h ^= (data[whole + 2]! & 0xff) << 16;
    // falls through
    case 2:
      h ^= (data[whole + 1]! & 0xff) << 8;
    // falls through
    case 1:
      h ^= data[whole]! & 0xff;
      h = Math.imul(h, m);
  }
  h ^= h >>> 13;
  h = Math.imul(h, m);
  h ^= h >>> 15;
  return h | 0;
}

export function javaPartitionOf(key: string, partitionCount: number): number {
  return (murmur2(Buffer.from(key, 'utf8')) & 0x7fffffff) % partitionCount;
}
