/**
 * KafkaJS does not batch on its own (no linger.ms): one awaited send per event caps an
 * ingress at a few thousand events per second. This gathers the events of concurrent
 * requests for `lingerMs` (or until `maxBatch`) and sends them in one `sendBatch` with
 * acks=all; each caller's promise settles when its own event is acknowledged — or fails.
 * One batch is in flight at a time: the idempotent producer then keeps per-partition order
 * without depending on in-flight request limits, and the next batch fills while one flies.
 */
import type { Message, Producer, TopicMessages } from 'kafkajs';

export interface PendingEvent {
  topic: string;
  message: Message;
  resolve: () => void;
  reject: (error: unknown) => void;
}

export type SendBatch = (topicMessages: TopicMessages[]) => Promise<unknown>;

export class EventBatcher {
  readonly #send: SendBatch;
  readonly #lingerMs: number;
  readonly #maxBatch: number;
  #queue: PendingEvent[] = [];
  #timer: NodeJS.Timeout | undefined;
  #inFlight: Promise<void> | undefined;
  /** Observer for metrics: batch size and duration of each send. */
  onBatch?: (size: number, seconds: number, ok: boolean) => void;

  constructor(send: SendBatch, options: { lingerMs: number; maxBatch: number }) {
    this.#send = send;
    this.#lingerMs = options.lingerMs;
    this.#maxBatch = options.maxBatch;
  }

  static forProducer(producer: Producer, options: { lingerMs: number; maxBatch: number }): EventBatcher {
    return new EventBatcher((topicMessages) => producer.sendBatch({ acks: -1, topicMessages }), options);
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
    const byTopic = new Map<string, Message[]>();
    for (const event of batch) {
      const messages = byTopic.get(event.topic) ?? [];
      messages.push(event.message);
      byTopic.set(event.topic, messages);
    }
    const started = process.hrtime.bigint();
    try {
      await this.#send([...byTopic].map(([topic, messages]) => ({ topic, messages })));
      this.onBatch?.(batch.length, Number(process.hrtime.bigint() - started) / 1e9, true);
      for (const event of batch) event.resolve();
    } catch (error) {
      this.onBatch?.(batch.length, Number(process.hrtime.bigint() - started) / 1e9, false);
      for (const event of batch) event.reject(error);
    }
  }
}
