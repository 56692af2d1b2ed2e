import { Kafka, logLevel, type Admin, type KafkaConfig as KafkaJsConfig, type LogEntry } from 'kafkajs';
import type { Logger } from 'pino';
import type { KafkaConfig } from './config.js';
import type { PartitionCountOf } from './partitioned-send.js';

/**
 * Broker answers that are part of normal operation, which KafkaJS logs as errors before it
 * retries them itself. CONCURRENT_TRANSACTIONS: a transaction begins while the brokers still
 * write the previous one's commit markers; the client retries in ~20 ms (the Java client
 * logs it at debug). Logged as errors, every busy stage looked broken (16 error lines in a
 * 2-replica bench:pipeline run, none of them a failure).
 */
const routineBrokerAnswers = ['another concurrent operation on the same transaction was ongoing'];

/** The level a KafkaJS log entry gets in the service's log. */
export function kafkaLogLevel(entry: LogEntry): 'error' | 'warn' | 'info' | 'debug' {
  // The broker's answer is in `error` ("Response AddPartitionsToTxn…"), or in the message of
  // the producer's retry line ("Failed to send messages: …").
  const text = `${String((entry.log as { error?: unknown }).error ?? '')} ${entry.log.message}`;
  if (routineBrokerAnswers.some((answer) => text.includes(answer))) return 'debug';
  if (entry.level === logLevel.ERROR) return 'error';
  if (entry.level === logLevel.WARN) return 'warn';
  if (entry.level === logLevel.INFO) return 'info';
  return 'debug';
}

/** Routes KafkaJS's own logs into the service's structured logger. */
function kafkaLogCreator(logger: Logger | undefined) {
  return () => (entry: LogEntry) => {
    if (logger === undefined) return;
    const { message, ...extra } = entry.log;
    logger.child({ component: 'kafkajs' })[kafkaLogLevel(entry)](extra, message);
  };
}

export function createKafka(config: KafkaConfig, options: { logger?: Logger; clientId?: string } = {}): Kafka {
  const kafkaConfig: KafkaJsConfig = {
    clientId: options.clientId ?? config.clientId,
    brokers: config.brokers,
    connectionTimeout: config.connectionTimeoutMs,
    requestTimeout: config.requestTimeoutMs,
    logLevel: options.logger === undefined ? logLevel.NOTHING : logLevel.WARN,
    logCreator: kafkaLogCreator(options.logger),
    retry: { initialRetryTime: 200, retries: 8, maxRetryTime: 10_000 },
  };
  return new Kafka(kafkaConfig);
}

/**
 * The partition count of each topic as the cluster reports it, for `sendPerPartition`
 * (read once at start-up: the pipeline never adds partitions to a running topic).
 */
export async function partitionCountsOf(admin: Admin, topicNames: Iterable<string>): Promise<PartitionCountOf> {
  const { topics } = await admin.fetchTopicMetadata({ topics: [...new Set(topicNames)] });
  const counts = new Map(topics.map((topic) => [topic.name, topic.partitions.length]));
  return (topic) => {
    const count = counts.get(topic);
    if (count === undefined) throw new Error(`no partition count known for topic ${topic}`);
    return count;
  };
}

/** How a topic is created: the pipeline's topics all share one layout (core/pipeline.ts). */
export interface TopicLayout {
  partitions: number;
  replicationFactor: number;
  config: Record<string, string>;
}

/**
 * Creates the topics that do not exist yet and waits until every partition of every one has a
 * leader and its whole replica set in sync. KafkaJS's own `waitForLeaders` gives up on the first
 * UNKNOWN_TOPIC_OR_PARTITION, which a broker answers for a moment after a topic is created (its
 * metadata cache lags the controller): here every error counts as "not yet" until the deadline.
 * Returns the names of the topics it created.
 */
export async function ensureTopics(
  admin: Admin,
  names: readonly string[],
  layout: TopicLayout,
  options: { timeoutMs?: number; onRetry?: (error: Error) => void } = {},
): Promise<string[]> {
  const deadline = Date.now() + (options.timeoutMs ?? 120_000);
  const created = new Set<string>();
  let lastError: Error | undefined;
  for (;;) {
    try {
      const existing = new Set(await admin.listTopics());
      const missing = names.filter((name) => !existing.has(name));
      if (missing.length > 0) {
        await admin.createTopics({
          waitForLeaders: false,
          topics: missing.map((name) => ({
            topic: name,
            numPartitions: layout.partitions,
            replicationFactor: layout.replicationFactor,
            configEntries: Object.entries(layout.config).map(([key, value]) => ({ name: key, value })),
          })),
        });
        for (const name of missing) created.add(name);
      }
      const { topics } = await admin.fetchTopicMetadata({ topics: [...names] });
      const ready = names.every((name) => {
        const topic = topics.find((candidate) => candidate.name === name);
        return (
          topic !== undefined &&
          topic.partitions.length === layout.partitions &&
          topic.partitions.every(
            (partition) => partition.leader >= 0 && partition.isr.length === layout.replicationFactor,
          )
        );
      });
      if (ready) return [...created];
      lastError = new Error('some partitions have no leader or an incomplete in-sync replica set yet');
    } catch (error) {
      lastError = error as Error;
    }
    if (Date.now() >= deadline) {
      throw new Error(`topics ${names.join(', ')} not ready: ${lastError.message}`, { cause: lastError });
    }
    options.onRetry?.(lastError);
    await new Promise((resolve) => setTimeout(resolve, 250));
  }
}
