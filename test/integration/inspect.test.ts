/**
 * `npm run inspect` against the real stack: it prints every committed event of a topic decoded
 * through the registry, whichever codec the producer compressed its batch with, and exits at
 * the end of the topic.
 */
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import t from 'tap';
import { createEventCodec } from '../../core/event-codec.js';
import { createRegistry } from '../../core/registry.js';
import { topics } from '../../core/pipeline.js';
import { schemaOfTopic, type FileExtractError } from '../../schemas/index.js';
import { config, createTestTopic, kafkaCodecs, produceWithKcat, testKafka, uniqueName } from './helpers.js';

const run = promisify(execFile);

t.test('inspect decodes batches kcat compressed with gzip, snappy, lz4 and zstd, and exits at the end', async (t) => {
  const admin = testKafka().admin();
  await admin.connect();
  const topic = uniqueName('itest.inspect');
  await createTestTopic(admin, topic);
  t.teardown(async () => {
    await admin.deleteTopics({ topics: [topic] });
    await admin.disconnect();
  });
  const codec = createEventCodec(createRegistry(config.registry), config.registry.url);
  await codec.register(topic, schemaOfTopic(topics.fileExtractError.name));
  const expected: string[] = [];
  for (const [index, name] of kafkaCodecs.entries()) {
    const events: FileExtractError[] = Array.from({ length: 5 }, (_, position) => ({
      request_id: `${name}-${position}`,
      tenant: 'acme',
      reason_code: 'INVALID_JSON',
      message: `not JSON ${'of a compressible batch '.repeat(20)}`,
      offset: position,
      bytes_received: 10,
      content_type: null,
      original_filename: `${name}.json`,
      received_at: Date.parse('2026-12-02T10:00:00Z'),
    }));
    expected.push(...events.map((event) => event.request_id));
    produceWithKcat(topic, await Promise.all(events.map((event) => codec.encode(topic, event))), { codec: name, key: `acme-${name}`, partition: index % 3 });
  }

  const { stdout } = await run(process.execPath, ['--import', 'tsx', 'examples/cli/inspect.ts', topic], { env: process.env, maxBuffer: 16 * 1024 * 1024 });
  const lines = stdout
    .trim()
    .split('\n')
    .map((line) => JSON.parse(line) as { topic: string; key: string; partition: number; value: FileExtractError });
  t.same(lines.map((line) => line.value.request_id).sort(), [...expected].sort(), 'every event, once, decoded');
  for (const line of lines) {
    const name = line.value.request_id.split('-')[0]!;
    t.equal(line.key, `acme-${name}`, `${line.value.request_id}: its key`);
    t.equal(line.value.original_filename, `${name}.json`, `${line.value.request_id}: its fields decoded`);
    t.equal(line.topic, topic);
  }
});
