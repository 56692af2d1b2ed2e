/**
 * The one place every service gets its Kafka clients from: librdkafka through
 * @confluentinc/kafka-javascript (its KafkaJS-compatible promise API), with the pipeline's
 * defaults written once — acks=all with the idempotent producer, Java's murmur2 partitioner,
 * the producers' compression codec, read_committed consumers that never commit on their own,
 * and librdkafka's log lines routed into the service's structured logger.
 */
import kafkaJavascript, { type KafkaJS as KafkaJsTypes } from '@confluentinc/kafka-javascript';
import type { Logger } from 'pino';
import type { KafkaConfig } from './config.js';
import { maxMessageBytes } from './pipeline.js';

const { KafkaJS } = kafkaJavascript;

/**
 * The KafkaJS-compatible admin, plus KafkaJS's createPartitions, which that admin lacks in
 * 1.10.1 (see `createPartitions` below).
 */
export type Admin = KafkaJsTypes.Admin & PartitionGrowth;
export type Consumer = KafkaJsTypes.Consumer;
export type Producer = KafkaJsTypes.Producer;
export type KafkaMessage = KafkaJsTypes.KafkaMessage;
export type Message = KafkaJsTypes.Message;
export type EachBatchPayload = KafkaJsTypes.EachBatchPayload;

export { compressionCodecs, type CompressionCodec } from './kafka-codecs.js';

/**
 * librdkafka's default partitioner hashes keys with CRC32; Java's, Kafka Streams' and Kafka
 * Connect's with murmur2. murmur2_random puts every key where a Java producer would (and keyless
 * messages anywhere), so kcat, Streams or Connect reading the same topics see the same layout.
 */
export const javaCompatiblePartitioner = 'murmur2_random';

export interface KafkaClients {
  /** An idempotent producer (acks=all), batching by `lingerMs`. */
  producer(options?: ProducerOptions): Producer;
  /**
   * A transactional producer: `transactionalId` fences any earlier producer with the same id
   * when it connects (librdkafka's init_transactions), and aborts that one's open transaction.
   */
  transactionalProducer(transactionalId: string, options?: { transactionTimeoutMs?: number; lingerMs?: number }): Producer;
  /** A read_committed consumer that commits only what its caller commits. */
  consumer(options: ConsumerOptions): Consumer;
  /** Reads the committed offsets of `groupId` without joining it (see GroupOffsetReader). */
  groupOffsets(groupId: string): GroupOffsetReader;
  admin(): Admin;
}

/** A partition's committed offset (null: nothing committed) and the metadata committed with it. */
export interface CommittedOffset {
  offset: string | null;
  metadata: string;
}

/**
 * A consumer group's committed offsets, read by a consumer of that group that never subscribes
 * (so it never joins or rebalances the group) through librdkafka's consumer OffsetFetch. The
 * admin client's fetchOffsets is not used for this: in librdkafka 2.15.1 its coordinator request
 * aborts the process when the coordinator broker dies under it (an enq_once refcount assertion
 * in rdkafka_admin.c), which a lag measurement every few seconds meets on the first broker crash.
 */
export interface GroupOffsetReader {
  committed(topic: string, partitions: readonly number[]): Promise<Map<number, CommittedOffset>>;
  close(): Promise<void>;
}

/** How long a committed-offset read may wait for the group coordinator before it fails. */
const committedTimeoutMs = 15_000;

/** A consumer's committed offsets for `partitions` of `topic`. */
export async function committedOffsets(consumer: Consumer, topic: string, partitions: readonly number[]): Promise<Map<number, CommittedOffset>> {
  // Without a timeout the call waits for ever in one of libuv's four pool threads.
  const entries = await consumer.committed(
    partitions.map((partition) => ({ topic, partition })),
    committedTimeoutMs,
  );
  const result = new Map<number, CommittedOffset>();
  for (const entry of entries) {
    // The client turns a committed offset of 0 into null (a falsy check in its conversion,
    // 1.10.1); "nothing committed" comes through as a negative number (-1001).
    const offset = entry.offset === null ? '0' : Number(entry.offset) >= 0 ? String(entry.offset) : null;
    result.set(entry.partition, { offset, metadata: entry.metadata ?? '' });
  }
  return result;
}

export interface ProducerOptions {
  lingerMs?: number;
  /** Most messages per batch. */
  maxBatchMessages?: number;
  /** How long a message may take to be acknowledged before it fails (0: for ever). */
  deliveryTimeoutMs?: number;
  /** The longest backoff between two retries of a request. */
  retryBackoffMaxMs?: number;
}

export interface ConsumerOptions {
  groupId: string;
  /** Most messages one eachBatch call gets. */
  maxBatchMessages?: number;
  /** How long the broker may wait to fill a fetch. */
  maxWaitMs?: number;
  /** Bytes the broker waits for (or maxWaitMs) before it answers a fetch. */
  minBytes?: number;
  /** Bytes a fetch returns per partition. */
  maxBytesPerPartition?: number;
  /**
   * Called with each new assignment before its first message is fetched (awaited); what it
   * returns is assigned instead (with start offsets, say).
   */
  onAssigned?: (
    partitions: ReadonlyArray<{ topic: string; partition: number }>,
  ) => Promise<Array<{ topic: string; partition: number; offset?: number }> | void>;
  /** Called when partitions are taken away, before they go to another member (awaited). */
  onRevoked?: (partitions: ReadonlyArray<{ topic: string; partition: number }>) => Promise<void> | void;
}

export interface PartitionGrowth {
  /** Grows each topic to `count` partitions (KafkaJS's request shape); rejects if one already has that many or more. */
  createPartitions(request: { topicPartitions: ReadonlyArray<{ topic: string; count: number }>; timeout?: number }): Promise<void>;
}

/**
 * Grows topics to `count` partitions with librdkafka's own admin client (CreatePartitions): the
 * KafkaJS-compatible admin of @confluentinc/kafka-javascript 1.10.1 has no createPartitions. A
 * client of its own, with createKafka's brokers, client id and timeouts, disconnected afterwards.
 */
export async function createPartitions(
  config: KafkaConfig,
  topicPartitions: ReadonlyArray<{ topic: string; count: number }>,
  options: { clientId?: string; timeoutMs?: number } = {},
): Promise<void> {
  const client = kafkaJavascript.AdminClient.create({
    'bootstrap.servers': config.brokers.join(','),
    'client.id': options.clientId ?? config.clientId,
    'socket.timeout.ms': config.requestTimeoutMs,
    // librdkafka's minimum.
    'socket.connection.setup.timeout.ms': Math.max(config.connectionTimeoutMs, 1000),
  });
  try {
    for (const { topic, count } of topicPartitions) {
      await new Promise<void>((resolve, reject) => {
        client.createPartitions(topic, count, options.timeoutMs ?? config.requestTimeoutMs, (error) => {
          if (error) reject(kafkaErrorOf(error));
          else resolve();
        });
      });
    }
  } finally {
    client.disconnect();
  }
}

/** librdkafka's log levels are syslog levels: 0–3 are errors, 4 a warning, 5–6 information. */
function levelOf(syslogLevel: number | undefined): 'error' | 'warn' | 'info' | 'debug' {
  if (syslogLevel === undefined) return 'info';
  if (syslogLevel <= 3) return 'error';
  if (syslogLevel === 4) return 'warn';
  if (syslogLevel <= 6) return 'info';
  return 'debug';
}

/** The client's logger interface, writing into the service's pino logger. */
export function kafkaLogger(logger: Logger | undefined): KafkaJsTypes.Logger {
  const child = logger?.child({ component: 'kafka' });
  const write = (level: 'error' | 'warn' | 'info' | 'debug') => (message: string, extra?: object) => {
    if (child === undefined) return;
    const fields = (extra ?? {}) as Record<string, unknown>;
    // librdkafka's own lines carry their syslog severity; the JavaScript layer's carry none.
    const effective = typeof fields.severity === 'number' ? levelOf(fields.severity) : level;
    child[effective](fields, message);
  };
  const self: KafkaJsTypes.Logger = {
    info: write('info'),
    error: write('error'),
    warn: write('warn'),
    debug: write('debug'),
    namespace: () => self,
    setLogLevel: () => undefined,
  };
  return self;
}

export function createKafka(config: KafkaConfig, options: { logger?: Logger; clientId?: string } = {}): KafkaClients {
  const clientId = options.clientId ?? config.clientId;
  const debugContexts = config.debug ?? [];
  const common = {
    brokers: config.brokers,
    clientId,
    connectionTimeout: config.connectionTimeoutMs,
    requestTimeout: config.requestTimeoutMs,
    logger: kafkaLogger(options.logger),
    logLevel: options.logger === undefined ? KafkaJS.logLevel.NOTHING : debugContexts.length > 0 ? KafkaJS.logLevel.DEBUG : KafkaJS.logLevel.WARN,
  };
  const kafka = new KafkaJS.Kafka({ kafkaJS: common, ...(debugContexts.length > 0 ? { debug: debugContexts.join(',') } : {}) });
  const producerDefaults = ({ lingerMs, maxBatchMessages, deliveryTimeoutMs, retryBackoffMaxMs }: ProducerOptions) => ({
    partitioner: javaCompatiblePartitioner,
    'compression.codec': config.compression,
    'linger.ms': lingerMs ?? config.lingerMs,
    ...(maxBatchMessages === undefined ? {} : { 'batch.num.messages': maxBatchMessages }),
    ...(deliveryTimeoutMs === undefined ? {} : { 'message.timeout.ms': deliveryTimeoutMs }),
    ...(retryBackoffMaxMs === undefined ? {} : { 'retry.backoff.max.ms': retryBackoffMaxMs }),
    // Retries for as long as delivery.timeout.ms allows; the idempotent producer keeps each
    // retry in order and without duplicates (librdkafka's sequence numbers per partition).
    'enable.idempotence': true,
    acks: -1,
    // librdkafka refuses messages over 1 MB by default; the topics take records as big as the
    // ingress accepts (a file of multi-MB records stalled extract with the default).
    'message.max.bytes': maxMessageBytes,
  });
  return {
    producer(producerOptions = {}) {
      return kafka.producer({
        ...producerDefaults(producerOptions),
        kafkaJS: { acks: -1, idempotent: true, allowAutoTopicCreation: false },
      });
    },
    transactionalProducer(transactionalId, producerOptions = {}) {
      return kafka.producer({
        ...producerDefaults({ lingerMs: producerOptions.lingerMs }),
        kafkaJS: {
          acks: -1,
          idempotent: true,
          transactionalId,
          transactionTimeout: producerOptions.transactionTimeoutMs ?? 120_000,
          allowAutoTopicCreation: false,
        },
      });
    },
    consumer(consumerOptions) {
      const rebalance = async (
        error: { code: number },
        assignment: Array<{ topic: string; partition: number }>,
      ): Promise<Array<{ topic: string; partition: number; offset?: number }> | void> => {
        if (error.code === KafkaJS.ErrorCodes.ERR__ASSIGN_PARTITIONS) return consumerOptions.onAssigned?.(assignment);
        await consumerOptions.onRevoked?.(assignment);
      };
      return kafka.consumer({
        kafkaJS: {
          groupId: consumerOptions.groupId,
          fromBeginning: true,
          autoCommit: false,
          readUncommitted: false,
          allowAutoTopicCreation: false,
          sessionTimeout: 30_000,
          heartbeatInterval: 3_000,
          maxWaitTimeInMs: consumerOptions.maxWaitMs ?? 500,
          minBytes: consumerOptions.minBytes ?? 1,
          maxBytesPerPartition: consumerOptions.maxBytesPerPartition ?? 1024 * 1024,
        },
        'js.consumer.max.batch.size': consumerOptions.maxBatchMessages ?? 1000,
        // A rebalance hands partitions over only after the callback settles (see onAssigned).
        rebalance_cb: rebalance,
      });
    },
    groupOffsets(groupId) {
      const consumer = connectOnce(kafka.consumer({ kafkaJS: { groupId, autoCommit: false, readUncommitted: false } }));
      return {
        async committed(topic, partitions) {
          return committedOffsets(await consumer.connected(), topic, partitions);
        },
        close: () => consumer.disconnect(),
      };
    },
    admin() {
      const growth: PartitionGrowth = {
        createPartitions: ({ topicPartitions, timeout }) => createPartitions(config, topicPartitions, { clientId, timeoutMs: timeout }),
      };
      return Object.assign(kafka.admin(), growth);
    },
  };
}

/**
 * A client connected on first use rather than at start-up (a broker down then must not stop
 * the service); a failed connect is tried again by the next use. disconnect() is a no-op for a
 * client never connected.
 */
export interface LazyClient<T> {
  connected(): Promise<T>;
  disconnect(): Promise<void>;
}

export function connectOnce<T extends { connect(): Promise<void>; disconnect(): Promise<void> }>(client: T): LazyClient<T> {
  let connecting: Promise<void> | undefined;
  return {
    async connected() {
      connecting ??= client.connect().catch((error: unknown) => {
        connecting = undefined;
        throw error;
      });
      await connecting;
      return client;
    },
    async disconnect() {
      if (connecting !== undefined) await client.disconnect();
    },
  };
}

/** The partition count of each topic as the cluster reports it. */
export async function partitionCountsOf(admin: Admin, topicNames: Iterable<string>): Promise<(topic: string) => number> {
  const topics = await admin.fetchTopicMetadata({ topics: [...new Set(topicNames)] });
  const counts = new Map(topics.map((topic) => [topic.name, topic.partitions.length]));
  return (topic) => {
    const count = counts.get(topic);
    if (count === undefined) throw new Error(`no partition count known for topic ${topic}`);
    return count;
  };
}

/** Consecutive metadata answers that must show a topic ready (one per broker of a 3-broker cluster). */
const READY_CONFIRMATIONS = 3;

/** How a topic is created: the pipeline's topics all share one layout (core/pipeline.ts). */
export interface TopicLayout {
  partitions: number;
  replicationFactor: number;
  config: Record<string, string>;
}

export interface EnsuredTopics {
  /** Topics this call created, with the layout's partition count. */
  created: string[];
  /** Topics that had fewer partitions than the layout and were grown to its count. */
  grown: Array<{ topic: string; from: number; to: number }>;
  /** Topics with more partitions than the layout: left as they are, since Kafka cannot remove partitions. */
  larger: Array<{ topic: string; partitions: number }>;
}

/**
 * Creates the topics that do not exist yet, grows those with fewer partitions than the layout
 * to its count, and waits until every partition of every one has a leader and its whole replica
 * set in sync. A topic with more partitions than the layout is left alone and reported, never
 * an error. A broker answers UNKNOWN_TOPIC_OR_PARTITION for a moment after a topic is created
 * or grown (its metadata cache lags the controller): every error counts as "not yet" until the
 * deadline.
 *
 * Growing keeps what was written: a key's old messages stay in the partition they were written
 * to, and its new ones may hash to a new partition, so per-key order holds only among messages
 * written after the growth.
 */
export async function ensureTopics(
  admin: Admin,
  names: readonly string[],
  layout: TopicLayout,
  options: { timeoutMs?: number; onRetry?: (error: Error) => void } = {},
): Promise<EnsuredTopics> {
  const deadline = Date.now() + (options.timeoutMs ?? 120_000);
  const created = new Set<string>();
  const grown = new Map<string, { topic: string; from: number; to: number }>();
  let lastError: Error | undefined;
  // Each metadata request goes to some broker, and a broker's metadata cache lags the controller
  // by a moment: "ready" counts once it was seen on READY_CONFIRMATIONS requests in a row, so a
  // client asking right after the return does not meet a broker that does not know the topic yet.
  let confirmations = 0;
  for (;;) {
    try {
      const existing = new Set(await admin.listTopics());
      const missing = names.filter((name) => !existing.has(name));
      if (missing.length > 0) {
        await admin.createTopics({
          topics: missing.map((name) => ({
            topic: name,
            numPartitions: layout.partitions,
            replicationFactor: layout.replicationFactor,
            configEntries: Object.entries(layout.config).map(([key, value]) => ({ name: key, value })),
          })),
        });
        for (const name of missing) created.add(name);
      }
      const topics = await admin.fetchTopicMetadata({ topics: [...names] });
      const countOf = (name: string) => topics.find((candidate) => candidate.name === name)?.partitions.length ?? 0;
      // A topic this call created or grew may still show its old count in a lagging metadata cache.
      const short = names.filter((name) => !created.has(name) && !grown.has(name) && countOf(name) > 0 && countOf(name) < layout.partitions);
      for (const name of short) {
        await admin.createPartitions({ topicPartitions: [{ topic: name, count: layout.partitions }] });
        grown.set(name, { topic: name, from: countOf(name), to: layout.partitions });
      }
      const ready =
        short.length === 0 &&
        names.every((name) => {
          const topic = topics.find((candidate) => candidate.name === name);
          return (
            topic !== undefined &&
            topic.partitions.length >= layout.partitions &&
            topic.partitions.every((partition) => partition.leader >= 0 && partition.isr.length === layout.replicationFactor)
          );
        });
      confirmations = ready ? confirmations + 1 : 0;
      if (confirmations >= READY_CONFIRMATIONS) {
        return {
          created: [...created],
          grown: [...grown.values()],
          larger: names.filter((name) => countOf(name) > layout.partitions).map((name) => ({ topic: name, partitions: countOf(name) })),
        };
      }
      if (ready) continue;
      lastError = new Error(
        short.length > 0
          ? `grew ${short.join(', ')} to ${layout.partitions} partitions; waiting for the new partitions`
          : 'some partitions have no leader, an incomplete in-sync replica set or are not known yet',
      );
    } catch (error) {
      confirmations = 0;
      lastError = error as Error;
    }
    if (Date.now() >= deadline) {
      throw new Error(`topics ${names.join(', ')} not ready: ${lastError.message}`, { cause: lastError });
    }
    options.onRetry?.(lastError);
    await new Promise((resolve) => setTimeout(resolve, 250));
  }
}

/** Offsets of a topic's end as a read_committed consumer sees it: the last stable offset. */
export const readCommitted = KafkaJS.IsolationLevel.READ_COMMITTED;

/** librdkafka's error codes (KafkaJSError.code), for callers that decide on them. */
export const kafkaErrorCodes = KafkaJS.ErrorCodes;

export function isKafkaError(error: unknown): error is KafkaJsTypes.KafkaJSError {
  return KafkaJS.isKafkaJSError(error as Error);
}

/** An error as librdkafka's binding hands it to a callback (not yet a KafkaJSError). */
export interface LibrdkafkaError {
  message: string;
  code: number;
  isFatal?: boolean;
  isRetriable?: boolean;
  isTxnRequiresAbort?: boolean;
}

/**
 * The binding's callback error as the KafkaJSError the rest of the code classifies, keeping
 * librdkafka's verdicts (fatal, retriable, abortable) as the compatible API names them.
 */
export function kafkaErrorOf(error: LibrdkafkaError, overrides: { fatal?: boolean } = {}): KafkaJsTypes.KafkaJSError {
  return new KafkaJS.KafkaJSError(error.message, {
    code: error.code,
    fatal: overrides.fatal ?? error.isFatal === true,
    retriable: error.isRetriable === true,
    abortable: error.isTxnRequiresAbort === true,
  });
}
