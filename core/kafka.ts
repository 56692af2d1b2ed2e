import { Kafka, logLevel, type KafkaConfig as KafkaJsConfig, type LogEntry } from 'kafkajs';
import type { Logger } from 'pino';
import type { KafkaConfig } from './config.js';

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
