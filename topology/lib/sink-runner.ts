/**
 * Runs a sink stage exactly once into an external store: the sink writes each partition
 * batch and the partition's next offset in one transaction of its own (Kafka's committed
 * offsets are only a hint for lag tools). On assignment the consumer starts at the sink's
 * stored offsets, and any message below them is skipped, so a replay after a crash or a
 * rebalance never writes a record twice.
 */
import type { EventCodec } from '../../core/event-codec.js';
import { errorMessage } from '../../core/errors.js';
import type { Logger } from '../../core/logger.js';
import type { BatchScope, ConsumedRecord, OutgoingRecord, StageConsumer, StageDriver } from './driver.js';
import { decodeRecord, encodeEmit, originOf, processingErrorOf, reasonOf } from './encoding.js';
import { classifyFailure } from './failures.js';
import type { StageMetrics } from './metrics.js';
import { retryInPlace, type RetryClock } from './retry.js';
import { StageRun } from './stage-run.js';
import type { Emit, InputMessage, RunningStage, SinkStage } from './types.js';

/**
 * Which partitions may have committed batches whose events were not sent yet: all of them when
 * they are assigned (a previous owner may have died between its commit and its send), and one
 * whose write failed (the commit may have happened). A partition not marked owes nothing, so the
 * steady state never asks the sink. Each mark is numbered: serving a snapshot clears only the
 * marks it saw, so a mark set while a send was in flight survives it.
 */
export class OwedEvents {
  readonly #marks = new Map<number, number>();
  #last = 0;

  mark(partitions: Iterable<number>): void {
    for (const partition of partitions) this.#marks.set(partition, ++this.#last);
  }

  /** The marked ones among `partitions`, with their marks: what a send should serve. */
  snapshot(partitions: Iterable<number>): Map<number, number> {
    const marked = new Map<number, number>();
    for (const partition of partitions) {
      const mark = this.#marks.get(partition);
      if (mark !== undefined) marked.set(partition, mark);
    }
    return marked;
  }

  /** After a successful send of `snapshot`: clears the marks that were not set again since. */
  served(snapshot: Map<number, number>): void {
    for (const [partition, mark] of snapshot) if (this.#marks.get(partition) === mark) this.#marks.delete(partition);
  }
}

export interface SinkDeps {
  driver: StageDriver;
  codec: EventCodec;
  logger: Logger;
  metrics: StageMetrics;
  /** Most records per sink batch: fetched batches are split beyond this. */
  maxBatchRecords: number;
  /** How long the broker may wait to fill a fetch (the batch linger). */
  lingerMs: number;
  /** Bytes a fetch may return per partition (the batch size cap in bytes). */
  maxBatchBytes: number;
  /** Attempts of a batch failing with an unexpected error before its records become ProcessingErrors. */
  maxAttempts?: number;
  clock?: RetryClock;
}

export async function runSinkStage(stage: SinkStage, deps: SinkDeps): Promise<RunningStage> {
  const { driver, codec, metrics } = deps;
  const run = new StageRun(stage, deps);
  const { groupId, logger, clock, maxAttempts } = run;
  const sink = stage.sink();
  const maxBatch = stage.maxBatchRecords ?? deps.maxBatchRecords;
  /** The sink's stored next offset per partition: messages below it were already written. */
  const stored = new Map<number, bigint>();
  const owed = new OwedEvents();
  /** Counts assignments: a retry loop of an older assignment stops when a newer one begins. */
  let generation = 0;

  async function produce(emits: Emit[]): Promise<void> {
    if (emits.length === 0) return;
    const records: OutgoingRecord[] = [];
    for (const emit of emits) records.push(await encodeEmit(codec, run.topicOf(emit.to), emit));
    await driver.send(records);
    for (const record of records) metrics.recordsOut.inc({ stage: stage.name, topic: record.topic });
  }

  /** Sends what the marked ones among `partitions` owe (nothing, without asking the sink, when none is marked). */
  async function sendOwed(partitions: number[]): Promise<number> {
    if (sink.sendPending === undefined) return 0;
    const snapshot = owed.snapshot(partitions);
    if (snapshot.size === 0) return 0;
    const sent = await sink.sendPending(groupId, stage.input, [...snapshot.keys()], produce);
    owed.served(snapshot);
    return sent;
  }

  /**
   * Sends what committed batches of newly assigned partitions still owe, retrying until it
   * succeeds or the assignment changes: a partition with no new input would otherwise keep its
   * events until its next batch.
   */
  async function sendOwedOnAssignment(partitions: number[], assignment: number): Promise<void> {
    for (let attempt = 0; !run.stopping && assignment === generation; attempt++) {
      try {
        const sent = await sendOwed(partitions);
        if (sent > 0) logger.info({ partitions, batches: sent }, 'sent the events of batches committed before the last assignment');
        return;
      } catch (error) {
        const delay = clock.backoffMs(attempt);
        logger.warn({ partitions, attempt, delay_ms: delay, err: errorMessage(error) }, 'sending pending sink events failed; retrying');
        await clock.wait(delay, () => run.stopping || assignment !== generation);
      }
    }
  }

  const consumer: StageConsumer = driver.consumer({
    groupId,
    topic: stage.input,
    maxBatchMessages: maxBatch,
    maxWaitMs: deps.lingerMs,
    minBytes: 64 * 1024,
    maxBytesPerPartition: deps.maxBatchBytes,
  });

  /** Writes one slice, retried in place; false if the partition was left. */
  async function writeSlice(partition: number, slice: ConsumedRecord[], scope: BatchScope): Promise<boolean> {
    const nextOffset = String(BigInt(slice[slice.length - 1]!.offset) + 1n);
    const floor = stored.get(partition) ?? 0n;
    const fresh = slice.filter((record) => BigInt(record.offset) >= floor);
    if (fresh.length < slice.length) metrics.skipped.inc({ stage: stage.name }, slice.length - fresh.length);
    if (fresh.length === 0) return true;
    const decoded: InputMessage<unknown>[] = [];
    const undecodable: Emit[] = [];
    for (const record of fresh) {
      const origin = originOf(stage.input, partition, record);
      try {
        decoded.push(await decodeRecord(codec, origin, record));
      } catch (error) {
        metrics.errors.inc({ stage: stage.name, reason: reasonOf(error) });
        undecodable.push(processingErrorOf(stage.name, origin, error));
      }
    }
    /** Set once the batch failed on every attempt: its records go to the error topic instead. */
    let givenUp: unknown;
    const written = await retryInPlace(
      scope,
      async () => {
        const started = process.hrtime.bigint();
        // Events a committed batch of this partition may still owe go out first, in order.
        await sendOwed([partition]);
        const failed = givenUp === undefined ? [] : decoded.map((message) => processingErrorOf(stage.name, message, givenUp));
        const { written } = await sink.write(
          { topic: stage.input, partition, messages: givenUp === undefined ? decoded : [], nextOffset, events: [...undecodable, ...failed] },
          produce,
          groupId,
        );
        metrics.batchSeconds.observe({ stage: stage.name }, Number(process.hrtime.bigint() - started) / 1e9);
        return written;
      },
      (error, attempt) => {
        // The batch may have committed before the failure (a failed send of its events).
        owed.mark([partition]);
        const kind = classifyFailure(error);
        if (kind === 'fenced') return 'leave';
        if ((kind === 'bug' || kind === 'poison') && attempt + 1 >= maxAttempts && givenUp === undefined) {
          // The sink isolates bad records itself; a whole batch refused again and again is a bug
          // or a schema change: its records are reported, not retried for ever.
          givenUp = error;
          metrics.failedAfterAttempts.inc({ stage: stage.name, reason: reasonOf(error) }, decoded.length);
          metrics.errors.inc({ stage: stage.name, reason: reasonOf(error) }, decoded.length);
          logger.error(
            { partition, attempts: attempt + 1, records: decoded.length, err: error },
            'the sink refused the batch on every attempt; routing its records to the error topic',
          );
          return 'now';
        }
        return 'later';
      },
      run.retryOptions(partition, 'sink write failed; retrying from the same position'),
    );
    if (written === undefined) return false;
    stored.set(partition, BigInt(nextOffset));
    scope.resolveOffset(slice[slice.length - 1]!.offset);
    metrics.recordsIn.inc({ stage: stage.name }, fresh.length);
    metrics.batchSize.observe({ stage: stage.name }, written);
    // A hint for lag metrics and tools; the sink's own offsets are the truth.
    await consumer
      .commit([{ partition, offset: nextOffset }])
      .catch((error: unknown) => logger.debug({ err: errorMessage(error) }, 'committing the offset hint failed'));
    return true;
  }

  await consumer.start({
    async onAssigned(assigned) {
      run.joined = true;
      const assignment = ++generation;
      metrics.assignedPartitions.set({ stage: stage.name }, assigned.length);
      owed.mark(assigned);
      void sendOwedOnAssignment(assigned, assignment);
      // Offsets must be known before the first batch: the sink's store says where to resume.
      let offsets: Map<number, string>;
      try {
        offsets = await sink.storedOffsets(groupId, stage.input);
      } catch (error) {
        // The sink's own write still refuses a batch below its stored offset; only the skip is lost.
        logger.error({ err: errorMessage(error) }, 'reading stored offsets failed; resuming from the committed hints');
        return;
      }
      for (const partition of assigned) {
        const offset = offsets.get(partition);
        if (offset === undefined) continue;
        stored.set(partition, BigInt(offset));
        consumer.seek(partition, offset);
      }
      logger.info({ partitions: assigned, stored_offsets: Object.fromEntries(offsets) }, 'partitions assigned; resuming from stored offsets');
    },
    async onRevoked(revoked) {
      logger.info({ partitions: revoked }, 'partitions revoked');
    },
    async eachBatch(partition, records, scope) {
      for (let start = 0; start < records.length && scope.isActive(); start += maxBatch) {
        if (!(await writeSlice(partition, records.slice(start, start + maxBatch), scope))) return;
      }
    },
  });

  return run.running(consumer);
}
