/**
 * KafkaJS does not batch on its own (no linger.ms): one awaited send per event caps an
 * ingress at a few thousand events per second. This gathers the events of concurrent
 * requests for `lingerMs` (or until `maxBatch`) and sends them with acks=all, one send per
 * partition (see core/partitioned-send.ts for why never one multi-broker `sendBatch`); each
 * caller's promise settles when its own event is acknowledged — or fails.
 * One batch is in flight at a time: the idempotent producer then keeps per-partition order
 * without depending on in-flight request limits, and the next batch fills while one flies.
 */
import type { Message, Producer } from 'kafkajs';
import { partitionAssigner, type PartitionBatch, type PartitionCountOf } from '../core/partitioned-send.js';

export interface PendingEvent {
  topic: string;
  message: Message;
  resolve: () => void;
  reject: (error: unknown) => void;
}

/** Sends the messages of one partition (acks=all). */
export type SendPartition = (batch: PartitionBatch) => Promise<unknown>;

export class EventBatcher {
  readonly #send: SendPartition;
  readonly #partitionOf: (topic: string, message: Message) => number;
  readonly #lingerMs: number;
  readonly #maxBatch: number;
  #queue: PendingEvent[] = [];
  #timer: NodeJS.Timeout | undefined;
  #inFlight: Promise<void> | undefined;
  /** Observer for metrics: batch size and duration of each send. */
  onBatch?: (size: number, seconds: number, ok: boolean) => void;

  constructor(send: SendPartition, options: { lingerMs: number; maxBatch: number; partitionCountOf: PartitionCountOf }) {
    this.#send = send;
    this.#partitionOf = partitionAssigner(options.partitionCountOf);
    this.#lingerMs = options.lingerMs;
    this.#maxBatch = options.maxBatch;
  }

  static forProducer(producer: Producer, options: { lingerMs: number; maxBatch: number; partitionCountOf: PartitionCountOf }): EventBatcher {
    return new EventBatcher(({ topic, messages }) => producer.send({ topic, messages, acks: -1 }), options);
  }

  send(topic: string, message: Message): Promise<void> {
    return new Promise((resolve, reject) => {
      this.#queue.push({ topic, message, resolve, reject });
      if (this.#queue.length >= this.#maxBatch) this.#kick();
      else this.#timer ??= setTimeout(() => this.#kick(), this.#lingerMs);
    });
  }

  get pending(): number {
    return this.#queue.length;
  }

  /** Sends everything queued and waits for it (used on shutdown). */
  async flush(): Promise<void> {
    while (this.#queue.length > 0 || this.#inFlight !== undefined) {
      this.#kick();
      await this.#inFlight;
    }
  }

  #kick(): void {
    clearTimeout(this.#timer);
    this.#timer = undefined;
    if (this.#inFlight !== undefined || this.#queue.length === 0) return;
    const batch = this.#queue.splice(0, this.#maxBatch);
    this.#inFlight = this.#sendBatch(batch).finally(() => {
      this.#inFlight = undefined;
      if (this.#queue.length > 0) {
        // Whatever queued while this batch flew has lingered long enough.
        this.#kick();
      }
    });
  }

  async #sendBatch(batch: PendingEvent[]): Promise<void> {
    // One send per partition, concurrently; each caller learns the outcome of its own
    // partition's send (a send that fails for one partition leaves the others acknowledged).
    const byPartition = new Map<string, { topic: string; partition: number; events: PendingEvent[] }>();
    for (const event of batch) {
      const partition = this.#partitionOf(event.topic, event.message);
      const id = `${event.topic}\u0000${partition}`;
      let group = byPartition.get(id);
      if (group === undefined) {
        group = { topic: event.topic, partition, events: [] };
        byPartition.set(id, group);
      }
      group.events.push(event);
    }
    const started = process.hrtime.bigint();
    const outcomes = await Promise.allSettled(
      [...byPartition.values()].map(({ topic, partition, events }) =>
        this.#send({ topic, partition, messages: events.map((event) => ({ ...event.message, partition })) }),
      ),
    );
    const ok = outcomes.every((outcome) => outcome.status === 'fulfilled');
    this.onBatch?.(batch.length, Number(process.hrtime.bigint() - started) / 1e9, ok);
    [...byPartition.values()].forEach(({ events }, index) => {
      const outcome = outcomes[index]!;
      for (const event of events) {
        if (outcome.status === 'fulfilled') event.resolve();
        else event.reject(outcome.reason);
      }
    });
  }
}
