/**
 * The runners' driver on librdkafka (core/kafka.ts): a read_committed consumer whose
 * committed offsets are fetched with KIP-447's require_stable (librdkafka does so under
 * read_committed), one transactional producer per id whose offsets commit with the consumer's
 * group metadata, and the service's idempotent producer for plain sends.
 */
import type { Consumer, KafkaClients, Producer } from '../../core/kafka.js';
import type { Logger } from '../../core/logger.js';
import type {
  BatchScope,
  CommittedOffset,
  ConsumedRecord,
  ConsumerHandlers,
  ConsumerOptions,
  OffsetCommit,
  OutgoingRecord,
  StageConsumer,
  StageDriver,
  TransactionalProducer,
} from './driver.js';

interface RdKafkaCallbackClient {
  sendOffsetsToTransaction(
    offsets: Array<{ topic: string; partition: number; offset: number; metadata?: string }>,
    consumer: unknown,
    timeoutMs: number,
    callback: (error: unknown) => void,
  ): void;
}

/** Groups records by topic for the client's send. */
function byTopic(records: readonly OutgoingRecord[]): Map<string, Array<{ key: string; value: Buffer; headers: Record<string, string> }>> {
  const topics = new Map<string, Array<{ key: string; value: Buffer; headers: Record<string, string> }>>();
  for (const record of records) {
    let list = topics.get(record.topic);
    if (list === undefined) topics.set(record.topic, (list = []));
    list.push({ key: record.key, value: record.value, headers: record.headers });
  }
  return topics;
}

async function sendAll(producer: Producer, records: readonly OutgoingRecord[]): Promise<void> {
  if (records.length === 0) return;
  // Every send is handed to librdkafka before any is awaited: it batches them by partition.
  await Promise.all([...byTopic(records)].map(([topic, messages]) => producer.send({ topic, messages })));
}

function headersOf(headers: Record<string, unknown> | undefined): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [name, value] of Object.entries(headers ?? {})) {
    if (value === undefined || value === null) continue;
    out[name] = Array.isArray(value) ? String(value[0]) : String(value);
  }
  return out;
}

class KafkaStageConsumer implements StageConsumer {
  readonly consumer: Consumer;
  readonly #options: ConsumerOptions;
  readonly #assigned = new Set<number>();
  /** Start offsets set by onAssigned (sinks resume from their own store). */
  readonly #starts = new Map<number, string>();
  #handlers: ConsumerHandlers | undefined;
  #running = false;

  constructor(
    kafka: KafkaClients,
    options: ConsumerOptions,
    readonly concurrency: number,
    readonly onFatal: ((error: Error) => void) | undefined,
  ) {
    this.#options = options;
    this.consumer = kafka.consumer({
      groupId: options.groupId,
      maxBatchMessages: options.maxBatchMessages,
      maxWaitMs: options.maxWaitMs,
      minBytes: options.minBytes,
      maxBytesPerPartition: options.maxBytesPerPartition,
      onAssigned: (assignment) => this.#onAssigned(assignment),
      onRevoked: (assignment) => this.#onRevoked(assignment),
    });
  }

  get topic(): string {
    return this.#options.topic;
  }

  async #onAssigned(assignment: ReadonlyArray<{ topic: string; partition: number }>): Promise<Array<{ topic: string; partition: number; offset?: number }>> {
    const partitions = assignment.filter((entry) => entry.topic === this.#options.topic).map((entry) => entry.partition);
    for (const partition of partitions) this.#assigned.add(partition);
    this.#starts.clear();
    await this.#handlers?.onAssigned(partitions);
    // An assignment that names offsets starts there instead of at the committed ones.
    return assignment.map((entry) => {
      const start = entry.topic === this.#options.topic ? this.#starts.get(entry.partition) : undefined;
      return start === undefined ? { ...entry } : { ...entry, offset: Number(start) };
    });
  }

  async #onRevoked(assignment: ReadonlyArray<{ topic: string; partition: number }>): Promise<void> {
    const partitions = assignment.filter((entry) => entry.topic === this.#options.topic).map((entry) => entry.partition);
    for (const partition of partitions) this.#assigned.delete(partition);
    await this.#handlers?.onRevoked(partitions);
  }

  async start(handlers: ConsumerHandlers): Promise<void> {
    this.#handlers = handlers;
    this.#running = true;
    await this.consumer.connect();
    const client = (this.consumer as unknown as { _getInternalClient(): { on(event: string, listener: (error: Error & { isFatal?: boolean }) => void): void } })._getInternalClient();
    client.on('event.error', (error) => {
      if (error.isFatal === true) this.onFatal?.(error);
    });
    await this.consumer.subscribe({ topics: [this.#options.topic] });
    await this.consumer.run({
      eachBatchAutoResolve: false,
      partitionsConsumedConcurrently: this.concurrency,
      eachBatch: async (payload) => {
        const { batch } = payload;
        const partition = batch.partition;
        const records: ConsumedRecord[] = batch.messages.map((message) => ({
          offset: message.offset,
          key: message.key ?? null,
          value: message.value ?? null,
          headers: headersOf(message.headers as Record<string, unknown> | undefined),
        }));
        const scope: BatchScope = {
          isActive: () => this.#running && payload.isRunning() && !payload.isStale() && this.#assigned.has(partition),
          resolveOffset: (offset) => payload.resolveOffset(offset),
          // Not the client's pause(): in @confluentinc/kafka-javascript 1.10.1 it marks the batch
          // stale and seeks the partition back to its first unresolved message, so a batch retried
          // in place would end at once (no backoff, attempts never counted) and its messages be
          // fetched again. While the runner waits, librdkafka's prefetch stays bounded by
          // queued.max.messages.kbytes, and the batch keeps its place.
          pause: () => () => undefined,
        };
        await handlers.eachBatch(partition, records, scope);
      },
    });
  }

  async committed(partitions: readonly number[]): Promise<Map<number, CommittedOffset>> {
    const entries = await this.consumer.committed(partitions.map((partition) => ({ topic: this.#options.topic, partition })));
    const result = new Map<number, CommittedOffset>();
    for (const entry of entries) {
      // The client turns a committed offset of 0 into null (a falsy check in its conversion,
      // 1.10.1); "nothing committed" comes through as a negative number (-1001).
      const offset = entry.offset === null ? '0' : Number(entry.offset) >= 0 ? String(entry.offset) : null;
      result.set(entry.partition, { offset, metadata: entry.metadata ?? '' });
    }
    return result;
  }

  seek(partition: number, offset: string): void {
    if (this.#assigned.has(partition)) this.#starts.set(partition, offset);
  }

  async commit(offsets: readonly OffsetCommit[]): Promise<void> {
    await this.consumer.commitOffsets(offsets.map(({ partition, offset }) => ({ topic: this.#options.topic, partition, offset })));
  }

  async stop(): Promise<void> {
    this.#running = false;
    await this.consumer.disconnect();
  }
}

class KafkaTransactionalProducer implements TransactionalProducer {
  constructor(
    readonly producer: Producer,
    readonly consumer: KafkaStageConsumer,
    readonly topic: string,
  ) {}

  async begin() {
    const producer = this.producer;
    await producer.transaction();
    const internal = (producer as unknown as { _getInternalClient(): RdKafkaCallbackClient })._getInternalClient();
    const consumerClient = (this.consumer.consumer as unknown as { _getInternalClient(): unknown })._getInternalClient();
    const topic = this.topic;
    return {
      send: (records: readonly OutgoingRecord[]) => sendAll(producer, records),
      async commit(offsets: readonly OffsetCommit[]) {
        if (offsets.length > 0) {
          // The client's own sendOffsets drops offset metadata, which the partial commits of a
          // big input carry (their resume point): the binding underneath keeps it.
          await new Promise<void>((resolve, reject) => {
            internal.sendOffsetsToTransaction(
              offsets.map(({ partition, offset, metadata }) => ({ topic, partition, offset: Number(offset), ...(metadata === undefined ? {} : { metadata }) })),
              consumerClient,
              30_000,
              (error) => (error ? reject(error) : resolve()),
            );
          });
        }
        await producer.commit();
      },
      abort: () => producer.abort(),
    };
  }

  async close(): Promise<void> {
    await this.producer.disconnect();
  }
}

export interface KafkaDriverOptions {
  /** The service's idempotent producer, for the sinks' events. */
  producer: Producer;
  logger: Logger;
  /** Partitions of one consumer processed at the same time. */
  partitionsConsumedConcurrently?: number;
  /** A client error librdkafka cannot recover from: the process should exit and be restarted. */
  onFatal?: (error: Error) => void;
}

export function createKafkaDriver(kafka: KafkaClients, options: KafkaDriverOptions): StageDriver {
  const consumers = new WeakMap<StageConsumer, KafkaStageConsumer>();
  return {
    consumer(consumerOptions) {
      const consumer = new KafkaStageConsumer(kafka, consumerOptions, options.partitionsConsumedConcurrently ?? 3, options.onFatal);
      consumers.set(consumer, consumer);
      return consumer;
    },
    async transactionalProducer(transactionalId, consumer) {
      const owner = consumers.get(consumer);
      if (owner === undefined) throw new Error('the consumer of a transactional producer must come from the same driver');
      const producer = kafka.transactionalProducer(transactionalId);
      try {
        await producer.connect();
      } catch (error) {
        await producer.disconnect().catch(() => undefined);
        throw error;
      }
      return new KafkaTransactionalProducer(producer, owner, owner.topic);
    },
    send: (records) => sendAll(options.producer, records),
  };
}
