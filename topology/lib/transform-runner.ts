/**
 * Runs a transform stage exactly once between topics: consume, transform, produce and
 * commit the consumed offsets in one Kafka transaction (consumers read committed only).
 *
 * Each input partition gets its own transactional producer with the id
 * `<group>.<topic>.<partition>`: when a partition moves to another replica, the new owner
 * initialises the same transactional id and fences the old one (no zombie writes).
 *
 * Failures: a message the stage can never process (a non-retriable PipelineError, or one
 * that cannot be decoded) becomes a ProcessingError event, committed in place of its
 * outputs; anything else is retried with backoff from the same position, with the
 * partition's consumption paused meanwhile, until it succeeds or the stage stops.
 */
import type { Consumer, Kafka, KafkaMessage, Message, Producer } from 'kafkajs';
import { avroContentType, type EventCodec } from '../../core/event-codec.js';
import { errorMessage, PipelineError } from '../../core/errors.js';
import { sendPerPartition, type PartitionCountOf } from '../../core/partitioned-send.js';
import type { Logger } from '../../core/logger.js';
import type { ProcessingError } from '../../schemas/index.js';
import type { StageMetrics } from './metrics.js';
import { backoffMs, isPoison, sleepWithHeartbeat } from './retry.js';
import { groupIdOf, type Emit, type InputMessage, type TransformStage } from './types.js';

export interface RunningStage {
  name: string;
  /** True while the consumer is in its group (for /readiness). */
  healthy(): boolean;
  stop(): Promise<void>;
}

export interface StageDeps {
  kafka: Kafka;
  codec: EventCodec;
  logger: Logger;
  metrics: StageMetrics;
  /** Records produced per `send` inside a transaction. */
  produceChunk?: number;
  /** Partitions of each output topic (messages are assigned with the default partitioner). */
  partitionCountOf: PartitionCountOf;
  /**
   * Called when the stage's consumer stopped for good: KafkaJS does not restart a consumer
   * after an error it deems not retriable (a batch it cannot decode, say). The stage can then
   * only come back in a new process, so the service should exit and let its supervisor start it.
   */
  onFatal?: (error: Error) => void;
}

/** The CRASH handler both runners share: log, leave readiness, and report a crash for good. */
export function onConsumerCrash(
  consumer: Consumer,
  logger: Logger,
  onFatal: ((error: Error) => void) | undefined,
  left: () => void,
): void {
  consumer.on(consumer.events.CRASH, (event) => {
    left();
    const { error, restart } = event.payload;
    if (restart) {
      logger.error({ err: error, restart }, 'consumer crashed; KafkaJS restarts it');
      return;
    }
    logger.fatal({ err: error, restart }, 'consumer crashed and will not restart');
    onFatal?.(error);
  });
}

export function headersOf(message: KafkaMessage): Record<string, string> {
  const headers: Record<string, string> = {};
  for (const [name, value] of Object.entries(message.headers ?? {})) {
    if (value !== undefined) headers[name] = Array.isArray(value) ? String(value[0]) : String(value);
  }
  return headers;
}

export async function encodeEmit(codec: EventCodec, topic: string, emit: Emit): Promise<Message> {
  return {
    key: emit.key,
    value: await codec.encode(topic, emit.value),
    headers: { request_id: emit.requestId, event_type: topic, 'content-type': avroContentType },
  };
}

/** The ProcessingError that replaces a message's outputs when it cannot be processed. */
export function processingErrorOf(
  stage: string,
  input: { topic: string; partition: number; offset: string; headers: Record<string, string>; value?: unknown },
  error: unknown,
): Emit {
  const value = (input.value ?? {}) as Record<string, unknown>;
  const requestId = String(value.request_id ?? input.headers.request_id ?? '');
  const event: ProcessingError = {
    stage,
    request_id: requestId,
    tenant: String(value.tenant ?? ''),
    reason_code: error instanceof PipelineError ? error.code : 'UNPROCESSABLE',
    message: errorMessage(error),
    record_key: typeof value.record_key === 'string' ? value.record_key : null,
    record_index: typeof value.record_index === 'number' ? value.record_index : null,
    source_topic: input.topic,
    source_partition: input.partition,
    source_offset: Number(input.offset),
    failed_at: Date.now(),
  };
  return { to: 'errors', key: requestId === '' ? `${input.topic}/${input.partition}/${input.offset}` : requestId, value: event, requestId };
}

export async function runTransformStage(stage: TransformStage, deps: StageDeps): Promise<RunningStage> {
  const { kafka, codec, metrics, partitionCountOf } = deps;
  const groupId = groupIdOf(stage);
  const logger = deps.logger.child({ stage: stage.name });
  // Outputs are sent when this many are buffered (or this many bytes): about one 1 MiB produce
  // request per output partition, not a stream of small ones (per-request cost on the brokers).
  const produceChunk = deps.produceChunk ?? 2000;
  const produceChunkBytes = 3 * 1024 * 1024;
  const perTransaction = stage.messagesPerTransaction ?? 500;
  const maxOutputsPerTransaction = stage.maxOutputsPerTransaction ?? 5000;
  const topicOf = (to: string) => (to === 'errors' ? stage.errors : stage.outputs[to]);
  const producers = new Map<number, Promise<Producer>>();
  /** The offset this replica last committed per partition: a floor that never goes back. */
  const committedHere = new Map<number, bigint>();
  /**
   * Per partition: the input whose outputs were committed in part (a big input split over
   * several transactions) and how many of its outputs are committed.
   */
  const resumePoints = new Map<number, { offset: string; outputs: number }>();
  /** Per assignment: each partition's committed offset, read once its producer is fenced in. */
  let committedOnAssignment = new Map<number, Promise<bigint>>();
  const admin = kafka.admin();
  let stopping = false;
  let inGroup = false;

  const consumer: Consumer = kafka.consumer({
    groupId,
    readUncommitted: false,
    allowAutoTopicCreation: false,
    sessionTimeout: 30_000,
    heartbeatInterval: 3_000,
    // A fetch waits (up to 200 ms) for 256 KiB instead of returning the first bytes there are:
    // under load every transaction carries hundreds of inputs instead of a few dozen, and each
    // transaction costs the brokers a fixed set of requests and replicated markers (bench:pipeline,
    // 2026-11-28: half the transactions, Kafka's CPU per record 0.88 → 0.52 ms). Idle, it only
    // adds up to 200 ms per stage.
    maxWaitTimeInMs: 200,
    minBytes: 256 * 1024,
    maxBytesPerPartition: 2 * 1024 * 1024,
  });
  consumer.on(consumer.events.GROUP_JOIN, (event) => {
    inGroup = true;
    const assigned = event.payload.memberAssignment[stage.input] ?? [];
    metrics.assignedPartitions.set({ stage: stage.name }, assigned.length);
    logger.info({ partitions: assigned }, 'joined group');
    committedOnAssignment = new Map();
    for (const partition of assigned) {
      producerFor(partition).catch((error: unknown) => logger.warn({ partition, err: error }, 'initialising the transactional producer failed; retrying with the first batch'));
    }
  });
  onConsumerCrash(consumer, logger, deps.onFatal, () => void (inGroup = false));
  consumer.on(consumer.events.STOP, () => void (inGroup = false));

  /**
   * The partition's transactional producer, initialised: InitProducerId fences any earlier
   * owner of the same transactional id and aborts its open transaction. Until that abort,
   * read_committed consumers of the outputs cannot read past the open transaction (its
   * partitions' last stable offset is stuck), so this runs as soon as a partition is assigned,
   * not when its first message arrives: a replica killed mid-transaction must not hold the
   * next stage back for the whole transaction timeout.
   */
  function producerFor(partition: number): Promise<Producer> {
    let producer = producers.get(partition);
    if (producer === undefined) {
      producer = (async () => {
        const created = kafka.producer({
          transactionalId: `${groupId}.${stage.input}.${partition}`,
          idempotent: true,
          maxInFlightRequests: 1,
          allowAutoTopicCreation: false,
          transactionTimeout: 120_000,
          // CONCURRENT_TRANSACTIONS clears within milliseconds once the previous commit's
          // markers are written; the client-wide 200 ms first retry would slow every transaction.
          retry: { initialRetryTime: 20, maxRetryTime: 2_000, retries: 12 },
        });
        await created.connect();
        // An empty transaction: initialises the producer id (the fencing) and sends nothing.
        await (await created.transaction()).abort();
        return created;
      })();
      producers.set(partition, producer);
      producer.catch(() => {
        if (producers.get(partition) === producer) producers.delete(partition);
      });
    }
    return producer;
  }

  /**
   * Where the partition's unprocessed messages start. KafkaJS reads the group's offsets
   * without KIP-447's require_stable, so right after a commit (or a previous owner's last
   * commit) it may see the offset from before it and fetch messages whose outputs are already
   * committed. The producer's initialisation waits until the previous owner's transaction
   * is complete (CONCURRENT_TRANSACTIONS until then); the offset read after it is current.
   */
  function committedOffset(partition: number): Promise<bigint> {
    let offset = committedOnAssignment.get(partition);
    if (offset === undefined) {
      const table = committedOnAssignment;
      offset = (async () => {
        await producerFor(partition);
        const [topicOffsets] = await admin.fetchOffsets({ groupId, topics: [stage.input] });
        const entry = topicOffsets?.partitions.find((candidate) => candidate.partition === partition);
        const committed = BigInt(entry?.offset ?? '-1');
        const outputs = resumeOutputsOf(entry?.metadata ?? null);
        if (committed >= (committedHere.get(partition) ?? -1n)) {
          if (outputs > 0) resumePoints.set(partition, { offset: String(committed), outputs });
          else resumePoints.delete(partition);
        }
        return committed;
      })();
      table.set(partition, offset);
      offset.catch(() => {
        if (table.get(partition) === offset) table.delete(partition);
      });
    }
    return offset.then((committed) => {
      const here = committedHere.get(partition) ?? -1n;
      return committed > here ? committed : here;
    });
  }

  async function dropProducer(partition: number): Promise<void> {
    const producer = producers.get(partition);
    producers.delete(partition);
    // Whatever the failure left behind, the next producer's fencing settles it: read again.
    committedOnAssignment.delete(partition);
    await producer?.then((created) => created.disconnect()).catch(() => undefined);
  }

  function onPoison(offset: string, error: unknown): void {
    metrics.errors.inc({ stage: stage.name, reason: error instanceof PipelineError ? error.code : 'UNPROCESSABLE' });
    logger.warn({ offset, err: errorMessage(error) }, 'message cannot be processed; routing it to the error topic');
  }

  /** Processes `messages` in one transaction; `poisoned` offsets only produce their error event. */
  async function processInTransaction(
    partition: number,
    messages: KafkaMessage[],
    poisoned: Map<string, { value: unknown; error: unknown }>,
    heartbeat: () => Promise<void>,
  ): Promise<{ outputs: Map<string, number>; errors: number; consumed: number }> {
    const producer = await producerFor(partition);
    let transaction = await producer.transaction();
    const outputs = new Map<string, number>();
    let errors = 0;
    let pending = new Map<string, Message[]>();
    let pendingCount = 0;
    let pendingBytes = 0;
    let flushes = 0;
    const flush = async () => {
      if (pendingCount === 0) return;
      await sendPerPartition(
        transaction,
        [...pending].map(([topic, topicMessages]) => ({ topic, messages: topicMessages })),
        partitionCountOf,
      );
      pending = new Map();
      pendingCount = 0;
      pendingBytes = 0;
      flushes++;
    };
    const add = async (emit: Emit) => {
      const topic = topicOf(emit.to);
      if (topic === undefined) throw new Error(`stage ${stage.name} emitted to undeclared output ${emit.to}`);
      const list = pending.get(topic) ?? [];
      const encoded = await encodeEmit(codec, topic, emit);
      list.push(encoded);
      pending.set(topic, list);
      pendingCount++;
      pendingBytes += (encoded.value as Buffer).length + (encoded.key?.length ?? 0);
      produced++;
      outputs.set(topic, (outputs.get(topic) ?? 0) + 1);
      // Bounded by count and by bytes: what one flush sends stays under 3 MiB plus one record
      // (≤ 24 MiB, INGRESS_MAX_LINE_BYTES) whatever the records' size, below the topics'
      // 32 MiB max.message.bytes (a record batch over it is refused whole).
      if (pendingCount >= produceChunk || pendingBytes >= produceChunkBytes) {
        await flush();
        await heartbeat();
      }
    };
    let consumed = 0;
    let produced = 0;
    try {
      for (const message of messages) {
        // Keep transactions bounded: many small files share one, one big file gets its own.
        if (consumed > 0 && produced >= maxOutputsPerTransaction) break;
        consumed++;
        const base = { topic: stage.input, partition, offset: message.offset, headers: headersOf(message) };
        const poison = poisoned.get(message.offset);
        if (poison !== undefined) {
          await add(processingErrorOf(stage.name, { ...base, value: poison.value }, poison.error));
          errors++;
          continue;
        }
        let value: unknown;
        try {
          if (message.value === null) throw new PipelineError('EMPTY_MESSAGE', 'the message has no value');
          value = await codec.decode(message.value);
        } catch (error) {
          const undecodable = error instanceof PipelineError ? error : new PipelineError('UNDECODABLE', `cannot decode the message: ${errorMessage(error)}`, { cause: error });
          throw new PoisonMessage(message.offset, undefined, undecodable);
        }
        const input: InputMessage<unknown> = { ...base, key: message.key?.toString(), value };
        const mark = { flushes, lengths: new Map([...pending].map(([topic, list]) => [topic, list.length])), outputs: new Map(outputs) };
        const resume = resumePoints.get(partition);
        const alreadyCommitted = resume?.offset === message.offset ? resume.outputs : 0;
        let emitted = 0;
        try {
          for await (const emit of stage.process(input, { logger, heartbeat })) {
            emitted++;
            if (emitted <= alreadyCommitted) continue;
            await add(emit);
            if (produced >= maxOutputsPerTransaction) {
              // A big input: commit what it produced so far, with the count as a resume point,
              // so the next stage starts now and a replica taking over skips these outputs.
              await flush();
              // KafkaJS passes the metadata through to TxnOffsetCommit; its types omit it.
              const resumeAt: { partition: number; offset: string; metadata: string } = { partition, offset: message.offset, metadata: resumeMetadata(emitted) };
              await transaction.sendOffsets({ consumerGroupId: groupId, topics: [{ topic: stage.input, partitions: [resumeAt] }] });
              await transaction.commit();
              committedHere.set(partition, BigInt(message.offset));
              resumePoints.set(partition, { offset: message.offset, outputs: emitted });
              transaction = await producer.transaction();
              produced = 0;
              await heartbeat();
            }
          }
        } catch (error) {
          if (!isPoison(error)) throw error;
          if (mark.flushes !== flushes) {
            // Part of its output already went to the broker: redo the transaction without it.
            throw new PoisonMessage(message.offset, value, error);
          }
          // Nothing of it was sent yet: drop what it buffered, keep the transaction.
          for (const [topic, list] of pending) list.length = mark.lengths.get(topic) ?? 0;
          pendingCount = [...pending.values()].reduce((sum, list) => sum + list.length, 0);
          pendingBytes = [...pending.values()].flat().reduce((sum, message) => sum + (message.value as Buffer).length, 0);
          outputs.clear();
          for (const [topic, count] of mark.outputs) outputs.set(topic, count);
          onPoison(message.offset, error);
          await add(processingErrorOf(stage.name, { ...base, value }, error));
          errors++;
        }
      }
      await flush();
      const last = messages[consumed - 1]!;
      await transaction.sendOffsets({
        consumerGroupId: groupId,
        topics: [{ topic: stage.input, partitions: [{ partition, offset: String(BigInt(last.offset) + 1n) }] }],
      });
      await transaction.commit();
      committedHere.set(partition, BigInt(last.offset) + 1n);
      resumePoints.delete(partition);
      return { outputs, errors, consumed };
    } catch (error) {
      await transaction.abort().catch((abortError: unknown) => logger.warn({ err: abortError }, 'abort failed'));
      throw error;
    }
  }

  await admin.connect();
  await consumer.connect();
  await consumer.subscribe({ topic: stage.input, fromBeginning: true });
  await consumer.run({
    autoCommit: false,
    eachBatchAutoResolve: false,
    partitionsConsumedConcurrently: 3,
    eachBatch: async ({ batch, resolveOffset, heartbeat, isRunning, isStale, pause }) => {
      const partition = batch.partition;
      let start = 0;
      while (start < batch.messages.length) {
        const messages = batch.messages.slice(start, start + perTransaction);
        const poisoned = new Map<string, { value: unknown; error: unknown }>();
        for (let attempt = 0; ; attempt++) {
          if (stopping || !isRunning() || isStale()) return;
          const started = process.hrtime.bigint();
          try {
            const committed = await committedOffset(partition);
            if (BigInt(messages[0]!.offset) < committed) {
              // Their outputs are committed already (by this replica or the partition's previous owner).
              const skipped = messages.filter((message) => BigInt(message.offset) < committed);
              logger.info({ partition, skipped: skipped.length, first_offset: messages[0]!.offset }, 'skipping messages already processed');
              metrics.skipped.inc({ stage: stage.name }, skipped.length);
              resolveOffset(skipped.at(-1)!.offset);
              start += skipped.length;
              break;
            }
            const { outputs, errors, consumed } = await processInTransaction(partition, messages, poisoned, heartbeat);
            resolveOffset(messages[consumed - 1]!.offset);
            start += consumed;
            metrics.recordsIn.inc({ stage: stage.name }, consumed);
            for (const [topic, count] of outputs) metrics.recordsOut.inc({ stage: stage.name, topic }, count);
            metrics.batchSize.observe({ stage: stage.name }, consumed);
            metrics.batchSeconds.observe({ stage: stage.name }, Number(process.hrtime.bigint() - started) / 1e9);
            if (errors > 0) logger.debug({ partition, errors }, 'messages routed to the error topic');
            break;
          } catch (error) {
            if (error instanceof PoisonMessage) {
              // Redo the same messages; this one now only yields its ProcessingError.
              poisoned.set(error.offset, { value: error.value, error: error.cause });
              onPoison(error.offset, error.cause);
              continue;
            }
            if (isRebalance(error)) {
              // Give the partitions back promptly; the uncommitted messages go to their next owner.
              logger.info({ partition }, 'rebalance in progress; leaving this batch uncommitted');
              throw error;
            }
            if (isFenced(error)) {
              logger.warn({ partition }, 'producer fenced: the partition moved to another replica');
              await dropProducer(partition);
              return;
            }
            metrics.retries.inc({ stage: stage.name });
            const delay = backoffMs(attempt);
            logger.warn({ partition, attempt, delay_ms: delay, err: error }, 'transient failure; retrying from the same position');
            // Stop fetching this partition while we wait: nothing piles up in memory.
            const resume = pause();
            await sleepWithHeartbeat(delay, heartbeat, () => stopping || !isRunning());
            resume();
            if (isTransactionStateBroken(error)) await dropProducer(partition);
          }
        }
        // Outside the retry loop: a rebalance surfacing here is kafkajs's to handle.
        await heartbeat();
      }
    },
  });

  return {
    name: stage.name,
    healthy: () => inGroup && !stopping,
    async stop() {
      stopping = true;
      // disconnect() lets the running batch finish or abort its transaction, then leaves the group.
      await consumer.disconnect();
      await Promise.all([...producers.keys()].map((partition) => dropProducer(partition)));
      await admin.disconnect().catch(() => undefined);
      logger.info('stage stopped');
    },
  };
}

/** Offset metadata of a partial commit: how many outputs of the input at that offset are committed. */
export function resumeMetadata(outputs: number): string {
  return JSON.stringify({ outputs });
}

/** The committed output count in a partial commit's offset metadata (0 for any other metadata). */
export function resumeOutputsOf(metadata: string | null): number {
  if (metadata === null || metadata === '') return 0;
  try {
    const outputs = (JSON.parse(metadata) as { outputs?: unknown }).outputs;
    return typeof outputs === 'number' && Number.isSafeInteger(outputs) && outputs > 0 ? outputs : 0;
  } catch {
    return 0;
  }
}

class PoisonMessage extends Error {
  constructor(
    readonly offset: string,
    readonly value: unknown,
    override readonly cause: unknown,
  ) {
    super(`poison message at offset ${offset}`);
  }
}

/** The group is rebalancing: kafkajs must rejoin, so the error has to leave eachBatch. */
export function isRebalance(error: unknown): boolean {
  const type = (error as { type?: string } | undefined)?.type;
  return type === 'REBALANCE_IN_PROGRESS' || type === 'UNKNOWN_MEMBER_ID' || type === 'ILLEGAL_GENERATION' || type === 'NOT_COORDINATOR_FOR_GROUP';
}

function isFenced(error: unknown): boolean {
  const type = (error as { type?: string } | undefined)?.type;
  return type === 'INVALID_PRODUCER_EPOCH' || type === 'PRODUCER_FENCED' || /fenced/i.test(errorMessage(error));
}

/** After some failures the producer's transaction state cannot be reused: start a new one. */
function isTransactionStateBroken(error: unknown): boolean {
  const type = (error as { type?: string; name?: string } | undefined)?.type;
  return (
    type === 'INVALID_TXN_STATE' ||
    type === 'OUT_OF_ORDER_SEQUENCE_NUMBER' ||
    type === 'UNKNOWN_PRODUCER_ID' ||
    (error as { name?: string } | undefined)?.name === 'KafkaJSNonRetriableError'
  );
}
