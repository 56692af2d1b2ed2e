import { randomBytes } from 'node:crypto';
import type { Admin, Kafka } from 'kafkajs';
import { loadConfig, type Config } from '../../core/config.js';
import { createKafka } from '../../core/kafka.js';
import { partitions, replicationFactor, topicConfig } from '../../core/pipeline.js';

/** Integration tests run against the stack that `make itest-up` started, configured like the services. */
export const config: Config = loadConfig();

export function uniqueName(prefix: string): string {
  return `${prefix}-${Date.now().toString(36)}-${randomBytes(3).toString('hex')}`;
}

export function testKafka(clientId = uniqueName('itest')): Kafka {
  return createKafka(config.kafka, { clientId });
}

export async function createTestTopic(admin: Admin, topic: string): Promise<void> {
  await admin.createTopics({
    waitForLeaders: true,
    topics: [
      {
        topic,
        numPartitions: partitions,
        replicationFactor,
        configEntries: Object.entries(topicConfig).map(([name, value]) => ({ name, value })),
      },
    ],
  });
}

export async function eventually<T>(
  what: string,
  probe: () => Promise<T | undefined>,
  timeoutMs = 30_000,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown;
  while (Date.now() < deadline) {
    try {
      const value = await probe();
      if (value !== undefined) return value;
    } catch (error) {
      lastError = error;
    }
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
  throw new Error(`timed out waiting for ${what}`, { cause: lastError });
}
