import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { createServer } from 'node:net';
import kafkaJavascript from '@confluentinc/kafka-javascript';
import { loadConfig, type Config } from '../../core/config.js';
import { createKafka, ensureTopics, readCommitted, type Admin, type KafkaClients } from '../../core/kafka.js';
import { partitions, replicationFactor, topicConfig } from '../../core/pipeline.js';

/** Integration tests run against the stack that `make itest-up` started, configured like the services. */
export const config: Config = loadConfig();

export function uniqueName(prefix: string): string {
  return `${prefix}-${Date.now().toString(36)}-${randomBytes(3).toString('hex')}`;
}

export function testKafka(clientId = uniqueName('itest')): KafkaClients {
  return createKafka(config.kafka, { clientId });
}

export async function createTestTopic(admin: Admin, topic: string): Promise<void> {
  await ensureTopics(admin, [topic], { partitions, replicationFactor, config: topicConfig }, { timeoutMs: 60_000 });
}

export async function eventually<T>(
  what: string,
  probe: () => Promise<T | undefined>,
  timeoutMs = 30_000,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown;
  while (Date.now() < deadline) {
    try {
      const value = await probe();
      if (value !== undefined) return value;
    } catch (error) {
      lastError = error;
    }
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
  throw new Error(`timed out waiting for ${what}`, { cause: lastError });
}

/** One committed message as a reader sees it. */
export interface ReadMessage {
  partition: number;
  offset: string;
  key: string | undefined;
  value: Buffer | null;
  headers: Record<string, string>;
}

/**
 * Reads a topic read_committed, partition by partition, up to the end each partition has when
 * the read reaches it (librdkafka's partition EOF, at the last stable offset under read_committed);
 * each `readToEnd()` continues where the last one stopped. "Nothing twice" checks read to the end
 * after the work is done instead of sleeping and counting, so a late duplicate cannot be missed.
 */
export class TopicReader {
  readonly #topic: string;
  readonly #consumer: InstanceType<typeof kafkaJavascript.KafkaConsumer>;
  #connected: Promise<number> | undefined;
  /** Per partition: the offset after the last message read, and the end librdkafka last reported. */
  readonly #next = new Map<number, bigint>();
  readonly #eof = new Map<number, bigint>();

  /**
   * Where each partition starts: the beginning (default), the end when the reader first connects
   * (only what comes after), or given offsets (a partition missing from them starts at 0).
   */
  constructor(topic: string, readonly options: { from?: 'beginning' | 'end' | ReadonlyMap<number, bigint> } = {}) {
    this.#topic = topic;
    this.#consumer = new kafkaJavascript.KafkaConsumer(
      {
        'metadata.broker.list': config.kafka.brokers.join(','),
        'group.id': uniqueName('itest.reader'),
        'enable.auto.commit': false,
        'enable.partition.eof': true,
        'isolation.level': 'read_committed',
      },
      { 'auto.offset.reset': 'earliest' },
    );
    this.#consumer.on('partition.eof', (event: { partition: number; offset: number }) => this.#eof.set(event.partition, BigInt(event.offset)));
  }

  #connect(): Promise<number> {
    this.#connected ??= new Promise<number>((resolve, reject) => {
      this.#consumer.connect({ topic: this.#topic, timeout: 30_000 }, (error, metadata) => {
        if (error) return reject(error);
        const topic = metadata.topics.find((candidate) => candidate.name === this.#topic);
        if (topic === undefined || topic.partitions.length === 0) return reject(new Error(`no topic ${this.#topic}`));
        // librdkafka's logical offset -1 is the end.
        const { from } = this.options;
        const offsetOf = (partition: number) => (from === 'end' ? -1 : from instanceof Map ? Number(from.get(partition) ?? 0n) : 0);
        this.#consumer.assign(topic.partitions.map((partition) => ({ topic: this.#topic, partition: partition.id, offset: offsetOf(partition.id) })));
        resolve(topic.partitions.length);
      });
    });
    return this.#connected;
  }

  /**
   * The messages committed since the last call, up to every partition's end as it is now; with
   * `each`, handed to it one by one instead of returned (for ranges too big to hold).
   */
  async readToEnd(timeoutMs = 60_000, each?: (message: ReadMessage) => void | Promise<void>): Promise<ReadMessage[]> {
    await this.#connect();
    // The end as a read_committed consumer sees it now: the last stable offset of each partition.
    const admin = testKafka().admin();
    await admin.connect();
    let targets: Map<number, bigint>;
    try {
      const ends = await admin.fetchTopicOffsets(this.#topic, { isolationLevel: readCommitted });
      targets = new Map(ends.map((end) => [end.partition, BigInt(end.high)]));
    } finally {
      await admin.disconnect();
    }
    const read: ReadMessage[] = [];
    const deadline = Date.now() + timeoutMs;
    // A partition is read to its target once a message at or past it was read, or librdkafka said
    // it reached the end at or past it (transaction markers take offsets no message has).
    const done = () => [...targets].every(([partition, target]) => target === 0n || (this.#next.get(partition) ?? 0n) >= target || (this.#eof.get(partition) ?? -1n) >= target);
    while (!done()) {
      if (Date.now() > deadline) throw new Error(`reading ${this.#topic} to its end timed out`);
      const messages = await new Promise<Array<{ partition: number; offset: number; key?: Buffer | string | null; value: Buffer | null; headers?: Array<Record<string, unknown>> }>>((resolve, reject) =>
        this.#consumer.consume(1000, (error, batch) => (error ? reject(error) : resolve(batch as never))),
      );
      for (const message of messages) {
        this.#next.set(message.partition, BigInt(message.offset) + 1n);
        const headers: Record<string, string> = {};
        for (const header of message.headers ?? []) for (const [name, value] of Object.entries(header)) headers[name] = String(value);
        const entry = { partition: message.partition, offset: String(message.offset), key: message.key?.toString(), value: message.value, headers };
        if (each === undefined) read.push(entry);
        else await each(entry);
      }
    }
    return read;
  }

  close(): Promise<void> {
    return new Promise((resolve) => {
      if (this.#connected === undefined) return resolve();
      this.#consumer.disconnect(() => resolve());
    });
  }
}

/** Every committed message of a topic now, read to its end. */
export async function readTopic(topic: string): Promise<ReadMessage[]> {
  const reader = new TopicReader(topic);
  try {
    return await reader.readToEnd();
  } finally {
    await reader.close();
  }
}

/**
 * The decoded events of a topic that match, once at least `count` of them are committed: reads
 * read_committed to the end until they are there, so what it returns is everything that matched
 * up to the end of the topic at that moment (a duplicate committed by then is in it).
 */
export async function collectEvents<T>(
  topic: string,
  match: (value: T, message: { key: string | undefined; headers: Record<string, string> }) => boolean,
  options: { count: number; timeoutMs?: number; decode: (buffer: Buffer) => Promise<T> },
): Promise<Array<{ value: T; key: string | undefined; headers: Record<string, string>; partition: number }>> {
  const { count, timeoutMs = 30_000, decode } = options;
  const reader = new TopicReader(topic);
  const found: Array<{ value: T; key: string | undefined; headers: Record<string, string>; partition: number }> = [];
  try {
    await eventually(
      `${count} matching events on ${topic}`,
      async () => {
        for (const message of await reader.readToEnd()) {
          if (message.value === null) continue;
          const value = await decode(message.value);
          if (match(value, message)) found.push({ value, key: message.key, headers: message.headers, partition: message.partition });
        }
        return found.length >= count ? true : undefined;
      },
      timeoutMs,
    );
    return found;
  } finally {
    await reader.close();
  }
}

/**
 * A port nothing listens on now, picked by the kernel (a random number could be an
 * ephemeral port some connection of the stack already uses).
 */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() => (typeof address === 'object' && address !== null ? resolve(address.port) : reject(new Error('no port'))));
    });
  });
}

/**
 * Writes one LZ4-compressed batch of 20 compressible lines to partition 0 with kcat (librdkafka),
 * as Java and librdkafka producers with compression on do; returns the lines. (librdkafka sends
 * a batch uncompressed when compressing does not shrink it, hence compressible lines.)
 */
export function produceLz4Batch(topic: string): string[] {
  const lines = Array.from({ length: 20 }, (_, i) => JSON.stringify({ i, text: 'compressible '.repeat(40) }));
  execFileSync('kcat', ['-P', '-b', config.kafka.brokers[0]!, '-t', topic, '-p', '0', '-z', 'lz4', '-X', 'acks=all'], { input: `${lines.join('\n')}\n` });
  return lines;
}

/** The codecs Kafka producers compress batches with; every consumer of the pipeline must read each. */
export const kafkaCodecs = ['gzip', 'snappy', 'lz4', 'zstd'] as const;

/**
 * Writes `values` as one batch to `partition` with kcat (librdkafka, as a Java or kcat user
 * would), compressed with `codec`, keyed by `key`. Values may be binary (Avro): they are
 * separated by a delimiter no value contains.
 */
export function produceWithKcat(topic: string, values: readonly Buffer[], options: { codec: string; key: string; partition?: number }): void {
  const delimiter = `--etl-${randomBytes(12).toString('hex')}--`;
  const input = Buffer.concat(values.flatMap((value) => [Buffer.from(`${options.key}\t`), value, Buffer.from(delimiter)]));
  execFileSync(
    'kcat',
    ['-P', '-b', config.kafka.brokers[0]!, '-t', topic, '-p', String(options.partition ?? 0), '-z', options.codec, '-K', '\t', '-D', delimiter, '-X', 'acks=all', '-X', 'linger.ms=100'],
    { input },
  );
}

