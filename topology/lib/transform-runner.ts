/**
 * Runs a transform stage exactly once between topics: consume, transform, produce and commit
 * the consumed offsets in one Kafka transaction (consumers read committed only).
 *
 * Each input partition gets its own transactional producer, id `<group>.<topic>.<partition>`,
 * initialised when the partition is assigned and before its first message is fetched: the
 * initialisation fences any earlier owner and aborts its open transaction, so the next stage is
 * never held back by a dead replica's transaction, and the committed offset the consumer
 * starts from is stable. Offsets commit with the consumer's group metadata (KIP-447), so a
 * replica that lost the partition in a rebalance cannot commit for it either.
 *
 * One input may yield more outputs than one transaction should hold (a big file): its outputs
 * are then committed in several transactions, each committing the input's own offset with the
 * count of its outputs already committed as offset metadata; a replica taking over skips them.
 */
import type { EventCodec } from '../../core/event-codec.js';
import { errorMessage } from '../../core/errors.js';
import type { Logger } from '../../core/logger.js';
import type { BatchScope, ConsumedRecord, StageConsumer, StageDriver, TransactionalProducer } from './driver.js';
import { decodeRecord, originOf, processingErrorOf, reasonOf } from './encoding.js';
import { classifyFailure } from './failures.js';
import type { StageMetrics } from './metrics.js';
import { OutputBuffer } from './output-buffer.js';
import { retryInPlace, type RetryClock } from './retry.js';
import { StageRun } from './stage-run.js';
import type { InputMessage, RunningStage, TransformStage } from './types.js';

export interface StageDeps {
  driver: StageDriver;
  codec: EventCodec;
  logger: Logger;
  metrics: StageMetrics;
  /** Attempts of a message failing with an unexpected error before it becomes a ProcessingError. */
  maxAttempts?: number;
  /** Backoff and waiting between attempts (tests pass one that does not wait). */
  clock?: RetryClock;
}

/** A failure of one input message, with what is known of it. */
class MessageFailure extends Error {
  constructor(
    readonly offset: string,
    readonly value: unknown,
    override readonly cause: unknown,
  ) {
    super(`message at offset ${offset} failed: ${errorMessage(cause)}`);
  }
}

/** The partition is no longer ours (revoked, or the stage stops): the batch is abandoned. */
class PartitionLeft extends Error {}

interface ResumePoint {
  offset: string;
  outputs: number;
}

/** What one partition's owner knows beyond what the broker tells it. */
interface PartitionState {
  producer: Promise<TransactionalProducer>;
  /** The input committed in part, read from the group's offset metadata on the first batch. */
  resume: Promise<ResumePoint | undefined> | undefined;
  /** Offsets below this are committed by this replica (a partial commit in a batch that then failed). */
  floor: bigint;
  /** Settles when the batch running on the partition ends. */
  running: Promise<void> | undefined;
}

export async function runTransformStage(stage: TransformStage, deps: StageDeps): Promise<RunningStage> {
  const { driver, codec, metrics } = deps;
  const run = new StageRun(stage, deps);
  const { groupId, logger, maxAttempts } = run;
  const perTransaction = stage.messagesPerTransaction ?? 500;
  const maxOutputsPerTransaction = stage.maxOutputsPerTransaction ?? 5000;
  // About one 1 MiB produce request per output partition, not a stream of small ones; below the
  // topics' 32 MiB max.message.bytes whatever the records' size (≤ 24 MiB, INGRESS_MAX_LINE_BYTES).
  const bufferLimits = { records: 2000, bytes: 3 * 1024 * 1024 };
  const partitions = new Map<number, PartitionState>();

  const consumer: StageConsumer = driver.consumer({
    groupId,
    topic: stage.input,
    maxBatchMessages: perTransaction * 4,
    // A fetch waits (up to 200 ms) for 256 KiB instead of returning the first bytes there are:
    // under load every transaction carries hundreds of inputs instead of a few dozen, and each
    // transaction costs the brokers a fixed set of requests and replicated markers.
    maxWaitMs: 200,
    minBytes: 256 * 1024,
    maxBytesPerPartition: 2 * 1024 * 1024,
  });

  function openProducer(partition: number): Promise<TransactionalProducer> {
    const producer = driver.transactionalProducer(`${groupId}.${stage.input}.${partition}`, consumer);
    producer.catch((error: unknown) =>
      logger.warn({ partition, err: errorMessage(error) }, 'initialising the transactional producer failed; retrying with the first batch'),
    );
    return producer;
  }

  async function closeProducer(state: PartitionState): Promise<void> {
    await state.producer.then((producer) => producer.close()).catch(() => undefined);
  }

  /** The partition's producer, opened again if the last one failed to initialise or was dropped. */
  function producerOf(partition: number, state: PartitionState): Promise<TransactionalProducer> {
    state.producer = state.producer.catch(() => openProducer(partition));
    return state.producer;
  }

  async function resumePointOf(partition: number, state: PartitionState): Promise<ResumePoint | undefined> {
    state.resume ??= consumer.committed([partition]).then((committed) => {
      const entry = committed.get(partition);
      const outputs = resumeOutputsOf(entry?.metadata ?? null);
      return entry?.offset !== null && entry !== undefined && outputs > 0 ? { offset: entry.offset, outputs } : undefined;
    });
    state.resume.catch(() => (state.resume = undefined));
    return state.resume;
  }

  function onPoison(offset: string, error: unknown): void {
    metrics.errors.inc({ stage: stage.name, reason: reasonOf(error) });
    logger.warn({ offset, err: errorMessage(error) }, 'message cannot be processed; routing it to the error topic');
  }

  /** Processes `records` in one transaction (or several, for a big input); `poisoned` ones only yield their error event. */
  async function processInTransaction(
    partition: number,
    state: PartitionState,
    records: ConsumedRecord[],
    poisoned: Map<string, { value: unknown; error: unknown }>,
    scope: BatchScope,
  ): Promise<{ consumed: number; outputs: ReadonlyMap<string, number>; errors: number }> {
    const producer = await producerOf(partition, state);
    let resume = await resumePointOf(partition, state);
    const out = new OutputBuffer(codec, (to) => run.topicOf(to), bufferLimits);
    let transaction = await producer.begin();
    let consumed = 0;
    let errors = 0;
    let producedInTransaction = 0;
    try {
      for (const record of records) {
        // Keep transactions bounded: many small files share one, one big file gets its own.
        if (consumed > 0 && producedInTransaction >= maxOutputsPerTransaction) break;
        if (!scope.isActive()) throw new PartitionLeft();
        consumed++;
        const origin = originOf(stage.input, partition, record);
        const poison = poisoned.get(record.offset);
        if (poison !== undefined) {
          await out.add(processingErrorOf(stage.name, { ...origin, value: poison.value }, poison.error), transaction);
          errors++;
          continue;
        }
        let input: InputMessage<unknown>;
        try {
          input = await decodeRecord(codec, origin, record);
        } catch (error) {
          throw new MessageFailure(record.offset, undefined, error);
        }
        const alreadyCommitted = resume?.offset === record.offset ? resume.outputs : 0;
        let mark = out.mark();
        let emitted = 0;
        try {
          for await (const emit of stage.process(input, { logger })) {
            emitted++;
            if (emitted <= alreadyCommitted) continue;
            await out.add(emit, transaction);
            producedInTransaction++;
            if (producedInTransaction >= maxOutputsPerTransaction) {
              // A big input: commit what it produced so far with the count as its resume point,
              // so that the next stage starts now and a replica taking over skips these outputs.
              await out.flush(transaction);
              await transaction.commit([{ partition, offset: record.offset, metadata: resumeMetadata(emitted) }]);
              state.floor = BigInt(record.offset);
              resume = { offset: record.offset, outputs: emitted };
              state.resume = Promise.resolve(resume);
              transaction = await producer.begin();
              producedInTransaction = 0;
              mark = out.mark();
              if (!scope.isActive()) throw new PartitionLeft();
            }
          }
        } catch (error) {
          if (error instanceof PartitionLeft) throw error;
          if (classifyFailure(error) === 'poison' && out.unsentSince(mark)) {
            // Nothing of it was sent yet: drop what it buffered and keep the transaction.
            out.rollback(mark);
            onPoison(record.offset, error);
            await out.add(processingErrorOf(stage.name, { ...origin, value: input.value }, error), transaction);
            errors++;
            continue;
          }
          throw new MessageFailure(record.offset, input.value, error);
        }
      }
      await out.flush(transaction);
      const last = records[consumed - 1]!;
      await transaction.commit([{ partition, offset: String(BigInt(last.offset) + 1n) }]);
      state.floor = BigInt(last.offset) + 1n;
      state.resume = Promise.resolve(undefined);
      return { consumed, outputs: out.counts, errors };
    } catch (error) {
      await transaction.abort().catch((abortError: unknown) => logger.debug({ err: errorMessage(abortError) }, 'abort failed'));
      throw error;
    }
  }

  /** One chunk of a batch, retried in place until it commits; the number of records it took, or undefined if the partition was left. */
  async function processChunk(partition: number, state: PartitionState, chunk: ConsumedRecord[], scope: BatchScope): Promise<number | undefined> {
    const poisoned = new Map<string, { value: unknown; error: unknown }>();
    const attemptsOf = new Map<string, number>();
    let skipped = 0;
    return retryInPlace(
      scope,
      async () => {
        // A partial commit of an earlier attempt may have committed the first of them already.
        const fresh = chunk.filter((record) => BigInt(record.offset) >= state.floor);
        skipped = chunk.length - fresh.length;
        if (fresh.length === 0) return skipped;
        const started = process.hrtime.bigint();
        const { consumed, outputs, errors } = await processInTransaction(partition, state, fresh, poisoned, scope);
        metrics.recordsIn.inc({ stage: stage.name }, consumed);
        for (const [topic, count] of outputs) metrics.recordsOut.inc({ stage: stage.name, topic }, count);
        metrics.batchSize.observe({ stage: stage.name }, consumed);
        metrics.batchSeconds.observe({ stage: stage.name }, Number(process.hrtime.bigint() - started) / 1e9);
        if (errors > 0) logger.debug({ partition, errors }, 'messages routed to the error topic');
        return skipped + consumed;
      },
      (error) => {
        if (error instanceof PartitionLeft) return 'leave';
        const cause = error instanceof MessageFailure ? error.cause : error;
        const kind = classifyFailure(cause);
        if ((cause as { fatal?: boolean } | undefined)?.fatal === true) {
          // A fenced or otherwise fatal producer is done for good: the next attempt opens another.
          const dead = state.producer;
          state.producer = Promise.reject(cause);
          state.producer.catch(() => undefined);
          void dead.then((producer) => producer.close()).catch(() => undefined);
        }
        if (kind === 'fenced') {
          logger.warn({ partition, err: errorMessage(cause) }, 'the partition moved to another replica; leaving the batch to it');
          return 'leave';
        }
        if (error instanceof MessageFailure && (kind === 'poison' || kind === 'bug')) {
          const attempts = (attemptsOf.get(error.offset) ?? 0) + 1;
          attemptsOf.set(error.offset, attempts);
          if (kind === 'poison' || attempts >= maxAttempts) {
            // Redo the same messages at once; this one now only yields its ProcessingError.
            poisoned.set(error.offset, { value: error.value, error: cause });
            onPoison(error.offset, cause);
            if (kind === 'bug') {
              metrics.failedAfterAttempts.inc({ stage: stage.name, reason: reasonOf(cause) });
              logger.error({ partition, offset: error.offset, attempts, err: cause }, 'a message failed on every attempt; routing it to the error topic');
            }
            return 'now';
          }
        }
        return 'later';
      },
      run.retryOptions(partition, 'failure; retrying from the same position'),
    );
  }

  async function processBatch(partition: number, records: ConsumedRecord[], scope: BatchScope): Promise<void> {
    const state = partitions.get(partition);
    if (state === undefined) return;
    let start = 0;
    while (start < records.length && scope.isActive()) {
      const chunk = records.slice(start, start + perTransaction);
      const taken = await processChunk(partition, state, chunk, scope);
      if (taken === undefined) return;
      start += taken;
      scope.resolveOffset(chunk[taken - 1]!.offset);
    }
  }

  await consumer.start({
    async onAssigned(assigned) {
      run.joined = true;
      metrics.assignedPartitions.set({ stage: stage.name }, assigned.length);
      logger.info({ partitions: assigned }, 'partitions assigned');
      for (const partition of assigned) {
        const known = partitions.get(partition);
        // A partition kept across a rebalance keeps its producer; the broker's offset is the truth again.
        if (known !== undefined) Object.assign(known, { resume: undefined, floor: -1n });
        else partitions.set(partition, { producer: openProducer(partition), resume: undefined, floor: -1n, running: undefined });
      }
      // Fencing before fetching: a dead owner's open transaction is aborted before anything is read.
      await Promise.all(assigned.map((partition) => partitions.get(partition)!.producer.catch(() => undefined)));
    },
    async onRevoked(revoked) {
      logger.info({ partitions: revoked }, 'partitions revoked');
      // Their running batches see the scope end and abort; wait for that before handing them over.
      await Promise.all(revoked.map((partition) => partitions.get(partition)?.running ?? Promise.resolve()));
      for (const partition of revoked) {
        const state = partitions.get(partition);
        partitions.delete(partition);
        if (state !== undefined) await closeProducer(state);
      }
      metrics.assignedPartitions.set({ stage: stage.name }, partitions.size);
    },
    async eachBatch(partition, records, scope) {
      const state = partitions.get(partition);
      const running = processBatch(partition, records, scope);
      if (state !== undefined) state.running = running.catch(() => undefined);
      await running;
    },
  });

  return run.running(consumer, async () => {
    await Promise.all([...partitions.values()].map(closeProducer));
    partitions.clear();
  });
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
