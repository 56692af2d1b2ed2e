/** What the stages really committed for one import, read back from Kafka (read_committed). */
import { createHash } from 'node:crypto';
import { createKafka, readCommitted } from '../../core/kafka.js';
import { TopicReader } from '../../core/topic-reader.js';
import { config } from './settings.js';

export type Offsets = Map<number, bigint>;

export async function endOffsets(topic: string): Promise<Offsets> {
  const admin = createKafka(config.kafka, { clientId: 'bench-pipeline' }).admin();
  await admin.connect();
  try {
    // The last stable offsets: the end a read_committed consumer reads to.
    return new Map((await admin.fetchTopicOffsets(topic, { isolationLevel: readCommitted })).map((entry) => [entry.partition, BigInt(entry.high)]));
  } finally {
    await admin.disconnect();
  }
}

/**
 * Committed messages (read_committed) of `topic` between two sets of end offsets whose
 * request_id header is `requestId`: what the stages really wrote for this import, duplicates
 * included — the processor's own counters only count what its runner believes it committed.
 */
export async function countCommitted(topic: string, from: Offsets, to: Offsets, requestId: string): Promise<{ messages: number; distinct: number }> {
  let messages = 0;
  const seen = new Set<string>();
  // Only what follows `from` is fetched (read_committed) and streamed: the shared topics hold
  // every earlier run's events too. What lies past `to` came after the measured work.
  const reader = new TopicReader(config.kafka, topic, { from, groupId: `bench-reader-${process.pid}-${topic}` });
  try {
    await reader.readToEnd(300_000, (message) => {
      if (BigInt(message.offset) >= (to.get(message.partition) ?? 0n)) return;
      if (message.headers.request_id !== requestId) return;
      messages++;
      seen.add(
        createHash('sha1')
          .update(message.value ?? Buffer.alloc(0))
          .digest('hex'),
      );
    });
  } finally {
    await reader.close();
  }
  return { messages, distinct: seen.size };
}
