import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { request } from 'undici';
import { loadConfig, type Config } from '../../core/config.js';
import { createKafka, ensureTopics, type Admin, type KafkaClients } from '../../core/kafka.js';
import { replicationFactor, topicConfig } from '../../core/pipeline.js';
import { TopicReader as KafkaTopicReader, type ReadMessage, type TopicReaderOptions } from '../../core/topic-reader.js';

export { freePort } from '../../deployments/local/free-port.js';

export type { ReadMessage };

/** Integration tests run against the stack that `make itest-up` started, configured like the services. */
export const config: Config = loadConfig();

/** The registry's Confluent-compatible REST API (config.registry.url, or `baseUrl`), answered as parsed JSON. */
export const registryContentType = 'application/vnd.schemaregistry.v1+json';

export async function registryCall(
  method: 'GET' | 'POST' | 'PUT' | 'DELETE',
  path: string,
  body?: unknown,
  baseUrl: string = config.registry.url,
): Promise<{ status: number; json: any }> {
  const response = await request(`${baseUrl.replace(/\/+$/, '')}${path}`, {
    method,
    headers: { accept: registryContentType, 'content-type': registryContentType },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await response.body.text();
  return { status: response.statusCode, json: text === '' ? undefined : JSON.parse(text) };
}

export function uniqueName(prefix: string): string {
  return `${prefix}-${Date.now().toString(36)}-${randomBytes(3).toString('hex')}`;
}

export function testKafka(clientId = uniqueName('itest')): KafkaClients {
  return createKafka(config.kafka, { clientId });
}

/** A scratch topic of the pipeline's layout: `config.pipeline.partitions` partitions. */
export async function createTestTopic(admin: Admin, topic: string): Promise<void> {
  await ensureTopics(admin, [topic], { partitions: config.pipeline.partitions, replicationFactor, config: topicConfig }, { timeoutMs: 60_000 });
}

export async function eventually<T>(what: string, probe: () => Promise<T | undefined>, timeoutMs = 30_000): Promise<T> {
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

/** The core reader with the tests' configuration and a throw-away group name. */
export class TopicReader extends KafkaTopicReader {
  constructor(topic: string, options: Omit<TopicReaderOptions, 'groupId'> = {}) {
    super(config.kafka, topic, { ...options, groupId: uniqueName('itest.reader') });
  }
}

/** Every committed message of a topic now, read to its end. */
export async function readTopic(topic: string): Promise<ReadMessage[]> {
  const reader = new TopicReader(topic);
  try {
    return await reader.readToEnd();
  } finally {
    await reader.close();
  }
}

/**
 * The decoded events of a topic that match, once at least `count` of them are committed: reads
 * read_committed to the end until they are there, so what it returns is everything that matched
 * up to the end of the topic at that moment (a duplicate committed by then is in it).
 */
export async function collectEvents<T>(
  topic: string,
  match: (value: T, message: { key: string | undefined; headers: Record<string, string> }) => boolean,
  options: { count: number; timeoutMs?: number; decode: (buffer: Buffer) => Promise<T> },
): Promise<Array<{ value: T; key: string | undefined; headers: Record<string, string>; partition: number }>> {
  const { count, timeoutMs = 30_000, decode } = options;
  const reader = new TopicReader(topic);
  const found: Array<{ value: T; key: string | undefined; headers: Record<string, string>; partition: number }> = [];
  try {
    await eventually(
      `${count} matching events on ${topic}`,
      async () => {
        for (const message of await reader.readToEnd()) {
          if (message.value === null) continue;
          const value = await decode(message.value);
          if (match(value, message)) found.push({ value, key: message.key, headers: message.headers, partition: message.partition });
        }
        return found.length >= count ? true : undefined;
      },
      timeoutMs,
    );
    return found;
  } finally {
    await reader.close();
  }
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

/** The codecs Kafka producers compress batches with; every consumer of the pipeline must read each. */
export const kafkaCodecs = ['gzip', 'snappy', 'lz4', 'zstd'] as const;

/**
 * Writes `values` as one batch to `partition` with kcat (librdkafka, as a Java or kcat user
 * would), compressed with `codec`, keyed by `key`. Values may be binary (Avro): they are
 * separated by a delimiter no value contains.
 */
export function produceWithKcat(topic: string, values: readonly Buffer[], options: { codec: string; key: string; partition?: number }): void {
  const delimiter = `--etl-${randomBytes(12).toString('hex')}--`;
  const input = Buffer.concat(values.flatMap((value) => [Buffer.from(`${options.key}\t`), value, Buffer.from(delimiter)]));
  execFileSync(
    'kcat',
    [
      '-P',
      '-b',
      config.kafka.brokers[0]!,
      '-t',
      topic,
      '-p',
      String(options.partition ?? 0),
      '-z',
      options.codec,
      '-K',
      '\t',
      '-D',
      delimiter,
      '-X',
      'acks=all',
      '-X',
      'linger.ms=100',
    ],
    { input },
  );
}
