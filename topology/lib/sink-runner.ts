/**
 * Runs a sink stage exactly once into an external store: the sink writes each partition
 * batch and the partition's next offset in one transaction of its own (Kafka's committed
 * offsets are only a hint for lag metrics). On assignment the consumer seeks to the sink's
 * stored offsets, and any message below them is skipped, so a replay after a crash or a
 * rebalance never writes a record twice.
 */
import type { Consumer, Kafka, Producer } from 'kafkajs';
import type { EventCodec } from '../../core/event-codec.js';
import { errorMessage, PipelineError } from '../../core/errors.js';
import { sendPerPartition, type PartitionCountOf } from '../../core/partitioned-send.js';
import type { Logger } from '../../core/logger.js';
import type { StageMetrics } from './metrics.js';
import { backoffMs, isPoison, sleepWithHeartbeat } from './retry.js';
import { encodeEmit, headersOf, isRebalance, onConsumerCrash, processingErrorOf, type RunningStage } from './transform-runner.js';
import { groupIdOf, type Emit, type InputMessage, type SinkStage } from './types.js';

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
  kafka: Kafka;
  codec: EventCodec;
  logger: Logger;
  metrics: StageMetrics;
  /** Idempotent producer (acks=all) for the sink's events. */
  producer: Producer;
  /** Partitions of each output topic (events are sent one partition per request). */
  partitionCountOf: PartitionCountOf;
  /** Most records per sink batch: fetched batches are split beyond this. */
  maxBatchRecords: number;
  /** How long the broker may wait to fill a fetch (the batch linger). */
  lingerMs: number;
  /** Bytes a fetch may return per partition (the batch size cap in bytes). */
  maxBatchBytes: number;
  /** Called when the consumer stopped for good (see StageDeps.onFatal). */
  onFatal?: (error: Error) => void;
}

export async function runSinkStage(stage: SinkStage, deps: SinkDeps): Promise<RunningStage> {
  const { kafka, codec, metrics, producer } = deps;
  const groupId = groupIdOf(stage);
  const logger = deps.logger.child({ stage: stage.name });
  const sink = stage.sink();
  const maxBatch = stage.maxBatchRecords ?? deps.maxBatchRecords;
  const topicOf = (to: string) => (to === 'errors' ? stage.errors : stage.outputs[to]);
  /** The sink's stored next offset per partition: messages below it were already written. */
  const stored = new Map<number, bigint>();
  let stopping = false;
  let inGroup = false;
  /** Counts group joins: a retry loop of an older assignment stops when a newer one begins. */
  let generation = 0;
  const owed = new OwedEvents();

  /** Sends what the marked ones among `partitions` owe (nothing, without asking the sink, when none is marked). */
  async function sendOwed(partitions: number[]): Promise<number> {
    if (sink.sendPending === undefined) return 0;
    const snapshot = owed.snapshot(partitions);
    if (snapshot.size === 0) return 0;
    const sent = await sink.sendPending(groupId, stage.input, [...snapshot.keys()], produce);
    owed.served(snapshot);
    return sent;
  }

  const consumer: Consumer = kafka.consumer({
    groupId,
    readUncommitted: false,
    allowAutoTopicCreation: false,
    sessionTimeout: 30_000,
    heartbeatInterval: 3_000,
    maxWaitTimeInMs: deps.lingerMs,
    minBytes: 64 * 1024,
    maxBytesPerPartition: deps.maxBatchBytes,
  });

  async function refreshStoredOffsets(): Promise<Map<number, string>> {
    const offsets = await sink.storedOffsets(groupId, stage.input);
    for (const [partition, offset] of offsets) stored.set(partition, BigInt(offset));
    return offsets;
  }

  /**
   * Sends what committed batches of these partitions still owe (a replica that died between its
   * commit and its send), retrying with backoff until it succeeds or the assignment changes: a
   * partition with no new input would otherwise keep its events until the next batch.
   */
  async function sendPendingOnAssignment(partitions: number[], joined: number): Promise<void> {
    if (sink.sendPending === undefined || partitions.length === 0) return;
    for (let attempt = 0; !stopping && joined === generation; attempt++) {
      try {
        const sent = await sendOwed(partitions);
        if (sent > 0) logger.info({ partitions, batches: sent }, 'sent the events of batches committed before the last assignment');
        return;
      } catch (error) {
        const delay = backoffMs(attempt);
        logger.warn({ partitions, attempt, delay_ms: delay, err: errorMessage(error) }, 'sending pending sink events failed; retrying');
        await new Promise((resolve) => setTimeout(resolve, delay));
      }
    }
  }

  consumer.on(consumer.events.GROUP_JOIN, (event) => {
    inGroup = true;
    const joined = ++generation;
    const assigned = event.payload.memberAssignment[stage.input] ?? [];
    metrics.assignedPartitions.set({ stage: stage.name }, assigned.length);
    owed.mark(assigned);
    void sendPendingOnAssignment(assigned, joined);
    refreshStoredOffsets().then(
      (offsets) => {
        if (stopping) return;
        for (const partition of assigned) {
          const offset = offsets.get(partition);
          if (offset === undefined) continue;
          try {
            consumer.seek({ topic: stage.input, partition, offset });
          } catch (error) {
            // A rebalance or shutdown raced us; the offset filter still skips written messages.
            logger.debug({ partition, err: error }, 'seek to the stored offset skipped');
          }
        }
        logger.info({ partitions: assigned, stored_offsets: Object.fromEntries(offsets) }, 'joined group; resuming from stored offsets');
      },
      (error: unknown) => logger.error({ err: error }, 'reading stored offsets failed; skipping by offset instead'),
    );
  });
  onConsumerCrash(consumer, logger, deps.onFatal, () => void (inGroup = false));
  consumer.on(consumer.events.STOP, () => void (inGroup = false));

  async function produce(emits: Emit[]): Promise<void> {
    if (emits.length === 0) return;
    const byTopic = new Map<string, Awaited<ReturnType<typeof encodeEmit>>[]>();
    for (const emit of emits) {
      const topic = topicOf(emit.to);
      if (topic === undefined) throw new Error(`stage ${stage.name} emitted to undeclared output ${emit.to}`);
      const list = byTopic.get(topic) ?? [];
      list.push(await encodeEmit(codec, topic, emit));
      byTopic.set(topic, list);
    }
    await sendPerPartition(producer, [...byTopic].map(([topic, messages]) => ({ topic, messages })), deps.partitionCountOf);
    for (const [topic, messages] of byTopic) metrics.recordsOut.inc({ stage: stage.name, topic }, messages.length);
  }

  await consumer.connect();
  await consumer.subscribe({ topic: stage.input, fromBeginning: true });
  // Offsets must be known before the first batch: a fresh replica may start mid-stream.
  await refreshStoredOffsets();
  await consumer.run({
    autoCommit: false,
    eachBatchAutoResolve: false,
    partitionsConsumedConcurrently: 3,
    eachBatch: async ({ batch, resolveOffset, heartbeat, isRunning, isStale, pause }) => {
      const partition = batch.partition;
      for (let start = 0; start < batch.messages.length; start += maxBatch) {
        const slice = batch.messages.slice(start, start + maxBatch);
        const nextOffset = String(BigInt(slice[slice.length - 1]!.offset) + 1n);
        const floor = stored.get(partition) ?? 0n;
        const fresh = slice.filter((message) => BigInt(message.offset) >= floor);
        if (fresh.length === 0) {
          resolveOffset(slice[slice.length - 1]!.offset);
          continue;
        }
        const decoded: InputMessage<unknown>[] = [];
        const undecodable: Emit[] = [];
        for (const message of fresh) {
          const base = { topic: stage.input, partition, offset: message.offset, headers: headersOf(message) };
          try {
            if (message.value === null) throw new PipelineError('EMPTY_MESSAGE', 'the message has no value');
            decoded.push({ ...base, key: message.key?.toString(), value: await codec.decode(message.value) });
          } catch (error) {
            undecodable.push(processingErrorOf(stage.name, base, error));
          }
        }
        for (let attempt = 0; ; attempt++) {
          if (stopping || !isRunning() || isStale()) return;
          const started = process.hrtime.bigint();
          try {
            // Events a committed batch of this partition may still owe go out first, in order.
            await sendOwed([partition]);
            const { written } = await sink.write(
              { topic: stage.input, partition, messages: decoded, nextOffset },
              (emits) => produce([...undecodable, ...emits]),
              groupId,
            );
            stored.set(partition, BigInt(nextOffset));
            resolveOffset(slice[slice.length - 1]!.offset);
            // A hint for lag metrics and tools; the sink's own offsets are the truth.
            await consumer
              .commitOffsets([{ topic: stage.input, partition, offset: nextOffset }])
              .catch((error: unknown) => logger.debug({ err: error }, 'committing the offset hint failed'));
            metrics.recordsIn.inc({ stage: stage.name }, fresh.length);
            metrics.batchSize.observe({ stage: stage.name }, written);
            metrics.batchSeconds.observe({ stage: stage.name }, Number(process.hrtime.bigint() - started) / 1e9);
            if (undecodable.length > 0) metrics.errors.inc({ stage: stage.name, reason: 'UNDECODABLE' }, undecodable.length);
            break;
          } catch (error) {
            // The batch may have committed before the failure (a failed send of its events).
            owed.mark([partition]);
            if (isRebalance(error)) throw error;
            if (isPoison(error)) {
              // The sink isolates bad records itself; a poison batch means a bug or a schema change.
              logger.error({ partition, err: error }, 'the sink refused the whole batch; retrying (fix and it resumes)');
            }
            metrics.retries.inc({ stage: stage.name });
            const delay = backoffMs(attempt);
            logger.warn({ partition, attempt, delay_ms: delay, err: errorMessage(error) }, 'sink write failed; retrying from the same position');
            const resume = pause();
            await sleepWithHeartbeat(delay, heartbeat, () => stopping || !isRunning());
            resume();
          }
        }
        await heartbeat();
      }
    },
  });

  return {
    name: stage.name,
    healthy: () => inGroup && !stopping,
    async stop() {
      stopping = true;
      await consumer.disconnect();
      logger.info('stage stopped');
    },
  };
}
