/**
 * A topology is data: named stages, each reading one topic and writing to named outputs,
 * with an error route. A stage's logic is a plain function of one input message, so unit
 * tests call it without Kafka; the runners (transform-runner, sink-runner) do the wiring.
 */
import type { Logger } from '../../core/logger.js';

/** One decoded input message and where it came from. */
export interface InputMessage<T> {
  topic: string;
  partition: number;
  offset: string;
  key: string | undefined;
  headers: Record<string, string>;
  value: T;
}

/** One output message: which declared output it goes to, its key, value and request id. */
export interface Emit {
  to: string;
  key: string;
  value: unknown;
  requestId: string;
  /** The output partition, when the stage spreads work itself; otherwise murmur2 of the key picks it. */
  partition?: number;
}

export interface StageContext {
  logger: Logger;
}

export type TransformFn<T> = (input: InputMessage<T>, context: StageContext) => AsyncIterable<Emit> | Iterable<Emit>;

interface StageBase {
  name: string;
  /** Consumer group; defaults to `etl-<name>`. */
  groupId?: string;
  /** Input topic. */
  input: string;
  /** Output name → topic. */
  outputs: Record<string, string>;
  /** Topic that receives a ProcessingError for every message this stage cannot process. */
  errors: string;
  doc: string;
}

export interface TransformStage<T = unknown> extends StageBase {
  kind: 'transform';
  process: TransformFn<T>;
  /** Most input messages per Kafka transaction (default 500). */
  messagesPerTransaction?: number;
  /**
   * A transaction takes no further input once it produced this many messages (default 5000).
   * One input that yields more (a big file) is committed in several transactions: each commits
   * the input's own offset with the number of its outputs already committed as offset
   * metadata, and a replica that takes over skips that many outputs of the input. So `process`
   * must yield the same outputs in the same order for the same input (it may be run again).
   */
  maxOutputsPerTransaction?: number;
}

export interface SinkBatch<T> {
  topic: string;
  partition: number;
  messages: InputMessage<T>[];
  /** Offset after the last message of the batch. */
  nextOffset: string;
  /**
   * Events the runner owes for this batch: ProcessingErrors of records it could not decode or
   * gave up on. The sink announces them with the batch's own events (kept in the same outbox),
   * so they are sent for a committed batch even if the first send fails.
   */
  events: Emit[];
}

export interface Sink<T> {
  /** Where each partition's consumption must resume: the sink's own record of what it committed. */
  storedOffsets(groupId: string, topic: string): Promise<Map<number, string>>;
  /**
   * Writes a batch and the partition's next offset atomically, keeping the batch's events with
   * it (an outbox), then sends them with `produce` and forgets them. Events therefore exist for
   * committed batches only; a send that fails after the commit is repeated by `sendPending`.
   */
  write(batch: SinkBatch<T>, produce: (emits: Emit[]) => Promise<void>, groupId: string): Promise<{ written: number }>;
  /**
   * Sends the kept events of committed batches of these partitions that were never
   * acknowledged (a send failed, or a replica died between its commit and its send). The
   * runner calls it on assignment and, after a failed write, before the partition's next write
   * (the failure may have come after the commit); an event may thus go out twice,
   * never for a batch that was not committed. Returns how many batches' events it sent.
   */
  sendPending?(groupId: string, topic: string, partitions: readonly number[], produce: (emits: Emit[]) => Promise<void>): Promise<number>;
}

export interface SinkStage<T = unknown> extends StageBase {
  kind: 'sink';
  sink: () => Sink<T>;
  /** Most records per sink batch (a fetched batch is split beyond this). */
  maxBatchRecords?: number;
}

// A topology holds stages of different value types; each stage's own type is checked where it is declared.
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export type Stage = TransformStage<any> | SinkStage<any>;

/** A stage running in this process. */
export interface RunningStage {
  name: string;
  /** True once the consumer joined its group, until it stops (for /readiness). */
  healthy(): boolean;
  stop(): Promise<void>;
}

export interface Topology {
  name: string;
  stages: Stage[];
}

export function groupIdOf(stage: Stage): string {
  return stage.groupId ?? `etl-${stage.name}`;
}

/** Checks the wiring once, when the topology is declared. */
export function defineTopology(topology: Topology): Topology {
  const names = new Set<string>();
  for (const stage of topology.stages) {
    if (names.has(stage.name)) throw new Error(`topology ${topology.name}: duplicate stage name ${stage.name}`);
    names.add(stage.name);
    if (Object.values(stage.outputs).includes(stage.input)) {
      throw new Error(`stage ${stage.name} writes to its own input topic ${stage.input}`);
    }
  }
  return topology;
}
