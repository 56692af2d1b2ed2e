/**
 * The few client operations the stage runners use, and nothing else: a consumer that hands
 * over one partition's batch at a time, transactional producers bound to that consumer's
 * group (KIP-447), and a plain idempotent producer. `kafka-driver.ts` implements it with
 * librdkafka; `testing/memory-driver.ts` in memory, so that the runners' behaviour (poison,
 * retries, resume after a takeover, fencing, shutdown) is proven without a broker, in the
 * spirit of Kafka Streams' TopologyTestDriver.
 */

/** A consumed message as the runners see it. */
export interface ConsumedRecord {
  offset: string;
  key: Buffer | null;
  value: Buffer | null;
  headers: Record<string, string>;
}

/** A message to produce; the driver picks its partition from the key (Java's murmur2) unless `partition` is set. */
export interface OutgoingRecord {
  topic: string;
  key: string;
  value: Buffer;
  headers: Record<string, string>;
  partition?: number;
}

/** An input offset to commit: the next offset to read, with optional metadata. */
export interface OffsetCommit {
  partition: number;
  offset: string;
  metadata?: string;
}

export interface CommittedOffset {
  /** The next offset to read, or null when the group committed nothing for the partition. */
  offset: string | null;
  metadata: string;
}

/** What a runner may do with the batch it is handed. */
export interface BatchScope {
  /** False once the stage stops or the partition was taken away: leave the batch. */
  isActive(): boolean;
  /** The batch's messages up to and including `offset` are done; the rest are handed over again. */
  resolveOffset(offset: string): void;
  /** Stops fetching the partition while the runner waits; the returned function resumes it. */
  pause(): () => void;
}

export interface ConsumerHandlers {
  /** Before the first message of newly assigned partitions is fetched (awaited). */
  onAssigned(partitions: number[]): Promise<void>;
  /** Before partitions go to another member (awaited). */
  onRevoked(partitions: number[]): Promise<void>;
  eachBatch(partition: number, records: ConsumedRecord[], scope: BatchScope): Promise<void>;
}

export interface StageConsumer {
  /** Joins the group and starts handing over batches; resolves once it runs. */
  start(handlers: ConsumerHandlers): Promise<void>;
  /** The group's committed offsets of these partitions (stable: no transaction is left open on them). */
  committed(partitions: readonly number[]): Promise<Map<number, CommittedOffset>>;
  /** Where the partition's next fetch starts (only while it is assigned). */
  seek(partition: number, offset: string): void;
  /** Commits a plain offset outside any transaction (the sinks' hint for lag tools). */
  commit(offsets: readonly OffsetCommit[]): Promise<void>;
  /** Lets the running batches end, leaves the group and disconnects. */
  stop(): Promise<void>;
}

export interface StageTransaction {
  send(records: readonly OutgoingRecord[]): Promise<void>;
  /** Adds the input offsets (with the consumer's group metadata) and commits everything sent. */
  commit(offsets: readonly OffsetCommit[]): Promise<void>;
  abort(): Promise<void>;
}

export interface TransactionalProducer {
  begin(): Promise<StageTransaction>;
  close(): Promise<void>;
}

export interface ConsumerOptions {
  groupId: string;
  topic: string;
  /** Most messages per batch handed over. */
  maxBatchMessages: number;
  /** How long the broker may wait to fill a fetch, and how many bytes it waits for. */
  maxWaitMs: number;
  minBytes: number;
  maxBytesPerPartition: number;
}

export interface StageDriver {
  consumer(options: ConsumerOptions): StageConsumer;
  /**
   * A transactional producer whose offsets commit for `consumer`'s group. Resolves once it is
   * initialised: any earlier producer with the same id is fenced and its open transaction aborted.
   */
  transactionalProducer(transactionalId: string, consumer: StageConsumer): Promise<TransactionalProducer>;
  /** Sends with the shared idempotent producer (acks=all); resolves once every record is acknowledged. */
  send(records: readonly OutgoingRecord[]): Promise<void>;
}
