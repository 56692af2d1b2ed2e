/**
 * An in-memory StageDriver, in the spirit of Kafka Streams' TopologyTestDriver: topics,
 * consumer groups, transactions and fencing as the runners see them through `driver.ts`, so
 * that poison, retries, resume after a takeover, fencing and shutdown are proven in
 * milliseconds without a broker. It mirrors what `kafka-driver.ts` gets from librdkafka:
 *
 * - Topics have `partitions` partitions (`defaultPartitions` of core/pipeline.ts unless told,
 *   whatever PIPELINE_PARTITIONS says: a test's layout must not depend on its environment)
 *   and are created on first use. A record's partition is Java's murmur2 of its key
 *   (`core/murmur2.ts`, what the pipeline's producers use), so a key lands where it would on
 *   the real cluster.
 * - Consumers read committed only. A transaction holds its sends and, at commit, appends them
 *   and commits its input offsets (with their metadata) in one step; abort and fencing discard
 *   them. Each transaction leaves a marker offset behind, as Kafka's control records do, so
 *   transactionally written topics have gaps in their offsets.
 * - Opening a transactional producer with an id that is open already fences the older one:
 *   its open transaction is discarded and its next begin, send, commit or abort rejects with
 *   librdkafka's ERR__FENCED (a KafkaJSError, code -144, fatal), which `classifyFailure` takes
 *   for 'fenced'. Offsets committed in a transaction are refused (ILLEGAL_GENERATION,
 *   UNKNOWN_MEMBER_ID) once the committing consumer left the group or missed a rebalance
 *   (KIP-447).
 * - A group splits each topic's partitions in ranges over its members in join order, with
 *   eager rebalancing: every member's partitions are revoked (its onRevoked awaited, then its
 *   running batches), then the new assignment is handed out (onAssigned awaited; a `seek`
 *   made during onAssigned is where the partition starts, otherwise the committed offset,
 *   otherwise the beginning).
 * - Each assigned partition hands batches of up to `maxBatchMessages` records to eachBatch,
 *   one at a time; partitions run concurrently. What a batch did not resolve is handed again
 *   (the client seeks back to the first unresolved offset). A paused partition is not handed
 *   over until resumed; `stop()` lets running batches end, then revokes and leaves.
 *
 * Beyond the driver interface, tests get: direct production and reading of topics, a group's
 * committed offsets, fault injection (`failNext`, `hold`, `intercept`), forced rebalances and
 * evictions, `idle()` and `until()` (promises resolved by the driver's own state changes,
 * never by timers), a `history` of what happened and `violations`: uses of the interface the
 * real client would not survive (begin while a transaction is open, a send after commit, a
 * seek outside onAssigned, resolving an offset outside the batch, eachBatch throwing, a
 * partition handed again and again without progress).
 *
 * Not modelled: record sizes (maxWaitMs, minBytes, maxBytesPerPartition are ignored), sessions
 * and heartbeats (see `evict`), transaction timeouts, the last stable offset holding back
 * later non-transactional records, and the interleaving of concurrent transactions in one
 * partition (a transaction's records are appended together when it commits).
 */
import { javaPartitionOf } from '../../../core/murmur2.js';
import { defaultPartitions } from '../../../core/pipeline.js';
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
  StageTransaction,
  TransactionalProducer,
} from '../driver.js';

/** librdkafka's codes for the errors this driver raises (see @confluentinc/kafka-javascript's lib/error.js). */
export const kafkaErrorCodes = {
  fenced: -144, // ERR__FENCED
  state: -172, // ERR__STATE
  timedOut: -185, // ERR__TIMED_OUT
  transport: -195, // ERR__TRANSPORT
  illegalGeneration: 22, // ERR_ILLEGAL_GENERATION
  unknownMemberId: 25, // ERR_UNKNOWN_MEMBER_ID
} as const;

export interface KafkaClientError extends Error {
  name: 'KafkaJSError';
  code: number;
  fatal: boolean;
  retriable: boolean;
  abortable: boolean;
}

/** An error shaped like the client's KafkaJSError, for fault injection and for what the driver itself rejects with. */
export function kafkaError(code: number, message: string, flags: { fatal?: boolean; retriable?: boolean; abortable?: boolean } = {}): KafkaClientError {
  const { fatal = false, retriable = false, abortable = false } = flags;
  return Object.assign(new Error(message), { name: 'KafkaJSError' as const, code, fatal, retriable, abortable });
}

function fencedError(transactionalId: string): KafkaClientError {
  return kafkaError(kafkaErrorCodes.fenced, `Local: This instance has been fenced by a newer instance (transactional id ${transactionalId})`, { fatal: true });
}

function stateError(message: string): KafkaClientError {
  return kafkaError(kafkaErrorCodes.state, `Local: Erroneous state: ${message}`);
}

/** A record as it sits in a topic, readable by read_committed consumers. */
export interface StoredRecord extends ConsumedRecord {
  topic: string;
  partition: number;
}

export type DriverOperation =
  /** Initialising a transactional producer (where fencing happens). */
  | 'init'
  | 'begin'
  | 'transactionalSend'
  | 'commit'
  | 'abort'
  /** A send of the plain idempotent producer (`driver.send`). */
  | 'send'
  /** A consumer's plain offset commit (`consumer.commit`). */
  | 'offsetCommit'
  /** A consumer's read of its group's committed offsets. */
  | 'committed';

/** What an intercepted operation is about to do. */
export interface OperationCall {
  operation: DriverOperation;
  transactionalId?: string;
  groupId?: string;
  records?: readonly OutgoingRecord[];
  offsets?: readonly OffsetCommit[];
  partitions?: readonly number[];
}

/** Runs before the operation: throwing (or rejecting) fails it, and the operation waits while it is pending. */
export type Interceptor = (call: OperationCall) => void | Promise<void>;

/** A call held by `hold`: it waits until released (then proceeds) or failed (then rejects). */
export interface Hold {
  /** Resolves when a matching call arrives (and is held). */
  readonly reached: Promise<OperationCall>;
  release(): void;
  fail(error: unknown): void;
}

export type DriverEvent =
  | { type: 'assigned' | 'revoked' | 'lost'; groupId: string; member: number; partitions: number[] }
  | { type: 'batch'; groupId: string; topic: string; partition: number; member: number; firstOffset: string; lastOffset: string; count: number }
  | { type: 'pause' | 'resume'; groupId: string; topic: string; partition: number }
  | { type: 'transaction'; transactionalId: string; outcome: 'committed' | 'aborted' | 'fenced'; records: number; offsets: OffsetCommit[] }
  | { type: 'fenced'; transactionalId: string }
  | { type: 'offsetCommit'; groupId: string; topic: string; offsets: OffsetCommit[] };

export interface MemoryDriverOptions {
  /** Partitions of a topic created on first use. */
  partitions?: number;
  /** A partition handed again this many times in a row without any offset resolved is a violation, and no longer handed. */
  stallLimit?: number;
  /**
   * A batch that pauses its partition more often than this (a retry loop that never ends) is a
   * violation and is made inactive, so that the runner leaves it: a loop of resolved promises
   * would otherwise starve the event loop, and with it the test's own timeout.
   */
  maxPausesPerBatch?: number;
}

type Entry =
  | { kind: 'record'; key: Buffer | null; value: Buffer | null; headers: Record<string, string> }
  /** A record of an aborted or fenced transaction: it takes an offset and is never delivered. */
  | { kind: 'aborted' }
  /** A transaction's commit or abort marker. */
  | { kind: 'marker' };

interface Buffered {
  topic: string;
  partition: number;
  key: Buffer;
  value: Buffer;
  headers: Record<string, string>;
}

class Group {
  readonly members: MemoryConsumer[] = [];
  generation = 0;
  /** topic → partition → committed offset. */
  readonly offsets = new Map<string, Map<number, { offset: string; metadata: string }>>();
  queue: Promise<void> = Promise.resolve();
  rebalancing = 0;

  constructor(readonly id: string) {}

  committed(topic: string, partition: number): { offset: string; metadata: string } | undefined {
    return this.offsets.get(topic)?.get(partition);
  }

  commit(topic: string, offsets: readonly OffsetCommit[], withMetadata: boolean): void {
    let partitions = this.offsets.get(topic);
    if (partitions === undefined) this.offsets.set(topic, (partitions = new Map<number, { offset: string; metadata: string }>()));
    for (const { partition, offset, metadata } of offsets) partitions.set(partition, { offset, metadata: withMetadata ? (metadata ?? '') : '' });
  }
}

/** The cluster's state, shared by the driver facade, its consumers and its producers. */
class Broker {
  readonly topics = new Map<string, Entry[][]>();
  readonly groups = new Map<string, Group>();
  /** The open (unfenced, unclosed) producer of each transactional id. */
  readonly producers = new Map<string, MemoryTransactionalProducer>();
  readonly interceptors: Array<{ operation: DriverOperation; run: Interceptor }> = [];
  readonly consumers: MemoryConsumer[] = [];
  readonly listeners = new Set<() => void>();
  readonly history: DriverEvent[] = [];
  readonly violations: string[] = [];
  #nextMember = 1;

  constructor(readonly options: Required<MemoryDriverOptions>) {}

  nextMemberId(): number {
    return this.#nextMember++;
  }

  topic(name: string, partitions = this.options.partitions): Entry[][] {
    let topic = this.topics.get(name);
    if (topic === undefined) {
      if (!Number.isSafeInteger(partitions) || partitions < 1) throw new Error(`topic ${name}: ${partitions} is not a partition count`);
      this.topics.set(name, (topic = Array.from({ length: partitions }, () => [])));
    }
    return topic;
  }

  partitionOf(topic: string, key: string): number {
    return javaPartitionOf(key, this.topic(topic).length);
  }

  append(topic: string, partition: number, entry: Entry): string {
    const log = this.topic(topic)[partition];
    if (log === undefined) throw new Error(`topic ${topic} has no partition ${partition}`);
    log.push(entry);
    return String(log.length - 1);
  }

  /** Wakes the consumers of these partitions: new records may be there. */
  appended(topic: string, partitions: Iterable<number>): void {
    const touched = new Set(partitions);
    for (const consumer of this.consumers) if (consumer.topic === topic) consumer.wake(touched);
    this.changed();
  }

  group(id: string): Group {
    let group = this.groups.get(id);
    if (group === undefined) this.groups.set(id, (group = new Group(id)));
    return group;
  }

  async intercept(call: OperationCall): Promise<void> {
    for (const interceptor of [...this.interceptors]) {
      if (interceptor.operation === call.operation) await interceptor.run(call);
    }
  }

  violation(message: string): void {
    this.violations.push(message);
    this.changed();
  }

  record(event: DriverEvent): void {
    this.history.push(event);
  }

  changed(): void {
    for (const listener of [...this.listeners]) listener();
  }

  /** No rebalance runs, no consumer is stopping, and every running consumer's partitions wait for records or a resume. */
  idle(): boolean {
    for (const group of this.groups.values()) if (group.rebalancing > 0) return false;
    return this.consumers.every((consumer) => consumer.idle());
  }

  /**
   * An eager rebalance: every member's partitions are revoked (onRevoked and running batches
   * awaited), `change` alters the membership, and the partitions are handed out again.
   */
  rebalance(group: Group, change?: () => void): Promise<void> {
    group.rebalancing++;
    this.changed();
    const run = group.queue.then(async () => {
      await Promise.all(group.members.map((member) => member.revokeAll()));
      change?.();
      group.generation++;
      const plan = this.#plan(group);
      await Promise.all(group.members.map((member) => member.assign(group.generation, plan.get(member) ?? [])));
    });
    group.queue = run.catch(() => undefined);
    return run.finally(() => {
      group.rebalancing--;
      this.changed();
    });
  }

  /** Range assignment per topic over the members in join order. */
  #plan(group: Group): Map<MemoryConsumer, number[]> {
    const plan = new Map<MemoryConsumer, number[]>();
    const byTopic = new Map<string, MemoryConsumer[]>();
    for (const member of group.members) {
      let members = byTopic.get(member.topic);
      if (members === undefined) byTopic.set(member.topic, (members = []));
      members.push(member);
    }
    for (const [topic, members] of byTopic) {
      const count = this.topic(topic).length;
      const each = Math.floor(count / members.length);
      const extra = count % members.length;
      let next = 0;
      members.forEach((member, index) => {
        const take = each + (index < extra ? 1 : 0);
        plan.set(
          member,
          Array.from({ length: take }, (_, i) => next + i),
        );
        next += take;
      });
    }
    return plan;
  }
}

/** One partition as one consumer owns it, from assignment to revocation. */
class Assignment {
  revoked = false;
  /** Waiting for records or a resume (no batch running). */
  parked = false;
  stalled = false;
  readonly pauses = new Set<object>();
  /** Consecutive batches that resolved nothing. */
  fruitless = 0;
  worker: Promise<void> = Promise.resolve();
  #wake: (() => void) | undefined;

  constructor(
    readonly partition: number,
    public position: bigint,
  ) {}

  park(): Promise<void> {
    this.parked = true;
    return new Promise((resolve) => (this.#wake = resolve));
  }

  wake(): void {
    this.parked = false;
    const wake = this.#wake;
    this.#wake = undefined;
    wake?.();
  }
}

type ConsumerState = 'new' | 'running' | 'stopping' | 'stopped';

export class MemoryConsumer implements StageConsumer {
  readonly member: number;
  readonly #broker: Broker;
  readonly #group: Group;
  readonly #assignment = new Map<number, Assignment>();
  #handlers: ConsumerHandlers | undefined;
  #state: ConsumerState = 'new';
  /** The group generation this member last joined. */
  #generation = -1;
  /** Partitions being assigned, with the seeks made during onAssigned. */
  #assigning: { partitions: Set<number>; starts: Map<number, bigint> } | undefined;
  /** The lost-assignment callback of an evicted member, still running. */
  #lost: Promise<void> = Promise.resolve();
  #stopped: Promise<void> | undefined;
  /** Batches handed over and not returned yet, revoked partitions' included. */
  #batchesRunning = 0;

  constructor(
    broker: Broker,
    readonly options: ConsumerOptions,
  ) {
    this.#broker = broker;
    this.#group = broker.group(options.groupId);
    this.member = broker.nextMemberId();
    broker.topic(options.topic);
  }

  get topic(): string {
    return this.options.topic;
  }

  get groupId(): string {
    return this.options.groupId;
  }

  get state(): ConsumerState {
    return this.#state;
  }

  /** The partitions this consumer owns now. */
  assigned(): number[] {
    return [...this.#assignment.keys()].sort((a, b) => a - b);
  }

  /** A member of its group at the group's current generation: its offset commits are accepted. */
  isCurrentMember(): boolean {
    return this.#group.members.includes(this) && this.#generation === this.#group.generation;
  }

  async start(handlers: ConsumerHandlers): Promise<void> {
    if (this.#state !== 'new') throw stateError('the consumer was started already');
    this.#handlers = handlers;
    this.#state = 'running';
    await this.#broker.rebalance(this.#group, () => this.#group.members.push(this));
  }

  async committed(partitions: readonly number[]): Promise<Map<number, CommittedOffset>> {
    await this.#broker.intercept({ operation: 'committed', groupId: this.groupId, partitions });
    const result = new Map<number, CommittedOffset>();
    for (const partition of partitions) {
      const entry = this.#group.committed(this.topic, partition);
      result.set(partition, entry === undefined ? { offset: null, metadata: '' } : { offset: entry.offset, metadata: entry.metadata });
    }
    return result;
  }

  seek(partition: number, offset: string): void {
    // kafka-driver applies a seek only through the assignment onAssigned returns.
    if (this.#assigning === undefined) {
      this.#broker.violation(`${this.groupId}: seek(${partition}, ${offset}) outside onAssigned has no effect with kafka-driver`);
      return;
    }
    if (this.#assigning.partitions.has(partition)) this.#assigning.starts.set(partition, BigInt(offset));
  }

  async commit(offsets: readonly OffsetCommit[]): Promise<void> {
    await this.#broker.intercept({ operation: 'offsetCommit', groupId: this.groupId, offsets });
    this.checkMembership();
    // kafka-driver's commitOffsets passes no metadata.
    this.#group.commit(this.topic, offsets, false);
    this.#broker.record({ type: 'offsetCommit', groupId: this.groupId, topic: this.topic, offsets: offsets.map((offset) => ({ ...offset })) });
    this.#broker.changed();
  }

  stop(): Promise<void> {
    this.#stopped ??= this.#stop();
    return this.#stopped;
  }

  async #stop(): Promise<void> {
    if (this.#state === 'new') {
      this.#state = 'stopped';
      return;
    }
    this.#state = 'stopping';
    for (const assignment of this.#assignment.values()) assignment.wake();
    this.#broker.changed();
    if (this.#group.members.includes(this)) {
      // Leaving the group revokes this member's partitions like any rebalance, and moves them on.
      await this.#broker.rebalance(this.#group, () => this.#group.members.splice(this.#group.members.indexOf(this), 1));
    }
    await this.revokeAll();
    await this.#lost;
    this.#state = 'stopped';
    this.#broker.changed();
  }

  /** Rejects like the broker does an offset commit of a member that left or missed a rebalance. */
  checkMembership(): void {
    if (!this.#group.members.includes(this)) {
      throw kafkaError(kafkaErrorCodes.unknownMemberId, `Broker: Unknown member: ${this.groupId} member ${this.member} is not in the group`, {
        abortable: true,
      });
    }
    if (this.#generation !== this.#group.generation) {
      throw kafkaError(
        kafkaErrorCodes.illegalGeneration,
        `Broker: Specified group generation id is not valid: ${this.#generation}, the group is at ${this.#group.generation}`,
        { abortable: true },
      );
    }
  }

  /** The group coordinator dropped this member (a session timeout): its partitions are lost at once. */
  evicted(): void {
    const lost = [...this.#assignment.values()];
    for (const assignment of lost) {
      assignment.revoked = true;
      assignment.wake();
    }
    this.#assignment.clear();
    if (lost.length === 0) return;
    const partitions = lost.map((assignment) => assignment.partition);
    this.#broker.record({ type: 'lost', groupId: this.groupId, member: this.member, partitions });
    // The member hears of it later, and nobody waits for it.
    this.#lost = Promise.resolve()
      .then(() => this.#handlers?.onRevoked(partitions))
      .catch((error: unknown) => this.#broker.violation(`${this.groupId} member ${this.member}: onRevoked threw: ${String(error)}`))
      .then(() => Promise.all(lost.map((assignment) => assignment.worker)))
      .then(() => undefined);
  }

  async revokeAll(): Promise<void> {
    const owned = [...this.#assignment.values()];
    if (owned.length === 0) return;
    for (const assignment of owned) {
      assignment.revoked = true;
      assignment.wake();
    }
    this.#assignment.clear();
    const partitions = owned.map((assignment) => assignment.partition);
    this.#broker.record({ type: 'revoked', groupId: this.groupId, member: this.member, partitions });
    this.#broker.changed();
    try {
      await this.#handlers?.onRevoked(partitions);
    } catch (error) {
      this.#broker.violation(`${this.groupId} member ${this.member}: onRevoked threw: ${String(error)}`);
    }
    // The client hands the partitions back only once their running batches returned.
    await Promise.all(owned.map((assignment) => assignment.worker));
  }

  async assign(generation: number, partitions: number[]): Promise<void> {
    this.#generation = generation;
    if (this.#state !== 'running' || this.#handlers === undefined) return;
    this.#assigning = { partitions: new Set(partitions), starts: new Map() };
    this.#broker.record({ type: 'assigned', groupId: this.groupId, member: this.member, partitions: [...partitions] });
    try {
      await this.#handlers.onAssigned([...partitions]);
    } catch (error) {
      this.#broker.violation(`${this.groupId} member ${this.member}: onAssigned threw: ${String(error)}`);
    }
    const { starts } = this.#assigning;
    this.#assigning = undefined;
    if (this.#state !== 'running' || generation !== this.#group.generation) return;
    for (const partition of partitions) {
      const committed = this.#group.committed(this.topic, partition);
      const start = starts.get(partition) ?? (committed === undefined ? 0n : BigInt(committed.offset));
      const assignment = new Assignment(partition, start);
      this.#assignment.set(partition, assignment);
      assignment.worker = this.#work(assignment);
    }
  }

  /** Wakes the workers of these partitions. */
  wake(partitions: ReadonlySet<number>): void {
    for (const [partition, assignment] of this.#assignment) if (partitions.has(partition)) assignment.wake();
  }

  idle(): boolean {
    if (this.#state === 'stopping' || this.#batchesRunning > 0) return false;
    if (this.#state !== 'running') return true;
    for (const assignment of this.#assignment.values()) if (!assignment.parked) return false;
    return true;
  }

  #live(assignment: Assignment): boolean {
    return this.#state === 'running' && !assignment.revoked && this.#assignment.get(assignment.partition) === assignment;
  }

  async #work(assignment: Assignment): Promise<void> {
    while (this.#live(assignment)) {
      const records = assignment.stalled || assignment.pauses.size > 0 ? [] : this.#fetch(assignment);
      if (records.length === 0) {
        const woken = assignment.park();
        this.#broker.changed();
        await woken;
        continue;
      }
      await this.#deliver(assignment, records);
    }
  }

  /** The committed records from the position on (markers and aborted records are stepped over). */
  #fetch(assignment: Assignment): ConsumedRecord[] {
    const log = this.#broker.topic(this.topic)[assignment.partition] ?? [];
    const records: ConsumedRecord[] = [];
    for (let offset = assignment.position; offset < BigInt(log.length) && records.length < this.options.maxBatchMessages; offset++) {
      const entry = log[Number(offset)]!;
      if (entry.kind !== 'record') {
        if (records.length === 0) assignment.position = offset + 1n;
        continue;
      }
      records.push({ offset: String(offset), key: entry.key, value: entry.value, headers: { ...entry.headers } });
    }
    return records;
  }

  async #deliver(assignment: Assignment, records: ConsumedRecord[]): Promise<void> {
    const { partition } = assignment;
    const first = BigInt(records[0]!.offset);
    const last = BigInt(records[records.length - 1]!.offset);
    const batch = { resolved: -1n, stale: false, pauses: 0 };
    const where = `${this.groupId} ${this.topic}[${partition}]`;
    const scope: BatchScope = {
      isActive: () => this.#live(assignment) && !batch.stale,
      resolveOffset: (offset) => {
        const resolved = BigInt(offset);
        if (resolved < first || resolved > last) {
          this.#broker.violation(`${where}: resolveOffset(${offset}) outside the batch ${first}..${last}`);
          return;
        }
        if (resolved > batch.resolved) batch.resolved = resolved;
      },
      pause: () => {
        const token = {};
        assignment.pauses.add(token);
        if (++batch.pauses > this.#broker.options.maxPausesPerBatch && !batch.stale) {
          batch.stale = true;
          this.#broker.violation(
            `${where}: the batch from offset ${first} paused ${batch.pauses} times (a retry loop that does not end); made inactive (maxPausesPerBatch)`,
          );
        }
        this.#broker.record({ type: 'pause', groupId: this.groupId, topic: this.topic, partition });
        return () => {
          if (!assignment.pauses.delete(token)) return;
          this.#broker.record({ type: 'resume', groupId: this.groupId, topic: this.topic, partition });
          if (assignment.pauses.size === 0 && assignment.parked) assignment.wake();
          this.#broker.changed();
        };
      },
    };
    this.#broker.record({
      type: 'batch',
      groupId: this.groupId,
      topic: this.topic,
      partition,
      member: this.member,
      firstOffset: String(first),
      lastOffset: String(last),
      count: records.length,
    });
    this.#batchesRunning++;
    try {
      await this.#handlers!.eachBatch(partition, records, scope);
    } catch (error) {
      // The client logs it and hands the unresolved records again; the runners never mean to throw.
      this.#broker.violation(`${where}: eachBatch threw: ${String(error)}`);
    } finally {
      this.#batchesRunning--;
      this.#broker.changed();
    }
    if (!this.#live(assignment)) return;
    if (batch.resolved >= first) {
      assignment.position = batch.resolved + 1n;
      assignment.fruitless = 0;
      return;
    }
    assignment.position = first;
    if (++assignment.fruitless >= this.#broker.options.stallLimit) {
      assignment.stalled = true;
      this.#broker.violation(
        `${where}: handed from offset ${first} ${assignment.fruitless} times in a row without an offset resolved; no longer handed (stallLimit)`,
      );
    }
  }
}

class MemoryTransaction implements StageTransaction {
  state: 'open' | 'committed' | 'aborted' | 'fenced' = 'open';
  readonly buffered: Buffered[] = [];

  constructor(
    readonly producer: MemoryTransactionalProducer,
    readonly broker: Broker,
  ) {}

  async send(records: readonly OutgoingRecord[]): Promise<void> {
    const { transactionalId } = this.producer;
    await this.broker.intercept({ operation: 'transactionalSend', transactionalId, records });
    this.producer.checkUsable();
    this.#checkOpen('send');
    for (const record of records) this.buffered.push(toBuffered(this.broker, record));
  }

  async commit(offsets: readonly OffsetCommit[]): Promise<void> {
    const { transactionalId, consumer } = this.producer;
    await this.broker.intercept({ operation: 'commit', transactionalId, groupId: consumer.groupId, records: this.buffered.map(fromBuffered), offsets });
    this.producer.checkUsable();
    this.#checkOpen('commit');
    if (offsets.length > 0) consumer.checkMembership();
    const touched = new Map<string, Set<number>>();
    for (const record of this.buffered) {
      this.broker.append(record.topic, record.partition, { kind: 'record', key: record.key, value: record.value, headers: record.headers });
      let partitions = touched.get(record.topic);
      if (partitions === undefined) touched.set(record.topic, (partitions = new Set()));
      partitions.add(record.partition);
    }
    for (const [topic, partitions] of touched) for (const partition of partitions) this.broker.append(topic, partition, { kind: 'marker' });
    if (offsets.length > 0) this.broker.group(consumer.groupId).commit(consumer.topic, offsets, true);
    this.state = 'committed';
    this.producer.current = undefined;
    this.broker.record({
      type: 'transaction',
      transactionalId,
      outcome: 'committed',
      records: this.buffered.length,
      offsets: offsets.map((offset) => ({ ...offset })),
    });
    for (const [topic, partitions] of touched) this.broker.appended(topic, partitions);
    this.broker.changed();
  }

  async abort(): Promise<void> {
    const { transactionalId } = this.producer;
    await this.broker.intercept({ operation: 'abort', transactionalId });
    // A fenced producer's abort fails too: librdkafka's fatal state.
    this.producer.checkUsable();
    if (this.state !== 'open') {
      if (this.producer.current !== undefined) {
        this.broker.violation(`${transactionalId}: abort() of a finished transaction while another is open (kafka-driver would abort that one)`);
      }
      throw stateError('no transaction is in progress');
    }
    this.discard('aborted');
  }

  /** Drops what was sent; the records keep their offsets, as aborted records do in Kafka. */
  discard(outcome: 'aborted' | 'fenced'): void {
    const touched = new Map<string, Set<number>>();
    for (const record of this.buffered) {
      this.broker.append(record.topic, record.partition, { kind: 'aborted' });
      let partitions = touched.get(record.topic);
      if (partitions === undefined) touched.set(record.topic, (partitions = new Set()));
      partitions.add(record.partition);
    }
    for (const [topic, partitions] of touched) for (const partition of partitions) this.broker.append(topic, partition, { kind: 'marker' });
    this.state = outcome;
    if (this.producer.current === this) this.producer.current = undefined;
    this.broker.record({ type: 'transaction', transactionalId: this.producer.transactionalId, outcome, records: this.buffered.length, offsets: [] });
    this.broker.changed();
  }

  #checkOpen(what: string): void {
    if (this.state === 'open' && this.producer.current === this) return;
    this.broker.violation(`${this.producer.transactionalId}: ${what}() on a transaction that is ${this.state}`);
    throw stateError(`${what} outside a transaction`);
  }
}

export class MemoryTransactionalProducer implements TransactionalProducer {
  fenced = false;
  closed = false;
  current: MemoryTransaction | undefined;

  constructor(
    readonly broker: Broker,
    readonly transactionalId: string,
    readonly consumer: MemoryConsumer,
  ) {}

  async begin(): Promise<StageTransaction> {
    await this.broker.intercept({ operation: 'begin', transactionalId: this.transactionalId });
    this.checkUsable();
    if (this.current !== undefined) {
      this.broker.violation(`${this.transactionalId}: begin() while a transaction is open`);
      throw stateError('a transaction is in progress already');
    }
    this.current = new MemoryTransaction(this, this.broker);
    return this.current;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    if (this.current !== undefined && !this.fenced) this.current.discard('aborted');
    if (this.broker.producers.get(this.transactionalId) === this) this.broker.producers.delete(this.transactionalId);
  }

  checkUsable(): void {
    if (this.fenced) throw fencedError(this.transactionalId);
    if (this.closed) throw stateError(`the producer ${this.transactionalId} is closed`);
  }

  /** A newer producer took the id: the open transaction is discarded, every later call fails. */
  fence(): void {
    this.fenced = true;
    this.current?.discard('fenced');
    this.broker.record({ type: 'fenced', transactionalId: this.transactionalId });
  }
}

function toBuffered(broker: Broker, record: OutgoingRecord): Buffered {
  if (typeof record.topic !== 'string' || typeof record.key !== 'string' || !Buffer.isBuffer(record.value)) {
    throw new TypeError(`an outgoing record needs a topic, a string key and a Buffer value: ${JSON.stringify({ topic: record.topic, key: record.key })}`);
  }
  for (const [name, value] of Object.entries(record.headers ?? {})) {
    if (typeof value !== 'string') throw new TypeError(`header ${name} of a record to ${record.topic} is not a string`);
  }
  const partitions = broker.topic(record.topic).length;
  if (record.partition !== undefined && !(Number.isSafeInteger(record.partition) && record.partition >= 0 && record.partition < partitions)) {
    throw new RangeError(`partition ${record.partition} of ${record.topic} does not exist (it has ${partitions})`);
  }
  return {
    topic: record.topic,
    partition: record.partition ?? broker.partitionOf(record.topic, record.key),
    key: Buffer.from(record.key, 'utf8'),
    value: record.value,
    headers: { ...record.headers },
  };
}

function fromBuffered(record: Buffered): OutgoingRecord {
  return { topic: record.topic, key: record.key.toString('utf8'), value: record.value, headers: { ...record.headers } };
}

/** A record to put on a topic directly (a test's input). */
export interface TestRecord {
  /** Picks the partition (murmur2) unless `partition` is given. */
  key?: string | null;
  value: Buffer | null;
  headers?: Record<string, string>;
  partition?: number;
}

export class MemoryDriver implements StageDriver {
  readonly #broker: Broker;

  constructor(options: MemoryDriverOptions = {}) {
    const { partitions = defaultPartitions, stallLimit = 50, maxPausesPerBatch = 1000 } = options;
    this.#broker = new Broker({ partitions, stallLimit, maxPausesPerBatch });
  }

  // The driver interface.

  consumer(options: ConsumerOptions): MemoryConsumer {
    const consumer = new MemoryConsumer(this.#broker, options);
    this.#broker.consumers.push(consumer);
    return consumer;
  }

  async transactionalProducer(transactionalId: string, consumer: StageConsumer): Promise<MemoryTransactionalProducer> {
    if (!(consumer instanceof MemoryConsumer) || !this.#broker.consumers.includes(consumer)) {
      throw new Error('the consumer of a transactional producer must come from the same driver');
    }
    await this.#broker.intercept({ operation: 'init', transactionalId, groupId: consumer.groupId });
    const producer = new MemoryTransactionalProducer(this.#broker, transactionalId, consumer);
    this.#broker.producers.get(transactionalId)?.fence();
    this.#broker.producers.set(transactionalId, producer);
    this.#broker.changed();
    return producer;
  }

  async send(records: readonly OutgoingRecord[]): Promise<void> {
    await this.#broker.intercept({ operation: 'send', records });
    const buffered = records.map((record) => toBuffered(this.#broker, record));
    const touched = new Map<string, Set<number>>();
    for (const record of buffered) {
      this.#broker.append(record.topic, record.partition, { kind: 'record', key: record.key, value: record.value, headers: record.headers });
      let partitions = touched.get(record.topic);
      if (partitions === undefined) touched.set(record.topic, (partitions = new Set()));
      partitions.add(record.partition);
    }
    for (const [topic, partitions] of touched) this.#broker.appended(topic, partitions);
  }

  // Topics.

  /** Creates a topic with its own partition count (others are created on first use with the default). */
  createTopic(name: string, partitions: number): void {
    if (this.#broker.topics.has(name)) throw new Error(`topic ${name} exists already`);
    this.#broker.topic(name, partitions);
  }

  partitionCount(topic: string): number {
    return this.#broker.topic(topic).length;
  }

  /** The partition a key lands on (murmur2, as the pipeline's producers pick it). */
  partitionOf(topic: string, key: string): number {
    return this.#broker.partitionOf(topic, key);
  }

  /** Appends records as a plain producer would (visible at once); returns their offsets. */
  produce(topic: string, records: readonly TestRecord[]): Array<{ partition: number; offset: string }> {
    const placed = records.map((record) => {
      const partition = record.partition ?? (record.key === undefined || record.key === null ? 0 : this.#broker.partitionOf(topic, record.key));
      const offset = this.#broker.append(topic, partition, {
        kind: 'record',
        key: record.key === undefined || record.key === null ? null : Buffer.from(record.key, 'utf8'),
        value: record.value,
        headers: { ...record.headers },
      });
      return { partition, offset };
    });
    this.#broker.appended(topic, new Set(placed.map(({ partition }) => partition)));
    return placed;
  }

  /** What a read_committed consumer of the topic reads: by partition, then offset. */
  records(topic: string, partition?: number): StoredRecord[] {
    const partitions = this.#broker.topic(topic);
    const result: StoredRecord[] = [];
    partitions.forEach((log, index) => {
      if (partition !== undefined && index !== partition) return;
      log.forEach((entry, offset) => {
        if (entry.kind === 'record')
          result.push({ topic, partition: index, offset: String(offset), key: entry.key, value: entry.value, headers: { ...entry.headers } });
      });
    });
    return result;
  }

  // Groups.

  committedOffset(groupId: string, topic: string, partition: number): CommittedOffset {
    const entry = this.#broker.group(groupId).committed(topic, partition);
    return entry === undefined ? { offset: null, metadata: '' } : { ...entry };
  }

  /** Sets a group's offsets from outside, as `kafka-consumer-groups --reset-offsets` does. */
  setCommittedOffsets(groupId: string, topic: string, offsets: readonly OffsetCommit[]): void {
    this.#broker.group(groupId).commit(topic, offsets, true);
  }

  /** The group's members in join order. */
  members(groupId: string): MemoryConsumer[] {
    return [...this.#broker.group(groupId).members];
  }

  /** Revokes every member's partitions and hands them out again. */
  rebalance(groupId: string): Promise<void> {
    return this.#broker.rebalance(this.#broker.group(groupId));
  }

  /**
   * The coordinator drops `consumer` from its group (a missed session or poll deadline): its
   * partitions go to the other members at once, without waiting for its running batches, and
   * its offset commits are refused from now on. It learns of the loss through onRevoked,
   * which nobody awaits. What it still does with its producers is for fencing to stop.
   */
  async evict(consumer: MemoryConsumer): Promise<void> {
    const group = this.#broker.group(consumer.groupId);
    const index = group.members.indexOf(consumer);
    if (index < 0) throw new Error(`member ${consumer.member} is not in group ${consumer.groupId}`);
    group.members.splice(index, 1);
    group.generation++;
    consumer.evicted();
    await this.#broker.rebalance(group);
  }

  // Fault injection.

  /** Runs `interceptor` before every call of `operation`; returns a function that removes it. */
  intercept(operation: DriverOperation, interceptor: Interceptor): () => void {
    const entry = { operation, run: interceptor };
    this.#broker.interceptors.push(entry);
    return () => {
      const index = this.#broker.interceptors.indexOf(entry);
      if (index >= 0) this.#broker.interceptors.splice(index, 1);
    };
  }

  /** The next `times` calls of `operation` (that `when` accepts) fail with `error`, or with what `error(call)` returns when it is a function. */
  failNext(operation: DriverOperation, times: number, error: unknown, when: (call: OperationCall) => boolean = () => true): void {
    let left = times;
    const remove = this.intercept(operation, (call) => {
      if (left <= 0 || !when(call)) return;
      if (--left === 0) remove();
      throw typeof error === 'function' ? (error as (call: OperationCall) => unknown)(call) : error;
    });
  }

  /** Holds the first call of `operation` that `when` accepts until the test releases or fails it. */
  hold(operation: DriverOperation, when: (call: OperationCall) => boolean = () => true): Hold {
    let reached!: (call: OperationCall) => void;
    let settle!: (outcome: { error?: unknown }) => void;
    const outcome = new Promise<{ error?: unknown }>((resolve) => (settle = resolve));
    const hold: Hold = {
      reached: new Promise((resolve) => (reached = resolve)),
      release: () => settle({}),
      fail: (error) => settle({ error }),
    };
    const remove = this.intercept(operation, async (call) => {
      if (!when(call)) return;
      remove();
      reached(call);
      const { error } = await outcome;
      if (error !== undefined) throw error;
    });
    return hold;
  }

  // Observing.

  /** What happened, in order: assignments, batches handed over, pauses, transactions, fencing. */
  get history(): readonly DriverEvent[] {
    return this.#broker.history;
  }

  transactions(transactionalId?: string): Array<Extract<DriverEvent, { type: 'transaction' }>> {
    return this.#broker.history.filter(
      (event): event is Extract<DriverEvent, { type: 'transaction' }> =>
        event.type === 'transaction' && (transactionalId === undefined || event.transactionalId === transactionalId),
    );
  }

  batches(groupId: string, partition?: number): Array<Extract<DriverEvent, { type: 'batch' }>> {
    return this.#broker.history.filter(
      (event): event is Extract<DriverEvent, { type: 'batch' }> =>
        event.type === 'batch' && event.groupId === groupId && (partition === undefined || event.partition === partition),
    );
  }

  /** Uses of the interface the real client would not survive; a test expects none. */
  get violations(): readonly string[] {
    return this.#broker.violations;
  }

  /** True when nothing is left to do: no rebalance, no stop under way, every assigned partition caught up or paused. */
  isIdle(): boolean {
    return this.#broker.idle();
  }

  /** Resolves once the driver is idle (see `isIdle`). */
  idle(): Promise<void> {
    return this.until(() => this.#broker.idle(), 'idle');
  }

  /**
   * Resolves once `condition` holds, checked whenever the driver's state changes; rejects if
   * the driver falls idle while it does not hold (nothing the driver does would change it).
   */
  until(condition: () => boolean, description = 'the condition'): Promise<void> {
    return new Promise((resolve, reject) => {
      const check = (): void => {
        let holds: boolean;
        try {
          holds = condition();
        } catch (error) {
          this.#broker.listeners.delete(check);
          reject(error);
          return;
        }
        if (holds) {
          this.#broker.listeners.delete(check);
          resolve();
        } else if (this.#broker.idle()) {
          this.#broker.listeners.delete(check);
          const violations = this.#broker.violations.length === 0 ? '' : `; violations: ${this.#broker.violations.join('; ')}`;
          reject(new Error(`the driver is idle and ${description} does not hold${violations}`));
        }
      };
      this.#broker.listeners.add(check);
      check();
    });
  }
}
