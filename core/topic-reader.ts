/**
 * Reads a topic read_committed, partition by partition, up to the end each partition has when
 * the read starts (the last stable offset), as `kcat -e` does; each `readToEnd()` continues where
 * the last one stopped, and `follow()` keeps reading. It assigns partitions itself (librdkafka's
 * low-level consumer) and commits nothing, so it never joins or disturbs a consumer group.
 * "Nothing twice" checks and `npm run inspect` read to the end instead of waiting for quiet.
 */
import kafkaJavascript from '@confluentinc/kafka-javascript';
import type { KafkaConfig } from './config.js';
import { connectOnce, createKafka, readCommitted, type Admin, type LazyClient } from './kafka.js';

/** One committed message as a reader sees it. */
export interface ReadMessage {
  partition: number;
  offset: string;
  key: string | undefined;
  value: Buffer | null;
  headers: Record<string, string>;
  /** Milliseconds since the epoch (the producer's or the broker's time, by the topic's setting). */
  timestamp: number;
}

export interface TopicReaderOptions {
  /** librdkafka wants a group id even for a consumer that only assigns; it is never joined. */
  groupId: string;
  /**
   * Where each partition starts: the beginning (default), the end when the reader first connects
   * (only what comes after), or given offsets (a partition missing from them starts at 0).
   */
  from?: 'beginning' | 'end' | ReadonlyMap<number, bigint>;
}

interface RawMessage {
  partition: number;
  offset: number;
  key?: Buffer | string | null;
  value: Buffer | null;
  timestamp?: number;
  headers?: Array<Record<string, unknown>>;
}

export class TopicReader {
  readonly #topic: string;
  readonly #consumer: InstanceType<typeof kafkaJavascript.KafkaConsumer>;
  readonly #admin: LazyClient<Admin>;
  readonly #from: TopicReaderOptions['from'];
  #connected: Promise<number> | undefined;
  /** Per partition: the offset after the last message read, and the end librdkafka last reported. */
  readonly #next = new Map<number, bigint>();
  readonly #eof = new Map<number, bigint>();

  constructor(kafka: KafkaConfig, topic: string, options: TopicReaderOptions) {
    this.#topic = topic;
    this.#from = options.from;
    this.#admin = connectOnce(createKafka(kafka, { clientId: options.groupId }).admin());
    this.#consumer = new kafkaJavascript.KafkaConsumer(
      {
        'metadata.broker.list': kafka.brokers.join(','),
        'group.id': options.groupId,
        'client.id': options.groupId,
        'enable.auto.commit': false,
        'enable.partition.eof': true,
        'isolation.level': 'read_committed',
      },
      { 'auto.offset.reset': 'earliest' },
    );
    this.#consumer.on('partition.eof', (event: { partition: number; offset: number }) => this.#eof.set(event.partition, BigInt(event.offset)));
  }

  #connect(): Promise<number> {
    this.#connected ??= new Promise<number>((resolve, reject) => {
      this.#consumer.connect({ topic: this.#topic, timeout: 30_000 }, (error, metadata) => {
        // eslint-disable-next-line @typescript-eslint/prefer-promise-reject-errors -- a LibrdKafkaError is an Error at run time; its typings leave that out
        if (error) return reject(error);
        const topic = metadata.topics.find((candidate) => candidate.name === this.#topic);
        if (topic === undefined || topic.partitions.length === 0) return reject(new Error(`no topic ${this.#topic}`));
        // librdkafka's logical offset -1 is the end.
        const from = this.#from;
        const offsetOf = (partition: number) => (from === 'end' ? -1 : from instanceof Map ? Number(from.get(partition) ?? 0n) : 0);
        this.#consumer.assign(topic.partitions.map((partition) => ({ topic: this.#topic, partition: partition.id, offset: offsetOf(partition.id) })));
        resolve(topic.partitions.length);
      });
    });
    return this.#connected;
  }

  /** The end of each partition as a read_committed consumer sees it now: its last stable offset. */
  async #ends(): Promise<Map<number, bigint>> {
    const admin = await this.#admin.connected();
    const ends = await admin.fetchTopicOffsets(this.#topic, { isolationLevel: readCommitted });
    return new Map(ends.map((end) => [end.partition, BigInt(end.high)]));
  }

  #consume(): Promise<ReadMessage[]> {
    return new Promise((resolve, reject) =>
      this.#consumer.consume(1000, (error, batch) => {
        // eslint-disable-next-line @typescript-eslint/prefer-promise-reject-errors -- a LibrdKafkaError is an Error at run time; its typings leave that out
        if (error) return reject(error);
        resolve(
          (batch as unknown as RawMessage[]).map((message) => {
            this.#next.set(message.partition, BigInt(message.offset) + 1n);
            const headers: Record<string, string> = {};
            for (const header of message.headers ?? []) for (const [name, value] of Object.entries(header)) headers[name] = String(value);
            return {
              partition: message.partition,
              offset: String(message.offset),
              key: message.key?.toString(),
              value: message.value,
              headers,
              timestamp: message.timestamp ?? 0,
            };
          }),
        );
      }),
    );
  }

  /**
   * The messages committed since the last call, up to every partition's end as it is now; with
   * `each`, handed to it one by one instead of returned (for ranges too big to hold).
   */
  async readToEnd(timeoutMs = 60_000, each?: (message: ReadMessage) => void | Promise<void>): Promise<ReadMessage[]> {
    await this.#connect();
    const targets = await this.#ends();
    const read: ReadMessage[] = [];
    const deadline = Date.now() + timeoutMs;
    // A partition is read to its target once a message at or past it was read, or librdkafka said
    // it reached the end at or past it (transaction markers take offsets no message has).
    const done = () =>
      [...targets].every(([partition, target]) => target === 0n || (this.#next.get(partition) ?? 0n) >= target || (this.#eof.get(partition) ?? -1n) >= target);
    while (!done()) {
      if (Date.now() > deadline) throw new Error(`reading ${this.#topic} to its end timed out`);
      for (const message of await this.#consume()) {
        if (each === undefined) read.push(message);
        else await each(message);
      }
    }
    return read;
  }

  /** Hands every message to `each` as it comes, until `signal` aborts. */
  async follow(each: (message: ReadMessage) => void | Promise<void>, signal: AbortSignal): Promise<void> {
    await this.#connect();
    while (!signal.aborted) for (const message of await this.#consume()) await each(message);
  }

  async close(): Promise<void> {
    await this.#admin.disconnect().catch(() => undefined);
    await new Promise<void>((resolve) => {
      if (this.#connected === undefined) return resolve();
      this.#consumer.disconnect(() => resolve());
    });
  }
}
