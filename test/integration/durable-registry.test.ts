/**
 * The dev profile's registry keeps its schemas (issue 12 §4): Apicurio 3 with PostgreSQL storage,
 * installed and started by the code `make up` runs, here on free ports with a scratch database of
 * the running stack's PostgreSQL. Every event written to a topic before a restart still decodes
 * after it, each subject keeps its compatibility rule, and a schema registered after the restart
 * gets an id no earlier schema had.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import avro from 'avsc';
import t from 'tap';
import { createEventCodec, subjectOf, type EventCodec } from '../../core/event-codec.js';
import { allTopics } from '../../core/pipeline.js';
import { createPostgres } from '../../core/postgres.js';
import { createRegistry } from '../../core/registry.js';
import { findJava, installApicurioSql, type ManagedProcess, registryAnswers, stackPaths, startSqlRegistry, waitFor } from '../../deployments/local/servers.js';
import { schemaOfTopic, type AvroSchema } from '../../schemas/index.js';
import { config, createTestTopic, freePort, registryCall, readTopic, testKafka, uniqueName } from './helpers.js';

const scratch = mkdtempSync(join(tmpdir(), 'etl-durable-registry-'));
// The shared download cache, a data folder (pid file, log) of its own.
const paths = stackPaths('dev', { ...process.env, ETL_STACK_DATA: scratch });
const database = uniqueName('itest_registry').replaceAll('-', '_');
const admin = createPostgres(config.postgres, { applicationName: 'itest-durable-registry' });
const [port, managementPort] = [await freePort(), await freePort()];
const registryUrl = `http://127.0.0.1:${port}/apis/ccompat/v7`;
const java = findJava().java;
let registry: ManagedProcess | undefined;

t.teardown(async () => {
  await registry?.stop();
  await admin.db.none('DROP DATABASE IF EXISTS $1:name WITH (FORCE)', [database]);
  await admin.close();
  rmSync(scratch, { recursive: true, force: true });
});

async function startRegistry(): Promise<void> {
  registry = startSqlRegistry(paths, {
    port,
    managementPort,
    database: { host: config.postgres.host, port: config.postgres.port, name: database, user: config.postgres.user, password: config.postgres.password },
    java,
  });
  try {
    await waitFor(`Apicurio Registry on ${port}`, () => registryAnswers(port), 240_000);
  } catch (error) {
    const log = readFileSync(registry.logFile, 'utf8').split('\n').slice(-30).join('\n');
    throw new Error(`${error instanceof Error ? error.message : String(error)}; its log ends:\n${log}`, { cause: error });
  }
}

/** A codec with nothing cached: every schema it decodes with comes from the registry. */
function freshCodec(): EventCodec {
  return createEventCodec(createRegistry({ url: registryUrl }), registryUrl);
}

/** The registry this test starts, not the stack's. */
function registryOfTest(path: string, method: 'GET' | 'POST' | 'PUT' | 'DELETE' = 'GET', body?: unknown) {
  return registryCall(method, path, body, registryUrl);
}

function probeSchema(name: string): AvroSchema {
  return { type: 'record', name, namespace: 'etl.test', doc: 'A schema of this test only.', fields: [{ name: 'id', type: 'string' }] };
}

t.test('schemas, ids and rules outlive a restart of the dev registry; new ids are never old ones', async (t) => {
  installApicurioSql(paths);
  await admin.db.none('CREATE DATABASE $1:name', [database]);
  await startRegistry();

  const kafka = testKafka();
  const kafkaAdmin = kafka.admin();
  await kafkaAdmin.connect();
  const topic = uniqueName('itest.durable-registry');
  await createTestTopic(kafkaAdmin, topic);
  const producer = kafka.producer();
  t.teardown(async () => {
    await producer.disconnect();
    await kafkaAdmin.deleteTopics({ topics: [topic] });
    await kafkaAdmin.disconnect();
  });

  // Every event schema of the pipeline, under its real subject, through the services' codec.
  const before = freshCodec();
  const ids = new Map<string, number>();
  for (const { name } of allTopics) ids.set(name, await before.register(name, schemaOfTopic(name)));
  t.equal(ids.size, allTopics.length, 'every pipeline topic has a schema id');

  // One event of each, as the services write them (Confluent wire format), into one topic.
  const expected = new Map<string, unknown>();
  const messages: { key: string; value: Buffer }[] = [];
  for (const { name } of allTopics) {
    const type = avro.Type.forSchema(schemaOfTopic(name) as avro.Schema);
    const value = await before.encode(name, type.random());
    t.equal(value.readUInt32BE(1), ids.get(name), `${name}: the event names its schema id`);
    // What the event's bytes hold, read with the schema the test knows.
    expected.set(name, type.fromBuffer(value.subarray(5)));
    messages.push({ key: name, value });
  }
  await producer.connect();
  await producer.send({ topic, messages });
  const idsBefore = [...ids.values()];

  // Each subject's rule as it stands, one of them made stricter than the codec's.
  const [first] = allTopics;
  const firstSubject = encodeURIComponent(subjectOf(first!.name));
  t.equal(
    (await registryOfTest(`/config/${firstSubject}`, 'PUT', { compatibility: 'FULL_TRANSITIVE' })).status,
    200,
    `${first!.name}: held to FULL_TRANSITIVE`,
  );
  const rulesBefore = new Map<string, unknown>();
  for (const { name } of allTopics) rulesBefore.set(name, (await registryOfTest(`/config/${encodeURIComponent(subjectOf(name))}`)).json?.compatibilityLevel);

  // The newest id before the restart belongs to a subject deleted for good: a registry that
  // counted from the ids it still holds would hand it out again.
  const dropped = uniqueName('durable-dropped');
  const droppedId = await before.register(dropped, probeSchema('DurableDropped'));
  const droppedSubject = encodeURIComponent(subjectOf(dropped));
  // The Confluent API deletes permanently only what is soft-deleted first.
  t.equal((await registryOfTest(`/subjects/${droppedSubject}`, 'DELETE')).status, 200, 'a subject soft-deleted');
  t.equal((await registryOfTest(`/subjects/${droppedSubject}?permanent=true`, 'DELETE')).status, 200, 'and deleted for good');
  const maxIdBefore = Math.max(...idsBefore, droppedId);
  t.equal(maxIdBefore, droppedId, `the deleted subject's schema had the newest id (${droppedId})`);

  await registry!.stop();
  t.equal(await registryAnswers(port).catch(() => false), false, 'the registry is down');
  await startRegistry();

  const after = freshCodec();
  const stored = await readTopic(topic);
  t.equal(stored.length, allTopics.length, 'every event is still in the topic');
  for (const message of stored) {
    const name = message.key!;
    t.same(await after.decode(message.value!), expected.get(name), `${name}: decodes after the restart`);
  }
  for (const id of new Set(idsBefore)) {
    const { status, json } = await registryOfTest(`/schemas/ids/${id}`);
    t.equal(status, 200, `schema ${id} is served by id`);
    t.ok(typeof json?.schema === 'string' && json.schema.length > 0, `schema ${id} has its text`);
  }
  const subjects = (await registryOfTest('/subjects')).json as string[];
  t.same([...subjects].sort(), allTopics.map(({ name }) => subjectOf(name)).sort(), 'every subject is listed, the deleted one not');
  for (const { name } of allTopics) {
    const rule = (await registryOfTest(`/config/${encodeURIComponent(subjectOf(name))}`)).json?.compatibilityLevel;
    t.equal(rule, rulesBefore.get(name), `${name}: still held to ${String(rulesBefore.get(name))}`);
    t.equal(await after.register(name, schemaOfTopic(name)), ids.get(name), `${name}: registering again gives the same id`);
  }
  const schema = schemaOfTopic(first!.name);
  const retyped: AvroSchema = {
    ...schema,
    fields: (schema.fields as { name: string; type: unknown }[]).map((field) => (field.type === 'string' ? { ...field, type: 'long' } : field)),
  };
  const refused = await registryOfTest(`/subjects/${firstSubject}/versions`, 'POST', { schemaType: 'AVRO', schema: JSON.stringify(retyped) });
  t.equal(refused.status, 409, `${first!.name}: an incompatible version is still refused after the restart`);

  // A next version of a subject and a subject of its own: new ids, above every earlier one.
  const next: AvroSchema = {
    ...schema,
    fields: [...schema.fields, { name: 'durable_probe', type: ['null', 'string'], default: null, doc: 'A field of a next version.' }],
  };
  const nextId = await after.register(first!.name, next);
  const probeTopic = uniqueName('durable-probe');
  const probeId = await after.register(probeTopic, probeSchema('DurableProbe'));
  t.ok(nextId > maxIdBefore, `a next version after the restart gets id ${nextId}, above every earlier id (${maxIdBefore})`);
  t.ok(probeId > maxIdBefore && probeId !== nextId, `a new subject after the restart gets id ${probeId}, a new one too`);
  t.same(await after.decode(await after.encode(probeTopic, { id: 'after' })), { id: 'after' }, 'and its events round-trip');
});
