/**
 * The sink runner with the real load sink, in this process, on the real stack (Kafka, the
 * registry, PostgreSQL): a batch whose events fail to go out after its commit has them sent
 * before the partition's next write, exactly as committed, and its outbox entry forgotten.
 * The failure is injected into the runner's driver (a broker that did not acknowledge).
 * And the stage reads batches that kcat compressed with every codec Kafka knows.
 */
import { Registry } from 'prom-client';
import t from 'tap';
import type { LogConfig } from '../../core/config.js';
import { createEventCodec } from '../../core/event-codec.js';
import { createKafka, readCommitted, type Admin } from '../../core/kafka.js';
import { createLogger } from '../../core/logger.js';
import { topics } from '../../core/pipeline.js';
import { createPostgres } from '../../core/postgres.js';
import { createRegistry } from '../../core/registry.js';
import { schemaOfTopic, type CompanyRecordEvent, type RecordsLoaded } from '../../schemas/index.js';
import { createLoadSink } from '../../sinks/postgres/index.js';
import { createStageMetrics } from '../../topology/lib/metrics.js';
import { runSinkStage } from '../../topology/lib/sink-runner.js';
import type { StageDriver } from '../../topology/lib/driver.js';
import { encodeEmit } from '../../topology/lib/encoding.js';
import { createKafkaDriver } from '../../topology/lib/kafka-driver.js';
import type { SinkStage } from '../../topology/lib/types.js';
import { collectEvents, config, createTestTopic, eventually, kafkaCodecs, produceWithKcat, uniqueName } from './helpers.js';

const registry = createRegistry(config.registry);
const codec = createEventCodec(registry, config.registry.url);
const postgres = createPostgres(config.postgres, { applicationName: 'itest-sink-runner' });
const kafka = createKafka(config.kafka, { clientId: uniqueName('itest-sink-runner') });
const logger = createLogger({ level: (process.env.ITEST_LOG_LEVEL ?? 'error') as LogConfig['level'] }, 'itest-sink-runner');
t.teardown(() => postgres.close());

/** The load stage (the real load sink) reading `input` as consumer group `groupId`, in this process. */
async function startLoadStage(options: { input: string; groupId: string; driver: StageDriver }) {
  const stage: SinkStage<CompanyRecordEvent> = {
    kind: 'sink',
    name: 'load',
    groupId: options.groupId,
    doc: 'the load stage under test',
    input: options.input,
    outputs: { loaded: topics.recordsLoaded.name },
    errors: topics.processingError.name,
    sink: () => createLoadSink(postgres),
  };
  return runSinkStage(stage, {
    driver: options.driver,
    codec,
    logger,
    metrics: createStageMetrics(new Registry()),
    maxBatchRecords: 1000,
    lingerMs: 100,
    maxBatchBytes: 1024 * 1024,
  });
}

t.test('events of a batch whose send failed after its commit go out before the next write, once, and leave the outbox', async (t) => {
  const groupId = uniqueName('itest.sink-runner');
  const tenant = uniqueName('sinkrunner');
  const requestId = uniqueName('req');
  const input = topics.recordValidated.name;
  const admin = kafka.admin();
  await admin.connect();
  const real = kafka.producer();
  await real.connect();
  t.teardown(async () => {
    await real.disconnect();
    await admin.disconnect();
    await postgres.db.none('DELETE FROM companies WHERE tenant = $1', [tenant]);
    await postgres.db.none('DELETE FROM sink_offsets WHERE consumer_group = $1', [groupId]);
    await postgres.db.none('DELETE FROM sink_outbox WHERE consumer_group = $1', [groupId]);
  });

  for (const topic of [input, topics.recordsLoaded.name, topics.processingError.name]) await codec.register(topic, schemaOfTopic(topic));

  // The group starts at today's end of RecordValidated: its stored offsets say so (the sink's
  // offsets are the truth on assignment), so it reads only what this test writes.
  for (const { partition, high } of await admin.fetchTopicOffsets(input, { isolationLevel: readCommitted })) {
    await postgres.db.none('INSERT INTO sink_offsets (consumer_group, topic, partition, next_offset) VALUES ($1, $2, $3, $4)', [
      groupId,
      input,
      partition,
      high,
    ]);
  }

  // The first send of RecordsLoaded fails before it reaches a broker; later ones go through.
  let failuresLeft = 1;
  const driver = createKafkaDriver(kafka, { producer: real, logger });
  const failingOnce: StageDriver = {
    ...driver,
    consumer: (options) => driver.consumer(options),
    send: async (records) => {
      if (records.some((record) => record.topic === topics.recordsLoaded.name) && failuresLeft > 0) {
        failuresLeft--;
        throw new Error('injected: the broker did not acknowledge');
      }
      return driver.send(records);
    },
  };

  const running = await startLoadStage({ input, groupId, driver: failingOnce });
  t.teardown(() => running.stop());
  await eventually('the stage to join its group', async () => (running.healthy() ? true : undefined), 60_000);

  const count = 30;
  const messages = await Promise.all(
    Array.from({ length: count }, (_, index) => {
      const permalink = `${tenant}-company-${index}`;
      const value: CompanyRecordEvent = {
        request_id: requestId,
        tenant,
        bucket: 'imports',
        key: `${tenant}/file.ndjson`,
        record_index: index,
        document: JSON.stringify({ name: `Company ${index}`, permalink }),
      };
      return encodeEmit(codec, input, { to: 'valid', key: permalink, value, requestId });
    }),
  );
  await real.send({ topic: input, messages });

  await eventually(
    'every row loaded',
    async () => {
      const { n } = await postgres.db.one<{ n: number }>('SELECT count(*)::int AS n FROM companies WHERE tenant = $1', [tenant]);
      return n === count ? true : undefined;
    },
    60_000,
  );
  const loaded = await collectEvents<RecordsLoaded>(topics.recordsLoaded.name, (event) => event.request_id === requestId, {
    count: 1,
    timeoutMs: 60_000,
    decode: (buffer) => registry.decode(buffer) as Promise<RecordsLoaded>,
  });
  t.equal(failuresLeft, 0, 'a send of RecordsLoaded did fail after a commit');
  const batchIds = new Set(loaded.map((event) => event.value.batch_id));
  t.equal(loaded.length, batchIds.size, 'each committed batch announced once');
  t.equal(
    loaded.reduce((sum, event) => sum + event.value.inserted + event.value.updated + (event.value.unchanged ?? 0), 0),
    count,
    'the announced batches add up to the records written, nothing written twice',
  );
  t.same(
    loaded.map((event) => event.value.rejected),
    loaded.map(() => 0),
  );
  await eventually(
    'the outbox to be empty for the group',
    async () => {
      const { n } = await postgres.db.one<{ n: number }>('SELECT count(*)::int AS n FROM sink_outbox WHERE consumer_group = $1', [groupId]);
      return n === 0 ? true : undefined;
    },
    30_000,
  );
  const { n: rows } = await postgres.db.one<{ n: number }>('SELECT count(*)::int AS n FROM companies WHERE tenant = $1', [tenant]);
  t.equal(rows, count, 'one row per company');
});

t.test('the load stage reads batches that kcat compressed with gzip, snappy, lz4 and zstd', async (t) => {
  const admin: Admin = kafka.admin();
  await admin.connect();
  const input = uniqueName('itest.sink-runner.codecs');
  const groupId = uniqueName('itest.sink-runner');
  const tenant = uniqueName('codecs');
  await createTestTopic(admin, input);
  await codec.register(input, schemaOfTopic(topics.recordValidated.name));
  const producer = kafka.producer();
  await producer.connect();
  t.teardown(async () => {
    await producer.disconnect();
    await admin.deleteTopics({ topics: [input] });
    await admin.disconnect();
    await postgres.db.none('DELETE FROM companies WHERE tenant = $1', [tenant]);
    await postgres.db.none('DELETE FROM sink_offsets WHERE consumer_group = $1', [groupId]);
    await postgres.db.none('DELETE FROM sink_outbox WHERE consumer_group = $1', [groupId]);
  });
  const perCodec = 10;
  for (const [codecIndex, name] of kafkaCodecs.entries()) {
    const values = await Promise.all(
      Array.from({ length: perCodec }, async (_, index) => {
        const permalink = `${tenant}-${name}-${index}`;
        const value: CompanyRecordEvent = {
          request_id: `${tenant}-${name}`,
          tenant,
          bucket: 'imports',
          key: `${tenant}/${name}.ndjson`,
          record_index: index,
          // Compressible, so that librdkafka does compress the batch.
          document: JSON.stringify({ name: `Company ${index} ${'of a compressible batch '.repeat(20)}`, permalink }),
        };
        return (await encodeEmit(codec, input, { to: 'valid', key: permalink, value, requestId: value.request_id })).value;
      }),
    );
    produceWithKcat(input, values, { codec: name, key: `${tenant}-${name}`, partition: codecIndex % config.pipeline.partitions });
  }
  const running = await startLoadStage({ input, groupId, driver: createKafkaDriver(kafka, { producer, logger }) });
  t.teardown(() => running.stop());
  const rows = await eventually(
    'every record of every codec loaded',
    async () => {
      const found = await postgres.db.any<{ permalink: string }>('SELECT permalink FROM companies WHERE tenant = $1', [tenant]);
      return found.length === perCodec * kafkaCodecs.length ? found : undefined;
    },
    120_000,
  );
  for (const name of kafkaCodecs) {
    t.equal(rows.filter((row) => row.permalink.startsWith(`${tenant}-${name}-`)).length, perCodec, `${name}: every record`);
  }
});
