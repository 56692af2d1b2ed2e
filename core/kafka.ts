import { Kafka, logLevel, type Admin, type KafkaConfig as KafkaJsConfig, type LogEntry } from 'kafkajs';
import type { Logger } from 'pino';
import type { KafkaConfig } from './config.js';
import type { PartitionCountOf } from './partitioned-send.js';

/** Routes KafkaJS's own logs into the service's structured logger. */
function kafkaLogCreator(logger: Logger | undefined) {
  return () =>
    ({ level, log }: LogEntry) => {
      if (logger === undefined) return;
      const { message, ...extra } = log;
      const target = logger.child({ component: 'kafkajs' });
      if (level === logLevel.ERROR) target.error(extra, message);
      else if (level === logLevel.WARN) target.warn(extra, message);
      else if (level === logLevel.INFO) target.info(extra, message);
      else target.debug(extra, message);
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
