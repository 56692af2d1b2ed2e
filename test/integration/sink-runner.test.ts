/**
 * The sink runner with the real load sink, in this process, on the real stack (Kafka, the
 * registry, PostgreSQL): a batch whose events fail to go out after its commit has them sent
 * before the partition's next write, exactly as committed, and its outbox entry forgotten.
 * The failure is injected into the runner's producer (a broker that did not acknowledge).
 * And a stage whose consumer stops for good says so (the service then exits to be restarted).
 */
import type { Admin, Producer } from 'kafkajs';
import { Registry } from 'prom-client';
import t from 'tap';
import type { LogConfig } from '../../core/config.js';
import { createEventCodec } from '../../core/event-codec.js';
import { createKafka, ensureTopics, partitionCountsOf } from '../../core/kafka.js';
import { createLogger } from '../../core/logger.js';
import { partitions, replicationFactor, topicConfig, topics } from '../../core/pipeline.js';
import { createPostgres } from '../../core/postgres.js';
import { createRegistry } from '../../core/registry.js';
import { schemaOfTopic, type CompanyRecordEvent, type RecordsLoaded } from '../../schemas/index.js';
import { createLoadSink } from '../../sinks/postgres/index.js';
import { createStageMetrics } from '../../topology/lib/metrics.js';
import { runSinkStage } from '../../topology/lib/sink-runner.js';
import { encodeEmit } from '../../topology/lib/transform-runner.js';
import type { SinkStage } from '../../topology/lib/types.js';
import { collectEvents, config, eventually, produceLz4Batch, uniqueName } from './helpers.js';

const registry = createRegistry(config.registry);
const codec = createEventCodec(registry, config.registry.url);
const postgres = createPostgres(config.postgres, { applicationName: 'itest-sink-runner' });
const kafka = createKafka(config.kafka, { clientId: uniqueName('itest-sink-runner') });
const logger = createLogger({ level: (process.env.ITEST_LOG_LEVEL ?? 'error') as LogConfig['level'] }, 'itest-sink-runner');
t.teardown(() => postgres.close());

/** The load stage (the real load sink) reading `input` as consumer group `groupId`, in this process. */
async function startLoadStage(options: { admin: Admin; input: string; groupId: string; producer: Producer; onFatal?: (error: Error) => void }) {
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
  return runSinkStage(stage as SinkStage, {
    kafka,
    codec,
    logger,
    metrics: createStageMetrics(new Registry()),
    producer: options.producer,
    partitionCountOf: await partitionCountsOf(options.admin, [topics.recordsLoaded.name, topics.processingError.name]),
    maxBatchRecords: 1000,
    lingerMs: 100,
    maxBatchBytes: 1024 * 1024,
    onFatal: options.onFatal,
  });
}

t.test('events of a batch whose send failed after its commit go out before the next write, once, and leave the outbox', async (t) => {
  const groupId = uniqueName('itest.sink-runner');
  const tenant = uniqueName('sinkrunner');
  const requestId = uniqueName('req');
  const input = topics.recordValidated.name;
  const admin = kafka.admin();
  await admin.connect();
  const real = kafka.producer({ idempotent: true, maxInFlightRequests: 1, allowAutoTopicCreation: false });
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
  for (const { partition, high } of await admin.fetchTopicOffsets(input)) {
    await postgres.db.none('INSERT INTO sink_offsets (consumer_group, topic, partition, next_offset) VALUES ($1, $2, $3, $4)', [groupId, input, partition, high]);
  }

  // The first send of RecordsLoaded fails before it reaches a broker; later ones go through.
  let failuresLeft = 1;
  const producer = {
    ...real,
    send: async (record: Parameters<typeof real.send>[0]) => {
      if (record.topic === topics.recordsLoaded.name && failuresLeft > 0) {
        failuresLeft--;
        throw new Error('injected: the broker did not acknowledge');
      }
      return real.send(record);
    },
  } as typeof real;

  const running = await startLoadStage({ admin, input, groupId, producer });
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
  await real.send({ topic: input, messages, acks: -1 });

  await eventually('every row loaded', async () => {
    const { n } = await postgres.db.one<{ n: number }>('SELECT count(*)::int AS n FROM companies WHERE tenant = $1', [tenant]);
    return n === count ? true : undefined;
  }, 60_000);
  const loaded = await collectEvents<RecordsLoaded>(topics.recordsLoaded.name, (event) => event.request_id === requestId, {
    count: 1,
    timeoutMs: 60_000,
    settleMs: 3000,
    decode: (buffer) => registry.decode(buffer) as Promise<RecordsLoaded>,
  });
  t.equal(failuresLeft, 0, 'a send of RecordsLoaded did fail after a commit');
  const batchIds = new Set(loaded.map((event) => event.value.batch_id));
  t.equal(loaded.length, batchIds.size, 'each committed batch announced once');
  t.equal(
    loaded.reduce((sum, event) => sum + event.value.inserted + event.value.updated, 0),
    count,
    'the announced batches add up to the records written, nothing written twice',
  );
  t.same(loaded.map((event) => event.value.rejected), loaded.map(() => 0));
  await eventually('the outbox to be empty for the group', async () => {
    const { n } = await postgres.db.one<{ n: number }>('SELECT count(*)::int AS n FROM sink_outbox WHERE consumer_group = $1', [groupId]);
    return n === 0 ? true : undefined;
  }, 30_000);
  const { n: rows } = await postgres.db.one<{ n: number }>('SELECT count(*)::int AS n FROM companies WHERE tenant = $1', [tenant]);
  t.equal(rows, count, 'one row per company');
});

t.test('a stage whose consumer stops for good reports it as fatal, not only as unready', async (t) => {
  // A batch KafkaJS cannot decode (LZ4, written by kcat) on a topic that keeps the producer's
  // codec: KafkaJS's consumer crashes and does not restart. (The pipeline's own topics store
  // such batches uncompressed: core/pipeline.ts.)
  const admin = kafka.admin();
  await admin.connect();
  const input = uniqueName('itest.sink-runner.lz4');
  const groupId = uniqueName('itest.sink-runner');
  await ensureTopics(admin, [input], { partitions, replicationFactor, config: { ...topicConfig, 'compression.type': 'producer' } }, { timeoutMs: 60_000 });
  t.teardown(async () => {
    await admin.deleteTopics({ topics: [input] });
    await admin.disconnect();
  });
  produceLz4Batch(input);

  let fatal: Error | undefined;
  const running = await startLoadStage({ admin, input, groupId, producer: kafka.producer(), onFatal: (error) => void (fatal = error) });
  t.teardown(() => running.stop());
  await eventually('the fatal report', async () => (fatal === undefined ? undefined : true), 60_000);
  t.match(fatal?.message, /LZ4 compression not implemented/, 'the error that stopped it');
  t.equal(running.healthy(), false, 'and it is no longer ready');
});
