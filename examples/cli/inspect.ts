/**
 * A schema-aware console consumer: prints a topic's committed events decoded from Avro, one
 * JSON line each, with key, headers, partition, offset and timestamp.
 *
 *   npm run inspect -- FileExtractSuccess [--follow]
 *
 * It reads read_committed from the beginning to the end each partition has when it starts, then
 * exits (as `kcat -e` does); with --follow it keeps printing until interrupted. It assigns the
 * partitions itself and commits nothing: no consumer group sees it.
 */
import { randomBytes } from 'node:crypto';
import { parseArgs } from 'node:util';
import { loadConfig } from '../../core/config.js';
import { createRegistry } from '../../core/registry.js';
import { TopicReader, type ReadMessage } from '../../core/topic-reader.js';

const { values, positionals } = parseArgs({ options: { follow: { type: 'boolean', default: false } }, allowPositionals: true });
const topic = positionals[0];
if (topic === undefined || positionals.length > 1) {
  process.stderr.write('usage: npm run inspect -- <topic> [--follow]\n');
  process.exit(2);
}

const config = loadConfig();
const registry = createRegistry(config.registry);
const reader = new TopicReader(config.kafka, topic, { groupId: `etl-inspect-${randomBytes(6).toString('hex')}` });

async function print(message: ReadMessage): Promise<void> {
  let value: unknown;
  try {
    value = message.value === null ? null : await registry.decode(message.value);
  } catch (error) {
    value = { undecodable: message.value?.toString('base64'), error: (error as Error).message };
  }
  const line = {
    topic,
    partition: message.partition,
    offset: message.offset,
    timestamp: new Date(message.timestamp).toISOString(),
    key: message.key ?? null,
    headers: message.headers,
    value,
  };
  process.stdout.write(`${JSON.stringify(line)}\n`);
}

const stop = new AbortController();
process.once('SIGINT', () => stop.abort());
try {
  if (values.follow) await reader.follow(print, stop.signal);
  else await reader.readToEnd(10 * 60_000, print);
} finally {
  await reader.close();
}
