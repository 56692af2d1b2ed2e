/**
 * Sends a batch one partition at a time.
 *
 * KafkaJS sends a multi-partition batch to every partition leader in parallel and, when one
 * broker's request fails with a retriable error, retries the whole batch. Requests to the
 * other brokers that are still in flight at that moment are sent again with new sequence
 * numbers, so the brokers store them twice (kafkajs 2.2.4, src/producer/sendMessages.js:
 * the retry re-sends every broker without a response yet). In a transaction this happens
 * whenever AddPartitionsToTxn answers CONCURRENT_TRANSACTIONS while the previous commit's
 * markers are still being written; the pipeline saw ~1% duplicated outputs from it.
 *
 * One `send` per partition keeps each send (and its retries) on one broker: a retry re-sends
 * only what failed, with its original sequence numbers, and the broker's idempotence drops
 * repeats. The per-partition sends still run concurrently (KafkaJS serialises the ones that
 * share a broker). Partitions are assigned here with KafkaJS's default partitioner (murmur2
 * of the key), so a key lands on the same partition as with a plain `send`.
 */
import { Partitioners, type Message, type PartitionerArgs, type TopicMessages } from 'kafkajs';

export interface PartitionBatch {
  topic: string;
  partition: number;
  messages: Message[];
}

export type PartitionCountOf = (topic: string) => number;

/** Picks a message's partition like KafkaJS's default partitioner (an explicit partition wins). */
export function partitionAssigner(partitionCountOf: PartitionCountOf): (topic: string, message: Message) => number {
  const partitioner = Partitioners.DefaultPartitioner();
  const metadataOf = new Map<string, PartitionerArgs['partitionMetadata']>();
  return (topic, message) => {
    let partitionMetadata = metadataOf.get(topic);
    if (partitionMetadata === undefined) {
      partitionMetadata = Array.from({ length: partitionCountOf(topic) }, (_, partitionId) => ({
        partitionId,
        leader: 0,
        partitionErrorCode: 0,
        replicas: [],
        isr: [],
      }));
      metadataOf.set(topic, partitionMetadata);
    }
    return message.partition ?? partitioner({ topic, partitionMetadata, message });
  };
}

/** Groups messages by partition, keeping their order within each partition. */
export function splitByPartition(topicMessages: TopicMessages[], partitionCountOf: PartitionCountOf): PartitionBatch[] {
  const partitionOf = partitionAssigner(partitionCountOf);
  const batches = new Map<string, PartitionBatch>();
  for (const { topic, messages } of topicMessages) {
    for (const message of messages) {
      const partition = partitionOf(topic, message);
      const id = `${topic}\u0000${partition}`;
      let batch = batches.get(id);
      if (batch === undefined) {
        batch = { topic, partition, messages: [] };
        batches.set(id, batch);
      }
      batch.messages.push({ ...message, partition });
    }
  }
  return [...batches.values()];
}

/** Anything with KafkaJS's `send`: a producer or a transaction. */
export interface Sender {
  send(record: { topic: string; messages: Message[]; acks?: number }): Promise<unknown>;
}

/**
 * Sends `topicMessages` with acks=all, one send per partition. Waits for every send to settle
 * before failing, so nothing is still in flight when the caller aborts or retries.
 */
export async function sendPerPartition(sender: Sender, topicMessages: TopicMessages[], partitionCountOf: PartitionCountOf): Promise<void> {
  const results = await Promise.allSettled(
    splitByPartition(topicMessages, partitionCountOf).map((batch) => sender.send({ topic: batch.topic, messages: batch.messages, acks: -1 })),
  );
  const failed = results.find((result): result is PromiseRejectedResult => result.status === 'rejected');
  if (failed !== undefined) throw failed.reason;
}
