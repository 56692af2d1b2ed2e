/**
 * The outputs of one transaction, encoded and held until there are enough to be worth a
 * produce request, then sent into the transaction. A mark taken before an input is processed
 * lets a poison input's outputs be dropped again, as long as none of them was sent yet.
 */
import type { EventCodec } from '../../core/event-codec.js';
import type { OutgoingRecord, StageTransaction } from './driver.js';
import { encodeEmit } from './encoding.js';
import type { Emit } from './types.js';

export interface OutputMark {
  readonly flushes: number;
  readonly pending: number;
  readonly counts: ReadonlyMap<string, number>;
}

export class OutputBuffer {
  #pending: OutgoingRecord[] = [];
  #pendingBytes = 0;
  #flushes = 0;
  /** Outputs per topic, sent or not, since the buffer was made. */
  readonly counts = new Map<string, number>();

  constructor(
    private readonly codec: EventCodec,
    private readonly topicOf: (to: string) => string,
    /** Sent when this many records, or this many bytes, are held. */
    private readonly limits: { records: number; bytes: number },
  ) {}

  /** Encodes `emit`; sends what is held into `transaction` once a limit is reached. */
  async add(emit: Emit, transaction: StageTransaction): Promise<void> {
    const topic = this.topicOf(emit.to);
    const record = await encodeEmit(this.codec, topic, emit);
    this.#pending.push(record);
    this.#pendingBytes += record.value.length + record.key.length;
    this.counts.set(topic, (this.counts.get(topic) ?? 0) + 1);
    if (this.#pending.length >= this.limits.records || this.#pendingBytes >= this.limits.bytes) await this.flush(transaction);
  }

  async flush(transaction: StageTransaction): Promise<void> {
    if (this.#pending.length === 0) return;
    const records = this.#pending;
    this.#pending = [];
    this.#pendingBytes = 0;
    this.#flushes++;
    await transaction.send(records);
  }

  mark(): OutputMark {
    return { flushes: this.#flushes, pending: this.#pending.length, counts: new Map(this.counts) };
  }

  /** Nothing was sent since `mark`: what was added since can still be taken back. */
  unsentSince(mark: OutputMark): boolean {
    return mark.flushes === this.#flushes;
  }

  /** Drops what was added since `mark` (only while `unsentSince(mark)`). */
  rollback(mark: OutputMark): void {
    for (const record of this.#pending.splice(mark.pending)) this.#pendingBytes -= record.value.length + record.key.length;
    this.counts.clear();
    for (const [topic, count] of mark.counts) this.counts.set(topic, count);
  }
}
