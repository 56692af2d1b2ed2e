/**
 * Proves the local stack is the design's real infrastructure and that our clients work
 * against it: a 3-broker KRaft cluster with the pipeline's topic settings, kafkajs's
 * idempotent producer, consumer groups and transactions, Avro through the registry in the
 * Confluent wire format, S3 on MinIO, and the migration runner on PostgreSQL.
 */
import { DeleteObjectCommand, GetObjectCommand, HeadObjectCommand, PutObjectCommand } from '@aws-sdk/client-s3';
import { SchemaType } from '@kafkajs/confluent-schema-registry';
import kafkajs, { type EachMessagePayload } from 'kafkajs';
import t from 'tap';
import { ensureTopics, partitionCountsOf } from '../../core/kafka.js';
import { sendPerPartition } from '../../core/partitioned-send.js';
import { allTopics, partitions, replicationFactor, topicConfig } from '../../core/pipeline.js';
import { createPostgres } from '../../core/postgres.js';
import { createRegistry } from '../../core/registry.js';
import { createS3 } from '../../core/s3.js';
import { appliedVersions, migrateUp, readMigrations, rollback } from '../../sinks/postgres/migrate.js';
import { config, createTestTopic, eventually, produceLz4Batch, testKafka, uniqueName } from './helpers.js';

const { CompressionTypes, ConfigResourceTypes } = kafkajs;

t.test('the cluster metadata lists 3 brokers', async (t) => {
  const admin = testKafka().admin();
  await admin.connect();
  t.teardown(() => admin.disconnect());
  const cluster = await admin.describeCluster();
  t.equal(cluster.brokers.length, 3);
  t.same(
    cluster.brokers.map((broker) => broker.port).sort(),
    config.kafka.brokers.map((broker) => Number(broker.split(':')[1])).sort(),
  );
  t.ok(cluster.controller !== null && cluster.controller !== undefined, 'a controller is elected');
});

t.test('every pipeline topic has 3 partitions, replication 3 and min in-sync 2', async (t) => {
  const admin = testKafka().admin();
  await admin.connect();
  t.teardown(() => admin.disconnect());
  const names = allTopics.map((topic) => topic.name);
  const metadata = await admin.fetchTopicMetadata({ topics: names });
  for (const topic of metadata.topics) {
    t.equal(topic.partitions.length, 3, `${topic.name} partitions`);
    for (const partition of topic.partitions) {
      t.equal(partition.replicas.length, 3, `${topic.name}[${partition.partitionId}] replicas`);
      t.equal(partition.isr.length, 3, `${topic.name}[${partition.partitionId}] in sync`);
    }
  }
  const configs = await admin.describeConfigs({
    includeSynonyms: false,
    resources: names.map((name) => ({ type: ConfigResourceTypes.TOPIC, name, configNames: ['min.insync.replicas', 'max.message.bytes'] })),
  });
  for (const resource of configs.resources) {
    const entry = resource.configEntries.find((candidate) => candidate.configName === 'min.insync.replicas');
    t.equal(entry?.configValue, '2', `${resource.resourceName} min.insync.replicas`);
    const maxBytes = resource.configEntries.find((candidate) => candidate.configName === 'max.message.bytes');
    t.equal(maxBytes?.configValue, String(32 * 1024 * 1024), `${resource.resourceName} takes records as big as the ingress allows`);
  }
});

t.test('ensureTopics returns once every partition of a new topic is led and fully in sync, and is idempotent', async (t) => {
  const admin = testKafka().admin();
  await admin.connect();
  const names = [uniqueName('itest.stack.ensure-a'), uniqueName('itest.stack.ensure-b')];
  t.teardown(async () => {
    await admin.deleteTopics({ topics: names });
    await admin.disconnect();
  });
  const layout = { partitions, replicationFactor, config: topicConfig };
  const created = await ensureTopics(admin, names, layout);
  t.same([...created].sort(), [...names].sort(), 'both topics created');
  // Asked right after it returns, with no waiting of our own: the metadata must already be complete.
  const { topics } = await admin.fetchTopicMetadata({ topics: names });
  for (const topic of topics) {
    t.equal(topic.partitions.length, partitions, `${topic.name} partitions`);
    t.ok(
      topic.partitions.every((partition) => partition.leader >= 0 && partition.isr.length === replicationFactor),
      `${topic.name}: every partition led, all replicas in sync`,
    );
  }
  t.same(await ensureTopics(admin, names, layout), [], 'a second call creates nothing and does not fail');
});

t.test('an idempotent acks=all producer and a consumer group deliver every message once, in order', async (t) => {
  const kafka = testKafka();
  const admin = kafka.admin();
  await admin.connect();
  const topic = uniqueName('itest.stack.idempotent');
  await createTestTopic(admin, topic);
  const producer = kafka.producer({ idempotent: true, maxInFlightRequests: 1 });
  const consumer = kafka.consumer({ groupId: uniqueName('itest.group') });
  t.teardown(async () => {
    await consumer.disconnect();
    await producer.disconnect();
    await admin.deleteTopics({ topics: [topic] });
    await admin.disconnect();
  });
  await producer.connect();
  const keys = ['acme', 'globex', 'initech'];
  const sent = Array.from({ length: 30 }, (_, i) => ({ key: keys[i % 3]!, value: String(i) }));
  const results = await producer.send({ topic, acks: -1, compression: CompressionTypes.None, messages: sent });
  t.ok(results.every((result) => result.errorCode === 0), 'every partition acknowledged with acks=all');

  const received: Array<{ key: string; value: string; partition: number }> = [];
  await consumer.connect();
  await consumer.subscribe({ topic, fromBeginning: true });
  await consumer.run({
    eachMessage: async ({ message, partition }: EachMessagePayload) => {
      received.push({ key: message.key!.toString(), value: message.value!.toString(), partition });
    },
  });
  await eventually('all 30 messages consumed', async () => (received.length >= 30 ? true : undefined));
  t.equal(received.length, 30, 'no duplicates');
  for (const key of keys) {
    const values = received.filter((message) => message.key === key);
    t.equal(new Set(values.map((message) => message.partition)).size, 1, `key ${key} stays on one partition`);
    t.same(
      values.map((message) => Number(message.value)),
      sent.filter((message) => message.key === key).map((message) => Number(message.value)),
      `key ${key} keeps its order`,
    );
  }
});

t.test('a batch another client compressed with LZ4 is stored so that KafkaJS reads it (compression.type=uncompressed)', async (t) => {
  const kafka = testKafka();
  const admin = kafka.admin();
  await admin.connect();
  const topic = uniqueName('itest.stack.lz4');
  const control = uniqueName('itest.stack.lz4-producer');
  await createTestTopic(admin, topic);
  // The control: the same batch on a topic that keeps the producer's codec (Kafka's default).
  await ensureTopics(admin, [control], { partitions, replicationFactor, config: { ...topicConfig, 'compression.type': 'producer' } }, { timeoutMs: 60_000 });
  const consumers: kafkajs.Consumer[] = [];
  t.teardown(async () => {
    for (const consumer of consumers) await consumer.disconnect();
    await admin.deleteTopics({ topics: [topic, control] });
    await admin.disconnect();
  });
  const lines = produceLz4Batch(topic);
  produceLz4Batch(control);

  const read = async (name: string): Promise<{ values: string[]; crash?: string }> => {
    const consumer = kafka.consumer({ groupId: uniqueName('itest.group') });
    consumers.push(consumer);
    const values: string[] = [];
    let crash: string | undefined;
    consumer.on(consumer.events.CRASH, (event) => void (crash = String(event.payload.error)));
    await consumer.connect();
    await consumer.subscribe({ topic: name, fromBeginning: true });
    await consumer.run({ eachMessage: async ({ message }) => void values.push(message.value!.toString()) });
    await eventually(`${name} read or its consumer crashed`, async () => (values.length >= lines.length || crash !== undefined ? true : undefined), 60_000);
    return { values, crash };
  };
  const stored = await read(topic);
  t.same(stored.values, lines, 'every message read, in order: the broker stored the batch uncompressed');
  t.equal(stored.crash, undefined);
  const kept = await read(control);
  t.match(kept.crash, /LZ4 compression not implemented/, 'the control: KafkaJS cannot read an LZ4 batch at all (its consumer stops)');
  t.same(kept.values, [], 'not one message of the control batch was delivered');
});

t.test('transactions: consume-transform-produce with sendOffsets, aborted writes stay invisible', async (t) => {
  const kafka = testKafka();
  const admin = kafka.admin();
  await admin.connect();
  const input = uniqueName('itest.stack.tx-in');
  const output = uniqueName('itest.stack.tx-out');
  await createTestTopic(admin, input);
  await createTestTopic(admin, output);
  const groupId = uniqueName('itest.tx-group');
  const plain = kafka.producer({ idempotent: true, maxInFlightRequests: 1 });
  const transactional = kafka.producer({ transactionalId: uniqueName('itest.tx'), idempotent: true, maxInFlightRequests: 1 });
  const reader = kafka.consumer({ groupId: uniqueName('itest.reader'), readUncommitted: false });
  t.teardown(async () => {
    await reader.disconnect();
    await transactional.disconnect();
    await plain.disconnect();
    await admin.deleteTopics({ topics: [input, output] });
    await admin.disconnect();
  });
  await plain.connect();
  await transactional.connect();
  await plain.send({ topic: input, acks: -1, messages: [{ key: 'k', value: 'hello' }] });

  const inputOffsets = await admin.fetchTopicOffsets(input);
  const source = inputOffsets.find((partition) => partition.high === '1');
  t.ok(source, 'the input message landed on one partition');

  const aborted = await transactional.transaction();
  await aborted.send({ topic: output, messages: [{ key: 'k', value: 'ABORTED' }] });
  await aborted.abort();

  const committed = await transactional.transaction();
  await committed.send({ topic: output, messages: [{ key: 'k', value: 'HELLO' }] });
  await committed.sendOffsets({
    consumerGroupId: groupId,
    topics: [{ topic: input, partitions: [{ partition: source!.partition, offset: '1' }] }],
  });
  await committed.commit();

  // The coordinator applies the commit marker asynchronously; until then the offset is pending.
  const stored = await eventually('the transactional offset commit', async () => {
    const groupOffsets = await admin.fetchOffsets({ groupId, topics: [input] });
    const offset = groupOffsets[0]!.partitions.find((partition) => partition.partition === source!.partition)?.offset;
    return offset === '-1' ? undefined : offset;
  });
  t.equal(stored, '1', 'the consumed offset was committed with the transaction');

  const seen: string[] = [];
  await reader.connect();
  await reader.subscribe({ topic: output, fromBeginning: true });
  await reader.run({ eachMessage: async ({ message }) => void seen.push(message.value!.toString()) });
  await eventually('the committed message', async () => (seen.includes('HELLO') ? true : undefined));
  // Give the reader a moment to surface anything else the topic holds.
  await new Promise((resolve) => setTimeout(resolve, 1000));
  t.same(seen, ['HELLO'], 'a read_committed consumer never sees the aborted write');
});

t.test('back-to-back transactions over all 3 partition leaders commit every message exactly once (sendPerPartition)', async (t) => {
  // Regression: a multi-broker sendBatch retried on CONCURRENT_TRANSACTIONS re-sent requests
  // still in flight to the other brokers, and ~2% of the messages were committed twice.
  const kafka = testKafka();
  const admin = kafka.admin();
  await admin.connect();
  const topic = uniqueName('itest.stack.tx-burst');
  await createTestTopic(admin, topic);
  const transactional = kafka.producer({
    transactionalId: uniqueName('itest.tx-burst'),
    idempotent: true,
    maxInFlightRequests: 1,
    retry: { initialRetryTime: 20, maxRetryTime: 2_000, retries: 12 },
  });
  const plain = kafka.producer({ idempotent: true, maxInFlightRequests: 1 });
  const reader = kafka.consumer({ groupId: uniqueName('itest.tx-burst-reader'), readUncommitted: false });
  t.teardown(async () => {
    await reader.disconnect();
    await plain.disconnect();
    await transactional.disconnect();
    await admin.deleteTopics({ topics: [topic] });
    await admin.disconnect();
  });
  await transactional.connect();
  await plain.connect();
  const partitionCountOf = await partitionCountsOf(admin, [topic]);
  const transactions = 150;
  const perTransaction = 30;
  for (let n = 0; n < transactions; n++) {
    const transaction = await transactional.transaction();
    const messages = Array.from({ length: perTransaction }, (_, i) => ({ key: `company-${n}-${i}`, value: `${n}-${i}` }));
    await sendPerPartition(transaction, [{ topic, messages }], partitionCountOf);
    await transaction.commit();
  }
  // The same keys through a plain send: KafkaJS's partitioner must agree with ours.
  await plain.send({ topic, acks: -1, messages: Array.from({ length: 30 }, (_, i) => ({ key: `company-0-${i}`, value: `plain-${i}` })) });

  const expected = transactions * perTransaction + 30;
  const copies = new Map<string, number>();
  const partitionOfKey = new Map<string, Set<number>>();
  await reader.connect();
  await reader.subscribe({ topic, fromBeginning: true });
  await reader.run({
    eachMessage: async ({ message, partition }) => {
      const value = message.value!.toString();
      copies.set(value, (copies.get(value) ?? 0) + 1);
      const key = message.key!.toString();
      partitionOfKey.set(key, (partitionOfKey.get(key) ?? new Set()).add(partition));
    },
  });
  await eventually(`all ${expected} messages`, async () => ([...copies.values()].reduce((a, b) => a + b, 0) >= expected ? true : undefined), 120_000);
  await new Promise((resolve) => setTimeout(resolve, 2000));
  t.equal(copies.size, expected, 'every message arrived');
  t.same([...copies].filter(([, count]) => count > 1), [], 'no message committed twice');
  t.same([...partitionOfKey].filter(([, partitions]) => partitions.size > 1), [], 'each key on one partition, whoever sent it');
});

t.test('Avro round trip through the Schema Registry in the Confluent wire format', async (t) => {
  const registry = createRegistry(config.registry);
  const kafka = testKafka();
  const admin = kafka.admin();
  await admin.connect();
  const topic = uniqueName('itest.stack.avro');
  await createTestTopic(admin, topic);
  const producer = kafka.producer({ idempotent: true, maxInFlightRequests: 1 });
  const consumer = kafka.consumer({ groupId: uniqueName('itest.avro') });
  t.teardown(async () => {
    await consumer.disconnect();
    await producer.disconnect();
    await admin.deleteTopics({ topics: [topic] });
    await admin.disconnect();
  });
  const schema = {
    type: 'record',
    name: 'StackProbe',
    namespace: 'etl.itest',
    fields: [
      { name: 'id', type: 'string' },
      { name: 'count', type: 'long' },
    ],
  };
  const { id } = await registry.register(
    { type: SchemaType.AVRO, schema: JSON.stringify(schema) },
    { subject: `${topic}-value` },
  );
  const encoded = await registry.encode(id, { id: 'probe-1', count: 42 });
  t.equal(encoded[0], 0, 'magic byte 0');
  t.equal(encoded.readInt32BE(1), id, 'the schema id follows the magic byte');

  await producer.connect();
  await producer.send({ topic, acks: -1, messages: [{ key: 'probe', value: encoded }] });
  let received: Buffer | undefined;
  await consumer.connect();
  await consumer.subscribe({ topic, fromBeginning: true });
  await consumer.run({ eachMessage: async ({ message }) => void (received = message.value ?? undefined) });
  const value = await eventually('the Avro message', async () => received);
  t.equal(value.readInt32BE(1), id, 'the consumed message names the registered schema');
  t.same(await registry.decode(value), { id: 'probe-1', count: 42 });
});

t.test('S3 put, get and delete on the bucket', async (t) => {
  const s3 = createS3(config.s3);
  t.teardown(() => s3.destroy());
  const key = `itest/${uniqueName('object')}.json`;
  const body = JSON.stringify({ hello: 'world' });
  const put = await s3.send(new PutObjectCommand({ Bucket: config.s3.bucket, Key: key, Body: body }));
  t.ok(put.ETag, 'the server returned an ETag');
  const got = await s3.send(new GetObjectCommand({ Bucket: config.s3.bucket, Key: key }));
  t.equal(await got.Body!.transformToString(), body);
  await s3.send(new DeleteObjectCommand({ Bucket: config.s3.bucket, Key: key }));
  await t.rejects(s3.send(new HeadObjectCommand({ Bucket: config.s3.bucket, Key: key })), { name: 'NotFound' });
});

t.test('migrations go up, down and up again', async (t) => {
  // A scratch database of its own, so the cycle never touches the pipeline's tables.
  const scratch = uniqueName('itest_migrations').replaceAll('-', '_');
  const admin = createPostgres(config.postgres, { applicationName: 'itest-migrations' });
  await admin.db.none('CREATE DATABASE $1:name', [scratch]);
  const postgres = createPostgres({ ...config.postgres, database: scratch }, { applicationName: 'itest-migrations' });
  t.teardown(async () => {
    await postgres.close();
    await admin.db.none('DROP DATABASE IF EXISTS $1:name', [scratch]);
    await admin.close();
  });
  const migrations = readMigrations();
  const all = migrations.map((migration) => migration.version);
  const tableExists = async () =>
    (await postgres.db.one<{ name: string | null }>("SELECT to_regclass('companies')::text AS name")).name !== null;

  t.same(await migrateUp(postgres.db), all, 'all migrations applied in order');
  t.same(await appliedVersions(postgres.db), all);
  t.ok(await tableExists(), 'companies exists');

  // Roll everything back, one migration at a time, newest first.
  for (const version of [...all].reverse()) {
    t.equal(await rollback(postgres.db), version, `rolled back ${version}`);
  }
  t.same(await appliedVersions(postgres.db), []);
  t.notOk(await tableExists(), 'companies is gone');
  t.equal(await rollback(postgres.db), undefined, 'nothing left to roll back');

  t.same(await migrateUp(postgres.db), all, 'applied again from scratch');
  t.same(await migrateUp(postgres.db), [], 'a second run applies nothing');
  t.ok(await tableExists());
});
