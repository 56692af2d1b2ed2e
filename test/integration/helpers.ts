import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { createServer } from 'node:net';
import type { Admin, Kafka } from 'kafkajs';
import { loadConfig, type Config } from '../../core/config.js';
import { createKafka, ensureTopics } from '../../core/kafka.js';
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
  await ensureTopics(admin, [topic], { partitions, replicationFactor, config: topicConfig }, { timeoutMs: 60_000 });
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

/**
 * Reads a topic from the beginning with a throw-away consumer group and returns the decoded
 * events that match, once `count` of them arrived (then waits `settleMs` more to catch extras).
 */
export async function collectEvents<T>(
  topic: string,
  match: (value: T, message: { key: string | undefined; headers: Record<string, string> }) => boolean,
  options: { count: number; timeoutMs?: number; settleMs?: number; decode: (buffer: Buffer) => Promise<T> },
): Promise<Array<{ value: T; key: string | undefined; headers: Record<string, string>; partition: number }>> {
  const { count, timeoutMs = 30_000, settleMs = 1000, decode } = options;
  const consumer = testKafka().consumer({ groupId: uniqueName('itest.collect'), readUncommitted: false });
  const found: Array<{ value: T; key: string | undefined; headers: Record<string, string>; partition: number }> = [];
  await consumer.connect();
  try {
    await consumer.subscribe({ topic, fromBeginning: true });
    await consumer.run({
      eachMessage: async ({ message, partition }) => {
        const headers: Record<string, string> = {};
        for (const [name, value] of Object.entries(message.headers ?? {})) headers[name] = String(value);
        const key = message.key?.toString();
        const value = await decode(message.value!);
        if (match(value, { key, headers })) found.push({ value, key, headers, partition });
      },
    });
    await eventually(`${count} matching events on ${topic}`, async () => (found.length >= count ? true : undefined), timeoutMs);
    await new Promise((resolve) => setTimeout(resolve, settleMs));
    return found;
  } finally {
    await consumer.disconnect();
  }
}

/**
 * A port nothing listens on now, picked by the kernel (a random number could be an
 * ephemeral port some connection of the stack already uses).
 */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() => (typeof address === 'object' && address !== null ? resolve(address.port) : reject(new Error('no port'))));
    });
  });
}

/**
 * Writes one LZ4-compressed batch of 20 compressible lines to partition 0 with kcat (librdkafka),
 * as Java and librdkafka producers with compression on do; returns the lines. (librdkafka sends
 * a batch uncompressed when compressing does not shrink it, hence compressible lines.)
 */
export function produceLz4Batch(topic: string): string[] {
  const lines = Array.from({ length: 20 }, (_, i) => JSON.stringify({ i, text: 'compressible '.repeat(40) }));
  execFileSync('kcat', ['-P', '-b', config.kafka.brokers[0]!, '-t', topic, '-p', '0', '-z', 'lz4', '-X', 'acks=all'], { input: `${lines.join('\n')}\n` });
  return lines;
}
