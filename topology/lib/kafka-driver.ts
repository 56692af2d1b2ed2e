/**
 * The runners' driver on librdkafka (core/kafka.ts): a read_committed consumer whose
 * committed offsets are fetched with KIP-447's require_stable (librdkafka does so under
 * read_committed), one transactional producer per id whose offsets commit with the consumer's
 * group metadata, and the service's idempotent producer for plain sends.
 */
import { committedOffsets, kafkaErrorOf, type Consumer, type KafkaClients, type LibrdkafkaError, type Producer } from '../../core/kafka.js';
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

type BindingCallback = (error: LibrdkafkaError | null | undefined) => void;

/** The binding under the compatible producer: its transaction calls, with librdkafka's errors. */
interface RdKafkaTransactionClient {
  beginTransaction(callback: BindingCallback): void;
  sendOffsetsToTransaction(
    offsets: Array<{ topic: string; partition: number; offset: number; metadata?: string }>,
    consumer: unknown,
    timeoutMs: number,
    callback: BindingCallback,
  ): void;
  commitTransaction(timeoutMs: number, callback: BindingCallback): void;
  abortTransaction(timeoutMs: number, callback: BindingCallback): void;
}

/** How long one transaction call may wait before it is resumed (librdkafka: "retry call to resume"). */
const transactionCallTimeoutMs = 30_000;
/** How long a retriable transaction call is resumed before the producer is given up and reopened. */
const transactionResumeWindowMs = 120_000;
/**
 * How long past its own timeout a call may stay unanswered. librdkafka 2.15.1 does not bound
 * every wait by the call's timeout: send_offsets_to_transaction waits for ever for a group
 * coordinator it has cached when that broker has died and left the metadata (librdkafka
 * issues #5456 and #5511), which stalled a partition for good after a broker's SIGKILL.
 */
const unansweredGraceMs = 15_000;

/** librdkafka's ERR__TIMED_OUT. */
const timedOutCode = -185;

export interface TransactionCallOptions {
  /** The timeout the call itself was given (0: a local call that answers at once). */
  timeoutMs: number;
  /** How long past it the call may stay unanswered before it counts as lost. */
  graceMs?: number;
  /** How long a retriable error is answered by calling again. */
  resumeWindowMs?: number;
  /** Learns of a call that was given up while still unanswered, and of when it answers (if ever). */
  onUnanswered?: (answered: Promise<void>) => void;
}

/**
 * One librdkafka transaction call, called again while its error is retriable (a timed-out
 * commit is still under way: calling it again resumes it, as librdkafka's documentation asks).
 * A call that stays unanswered past its own timeout and the grace fails as fatal: the
 * producer is wedged, and only a new one (fencing it) can go on.
 */
export async function transactionCall(name: string, call: (callback: BindingCallback) => void, options: TransactionCallOptions): Promise<void> {
  const { timeoutMs, graceMs = unansweredGraceMs, resumeWindowMs = transactionResumeWindowMs } = options;
  const deadline = Date.now() + resumeWindowMs;
  for (;;) {
    let timer: NodeJS.Timeout | undefined;
    const answered = new Promise<LibrdkafkaError | undefined>((resolve) => call((failure) => resolve(failure ?? undefined)));
    const unanswered = new Promise<'unanswered'>((resolve) => {
      timer = setTimeout(() => resolve('unanswered'), timeoutMs + graceMs);
    });
    const outcome = await Promise.race([answered, unanswered]);
    clearTimeout(timer);
    if (outcome === 'unanswered') {
      options.onUnanswered?.(answered.then(() => undefined));
      throw kafkaErrorOf(
        {
          message: `librdkafka did not answer ${name} within ${timeoutMs + graceMs} ms (its call timeout ${timeoutMs} ms); the producer is given up`,
          code: timedOutCode,
        },
        { fatal: true },
      );
    }
    const error = outcome;
    if (error === undefined) return;
    const resumable = error.isRetriable === true && error.isFatal !== true && error.isTxnRequiresAbort !== true;
    if (!resumable || Date.now() >= deadline) throw kafkaErrorOf(error);
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
}

/** Groups records by topic for the client's send. */
type OutgoingMessage = { key: string; value: Buffer; headers: Record<string, string>; partition?: number };

function byTopic(records: readonly OutgoingRecord[]): Map<string, OutgoingMessage[]> {
  const topics = new Map<string, OutgoingMessage[]>();
  for (const record of records) {
    let list = topics.get(record.topic);
    if (list === undefined) topics.set(record.topic, (list = []));
    const message: OutgoingMessage = { key: record.key, value: record.value, headers: record.headers };
    if (record.partition !== undefined) message.partition = record.partition;
    list.push(message);
  }
  return topics;
}

async function sendAll(producer: Producer, records: readonly OutgoingRecord[]): Promise<void> {
  if (records.length === 0) return;
  // Every send is handed to librdkafka before any is awaited: it batches them by partition.
  await Promise.all([...byTopic(records)].map(([topic, messages]) => producer.send({ topic, messages })));
}

/** A header's value as the client gives it (a Buffer, or a string when the producer was given one). */
function headerText(value: unknown): string {
  if (typeof value === 'string') return value;
  if (Buffer.isBuffer(value)) return value.toString('utf8');
  return JSON.stringify(value) ?? '';
}

function headersOf(headers: Record<string, unknown> | undefined): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [name, value] of Object.entries(headers ?? {})) {
    if (value === undefined || value === null) continue;
    out[name] = headerText(Array.isArray(value) ? (value[0] as unknown) : value);
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
    const client = (
      this.consumer as unknown as { _getInternalClient(): { on(event: string, listener: (error: Error & { isFatal?: boolean }) => void): void } }
    )._getInternalClient();
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

  committed(partitions: readonly number[]): Promise<Map<number, CommittedOffset>> {
    return committedOffsets(this.consumer, this.#options.topic, partitions);
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

/**
 * A transactional producer driven through the binding's calls rather than the compatible API's
 * (1.10.1), whose commit and abort give up after 5 s and then refuse every later transaction
 * ("Can only start one transaction at a time"), which stalled a partition for good after a
 * broker's death. A transaction that can be neither committed nor aborted leaves the producer
 * broken: its next begin() fails as fatal, and the runner opens a new one, whose initialisation
 * fences this one and aborts what it left open.
 */
class KafkaTransactionalProducer implements TransactionalProducer {
  readonly #client: RdKafkaTransactionClient;
  #broken: Error | undefined;
  /** Set while a given-up call may still answer: the client must not be destroyed under it. */
  #unanswered: Promise<void> | undefined;

  constructor(
    readonly producer: Producer,
    readonly consumer: KafkaStageConsumer,
    readonly topic: string,
    readonly logger: Logger,
  ) {
    this.#client = (producer as unknown as { _getInternalClient(): RdKafkaTransactionClient })._getInternalClient();
  }

  /** A transaction call; one left unanswered breaks this producer for good. */
  async #call(name: string, timeoutMs: number, call: (callback: BindingCallback) => void): Promise<void> {
    try {
      await transactionCall(name, call, {
        timeoutMs,
        onUnanswered: (answered) => {
          this.#unanswered = answered;
        },
      });
    } catch (error) {
      if (this.#unanswered !== undefined) this.#broken ??= error as Error;
      throw error;
    }
  }

  async begin() {
    if (this.#broken !== undefined) throw this.#broken;
    const client = this.#client;
    await this.#call('begin_transaction', 0, (callback) => client.beginTransaction(callback));
    const producer = this.producer;
    const consumerClient = (this.consumer.consumer as unknown as { _getInternalClient(): unknown })._getInternalClient();
    const topic = this.topic;
    return {
      send: (records: readonly OutgoingRecord[]) => sendAll(producer, records),
      commit: async (offsets: readonly OffsetCommit[]) => {
        if (offsets.length > 0) {
          // The client's own sendOffsets drops offset metadata, which the partial commits of a
          // big input carry (their resume point): the binding keeps it.
          const entries = offsets.map(({ partition, offset, metadata }) => ({
            topic,
            partition,
            offset: Number(offset),
            ...(metadata === undefined ? {} : { metadata }),
          }));
          await this.#call('send_offsets_to_transaction', transactionCallTimeoutMs, (callback) =>
            client.sendOffsetsToTransaction(entries, consumerClient, transactionCallTimeoutMs, callback),
          );
        }
        await this.#call('commit_transaction', transactionCallTimeoutMs, (callback) => client.commitTransaction(transactionCallTimeoutMs, callback));
      },
      abort: async () => {
        // A call still under way would refuse this one; the transaction dies with the producer.
        if (this.#unanswered !== undefined) throw this.#broken ?? new Error('the producer is wedged');
        try {
          await this.#call('abort_transaction', transactionCallTimeoutMs, (callback) => client.abortTransaction(transactionCallTimeoutMs, callback));
        } catch (error) {
          const code = (error as { code?: number }).code ?? -1;
          this.#broken = kafkaErrorOf(
            { message: `the transaction could be neither committed nor aborted: ${(error as Error).message}`, code },
            { fatal: true },
          );
          throw error;
        }
      },
    };
  }

  async close(): Promise<void> {
    const unanswered = this.#unanswered;
    if (unanswered === undefined) {
      await this.producer.disconnect();
      return;
    }
    // Destroying the client while one of its calls blocks a libuv thread frees what that call
    // still uses: the client is closed once the call answers, and left to its fencing until then.
    this.logger.warn({ err: this.#broken?.message }, 'a transactional producer is wedged in librdkafka; a new one fences it');
    void unanswered.then(() => this.producer.disconnect()).catch(() => undefined);
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
      return new KafkaTransactionalProducer(producer, owner, owner.topic, options.logger);
    },
    send: (records) => sendAll(options.producer, records),
  };
}
