/**
 * A schema-aware console consumer: prints a topic's events decoded from Avro, one JSON line
 * each, with key, headers, partition, offset and timestamp.
 *
 *   npm run inspect -- FileExtractSuccess [--follow] [--idle-ms 3000]
 *
 * It reads from the beginning with a throw-away consumer group (nothing is committed) and
 * exits after --idle-ms without new messages, unless --follow.
 */
import { randomBytes } from 'node:crypto';
import { loadConfig } from '../../core/config.js';
import { createKafka } from '../../core/kafka.js';
import { createRegistry } from '../../core/registry.js';

const args = process.argv.slice(2);
const topic = args.find((arg) => !arg.startsWith('--'));
const follow = args.includes('--follow');
const idleIndex = args.indexOf('--idle-ms');
const idleMs = idleIndex >= 0 ? Number(args[idleIndex + 1]) : 3000;
if (topic === undefined) {
  process.stderr.write('usage: npm run inspect -- <topic> [--follow] [--idle-ms 3000]\n');
  process.exit(2);
}

const config = loadConfig();
const registry = createRegistry(config.registry);
const kafka = createKafka(config.kafka, { clientId: 'etl-inspect' });
const consumer = kafka.consumer({ groupId: `etl-inspect-${randomBytes(6).toString('hex')}` });
let lastMessageAt = Date.now();

await consumer.connect();
await consumer.subscribe({ topics: [topic] });
await consumer.run({
  eachMessage: async ({ partition, message }) => {
    lastMessageAt = Date.now();
    const headers: Record<string, string> = {};
    for (const [name, value] of Object.entries(message.headers ?? {})) headers[name] = String(value);
    let value: unknown;
    try {
      value = message.value === null ? null : await registry.decode(message.value);
    } catch (error) {
      value = { undecodable: message.value?.toString('base64'), error: (error as Error).message };
    }
    process.stdout.write(
      `${JSON.stringify({
        topic,
        partition,
        offset: message.offset,
        timestamp: new Date(Number(message.timestamp)).toISOString(),
        key: message.key?.toString() ?? null,
        headers,
        value,
      })}\n`,
    );
  },
});

if (!follow) {
  const timer = setInterval(async () => {
    if (Date.now() - lastMessageAt < idleMs) return;
    clearInterval(timer);
    await consumer.disconnect();
    process.exit(0);
  }, 250);
}
process.on('SIGINT', async () => {
  await consumer.disconnect();
  process.exit(0);
});
