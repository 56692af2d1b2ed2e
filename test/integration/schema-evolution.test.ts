/**
 * Schema evolution of FileExtractSuccess against the real registry and Kafka, on scratch
 * subjects and topics (never the pipeline's own, which other tests use): a next version with a
 * new optional field is registered; events of either version travel through Kafka and are read
 * by a reader that knows only the other schema (Avro schema resolution, the writer schema
 * fetched by the id in the event). An incompatible next version is refused, and the start-up
 * registration — in-process and in a real ingress process — stops with a non-retriable error
 * naming the subject and the rule.
 */
import { spawn } from 'node:child_process';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import avro from 'avsc';
import t, { type Test } from 'tap';
import { request } from 'undici';
import { compatibilityRule, createEventCodec, IncompatibleSchemaError, subjectOf, type EventCodec } from '../../core/event-codec.js';
import { topics } from '../../core/pipeline.js';
import { createRegistry } from '../../core/registry.js';
import { schemaOfTopic, type AvroSchema, type FileExtractSuccess } from '../../schemas/index.js';
import { config, createTestTopic, registryCall, registryContentType, produceWithKcat, readTopic, testKafka, uniqueName } from './helpers.js';

const registryUrl = config.registry.url.replace(/\/+$/, '');
const contentType = registryContentType;
const call = registryCall;

const subjectPath = (subject: string) => encodeURIComponent(subject);

/** Soft delete first: the Confluent API deletes permanently only what is soft-deleted. */
function deleteSubjectsAtEnd(t: Test, ...subjects: string[]): void {
  t.teardown(async () => {
    for (const subject of subjects) {
      await call('DELETE', `/subjects/${subjectPath(subject)}`);
      await call('DELETE', `/subjects/${subjectPath(subject)}?permanent=true`);
    }
  });
}

async function versionsOf(subject: string): Promise<number[]> {
  const { status, json } = await call('GET', `/subjects/${subjectPath(subject)}/versions`);
  if (status !== 200) throw new Error(`listing the versions of ${subject}: ${status} ${JSON.stringify(json)}`);
  return json as number[];
}

/** A codec of its own registry client: a service built with one schema, its cache shared with no other. */
function serviceCodec(): EventCodec {
  return createEventCodec(createRegistry(config.registry), config.registry.url);
}

type Field = { name: string; type: unknown; default?: unknown; doc?: string };

const current = schemaOfTopic(topics.fileExtractSuccess.name);
const currentFields = current.fields as Field[];

/** The next version: one new optional field with a default, as schemas/README.md prescribes. */
const next: AvroSchema = {
  ...current,
  fields: [
    ...currentFields,
    { name: 'uploader', type: ['null', 'string'], default: null, doc: 'Who uploaded the file, if known (a field of the next version).' },
  ],
};

/** `etag` has no default: a reader of the current schema cannot do without it. */
const etagRemoved: AvroSchema = { ...current, fields: currentFields.filter((field) => field.name !== 'etag') };

/** A string read as a long: no Avro promotion allows it, in either direction. */
const formatRetyped: AvroSchema = { ...current, fields: currentFields.map((field) => (field.name === 'format' ? { ...field, type: 'long' } : field)) };

const event: FileExtractSuccess = {
  request_id: '0193a5f0-0000-7000-8000-000000000001',
  tenant: 'acme',
  bucket: 'etl-raw',
  key: 'acme/files/2026/12/02/0193a5f0-0000-7000-8000-000000000001.json',
  etag: '"9b2cf535f27731c974343645a3985328"',
  size: 1234,
  sha256: 'a'.repeat(64),
  record_count: 3,
  format: 'ndjson',
  content_type: 'application/x-ndjson',
  original_filename: 'companies.ndjson',
  received_at: Date.parse('2026-12-02T10:00:00Z'),
  accepted_at: Date.parse('2026-12-02T10:00:01Z'),
  pieces: [{ byte_start: 0, byte_end: 1234, record_start: 0, record_count: 3 }],
};

/** A value as a writer of `schema` writes it: every field it leaves out takes the schema's default. */
function asWritten(schema: AvroSchema, value: object): Record<string, unknown> {
  const written: Record<string, unknown> = { ...value };
  for (const field of schema.fields as Field[]) if (!(field.name in written) && 'default' in field) written[field.name] = field.default;
  return written;
}

/** Reads Confluent-framed bytes as `reader` sees them: the writer schema is the registry's, by the id in the frame. */
async function readAs(reader: AvroSchema, bytes: Buffer): Promise<Record<string, unknown>> {
  if (bytes[0] !== 0) throw new Error(`not the Confluent wire format: magic byte ${bytes[0]}`);
  const id = bytes.readUInt32BE(1);
  const { status, json } = await call('GET', `/schemas/ids/${id}`);
  if (status !== 200) throw new Error(`schema ${id}: ${status} ${JSON.stringify(json)}`);
  const writerType = avro.Type.forSchema(JSON.parse(json.schema as string));
  const readerType = avro.Type.forSchema(reader as never);
  return { ...(readerType.fromBuffer(bytes.subarray(5), readerType.createResolver(writerType)) as Record<string, unknown>) };
}

t.test('FileExtractSuccess: a next version with an optional field; old readers read new events and new readers old ones', async (t) => {
  const admin = testKafka().admin();
  await admin.connect();
  const topic = uniqueName('itest.evolution');
  const subject = subjectOf(topic);
  await createTestTopic(admin, topic);
  t.teardown(async () => {
    await admin.deleteTopics({ topics: [topic] });
    await admin.disconnect();
  });
  deleteSubjectsAtEnd(t, subject);

  const oldService = serviceCodec();
  const oldId = await oldService.register(topic, current);
  t.equal((await call('GET', `/config/${subjectPath(subject)}`)).json?.compatibilityLevel, compatibilityRule, `the subject is held to ${compatibilityRule}`);
  const oldBytes = await oldService.encode(topic, event);

  const newService = serviceCodec();
  const newId = await newService.register(topic, next);
  t.not(newId, oldId, 'the next version is a schema of its own');
  t.same(await versionsOf(subject), [1, 2], 'registered as version 2');
  t.equal(await oldService.register(topic, current), oldId, 'a service still built with version 1 registers it again, idempotently');
  const newBytes = await newService.encode(topic, { ...event, request_id: '0193a5f0-0000-7000-8000-000000000002', uploader: 'alice' });

  // Through Kafka, as services exchange them.
  produceWithKcat(topic, [oldBytes, newBytes], { codec: 'lz4', key: 'acme/evolution' });
  const read = (await readTopic(topic)).map((message) => message.value!);
  t.equal(read.length, 2, 'both events are on the topic');
  const [fromOld, fromNew] = read as [Buffer, Buffer];
  t.equal(fromOld.readUInt32BE(1), oldId, 'the old event names version 1');
  t.equal(fromNew.readUInt32BE(1), newId, 'the new event names version 2');

  const newReadByOld = await readAs(current, fromNew);
  t.same(
    newReadByOld,
    asWritten(current, { ...event, request_id: '0193a5f0-0000-7000-8000-000000000002' }),
    'a reader of version 1 reads a version 2 event: every field it knows',
  );
  t.notOk('uploader' in newReadByOld, 'and not the field it does not know');
  t.same(await readAs(next, fromOld), asWritten(next, event), 'a reader of version 2 reads a version 1 event: the new field takes its default');
  t.equal((await readAs(next, fromOld)).uploader, null, 'null, the default');

  // What services do: decode with the writer schema, then use the fields they know.
  t.same(
    await oldService.decode(fromNew),
    asWritten(next, { ...event, request_id: '0193a5f0-0000-7000-8000-000000000002', uploader: 'alice' }),
    'the codec of a service built with version 1 decodes a version 2 event, the new field included',
  );
  t.same(await newService.decode(fromOld), asWritten(current, event), 'the codec decodes a version 1 event as version 1 wrote it');
});

const formatIndex = currentFields.findIndex((field) => field.name === 'format');

for (const [change, incompatible, named] of [
  ['a removed field without a default (etag)', etagRemoved, 'etag'],
  // Apicurio names a retyped field by its path.
  ['a changed type (format: string to long)', formatRetyped, `/fields/${formatIndex}/type`],
] as const) {
  t.test(`FileExtractSuccess: ${change} is refused, and the start-up registration stops, not to be retried`, async (t) => {
    const topic = uniqueName('itest.evolution');
    const subject = subjectOf(topic);
    deleteSubjectsAtEnd(t, subject);
    await serviceCodec().register(topic, current);

    // The same call every service makes at start-up for each topic it writes (ingress/server.ts, topology/processor.ts, monitoring/server.ts).
    const error = await serviceCodec()
      .register(topic, incompatible)
      .then(
        () => undefined,
        (error: unknown) => error,
      );
    t.ok(error instanceof IncompatibleSchemaError, 'an IncompatibleSchemaError');
    t.match(error, { code: 'ERR_SCHEMA_INCOMPATIBLE', retriable: false, subject, compatibility: compatibilityRule, latestVersion: 1 });
    t.match(
      (error as Error).message,
      `schema for subject ${subject} is incompatible with version 1 under ${compatibilityRule}: `,
      'naming the subject, the version and the rule',
    );
    t.ok((error as IncompatibleSchemaError).reason.includes(named), `with the registry's reason, which names ${named}`);
    t.same(await versionsOf(subject), [1], 'nothing was stored');
  });
}

/**
 * A registry in front of the real one that puts `prefix-` before every subject: a real service
 * process registers its schemas under scratch subjects instead of the pipeline's.
 */
async function prefixingRegistry(t: Test, prefix: string): Promise<{ url: string; calls: string[] }> {
  const calls: string[] = [];
  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      const path = (req.url ?? '/').replace(
        /^\/(subjects|config|compatibility\/subjects)\/([^/?]+)/,
        (_, kind: string, subject: string) => `/${kind}/${encodeURIComponent(`${prefix}-${decodeURIComponent(subject)}`)}`,
      );
      calls.push(`${req.method} ${path}`);
      const body = Buffer.concat(chunks);
      request(`${registryUrl}${path}`, {
        method: req.method as 'GET',
        headers: { accept: req.headers.accept ?? contentType, 'content-type': req.headers['content-type'] ?? contentType },
        body: body.length === 0 ? undefined : body,
      }).then(
        async (response) => {
          const text = await response.body.text();
          res.writeHead(response.statusCode, { 'content-type': String(response.headers['content-type'] ?? contentType) });
          res.end(text);
        },
        (error: unknown) => {
          res.writeHead(502);
          res.end(String(error));
        },
      );
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.teardown(() => new Promise<void>((resolve) => server.close(() => resolve())));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, calls };
}

t.test('the ingress, built with a schema the subject refuses, exits 1 at start-up naming the subject and the rule read back', async (t) => {
  const prefix = uniqueName('itest.evolution');
  const successSubject = subjectOf(topics.fileExtractSuccess.name);
  const scratchSubject = `${prefix}-${successSubject}`;
  deleteSubjectsAtEnd(t, scratchSubject, `${prefix}-${subjectOf(topics.fileExtractError.name)}`);
  // The subject's history: a version with a field the ingress's schema does not have and that
  // has no default (a newer build's, say), held to FULL_TRANSITIVE, stricter than the rule.
  const newer: AvroSchema = { ...current, fields: [...currentFields, { name: 'region', type: 'string', doc: 'Where the file was received.' }] };
  t.equal(
    (await call('POST', `/subjects/${subjectPath(scratchSubject)}/versions`, { schemaType: 'AVRO', schema: JSON.stringify(newer) })).status,
    200,
    'the newer version registered',
  );
  t.equal(
    (await call('PUT', `/config/${subjectPath(scratchSubject)}`, { compatibility: 'FULL_TRANSITIVE' })).status,
    200,
    'the subject held to FULL_TRANSITIVE',
  );
  const registry = await prefixingRegistry(t, prefix);

  const child = spawn(process.execPath, ['--import', 'tsx', 'ingress/main.ts'], {
    env: { ...process.env, SCHEMA_REGISTRY_URL: registry.url, INGRESS_PORT: '0', INGRESS_HOST: '127.0.0.1', LOG_LEVEL: 'info' },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  t.teardown(() => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  });
  let stdout = '';
  child.stdout.on('data', (chunk: Buffer) => {
    stdout += chunk.toString();
    // Had it started, it would wait for a signal: stop it, and the assertions below fail.
    if (stdout.includes('"ingress listening"')) child.kill('SIGTERM');
  });
  const code = await new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));

  t.equal(code, 1, 'exits 1');
  const fatal = stdout
    .split('\n')
    .filter((line) => line.startsWith('{'))
    .map((line) => JSON.parse(line) as { level: string; msg: string; err?: { code?: string; retriable?: boolean; message?: string } })
    .find((line) => line.level === 'fatal');
  t.match(fatal, { msg: 'ingress failed to start', err: { code: 'ERR_SCHEMA_INCOMPATIBLE', retriable: false } }, 'its fatal log line');
  t.match(
    fatal?.err?.message,
    `schema for subject ${successSubject} is incompatible with versions up to 1 under FULL_TRANSITIVE: `,
    'names the subject and the level the subject has (not lowered to the rule)',
  );
  t.match(fatal?.err?.message, /region/, "with the registry's reason, which names the field");
  t.equal(
    registry.calls.filter((line) => line === `POST /subjects/${encodeURIComponent(scratchSubject)}/versions`).length,
    1,
    'the registration was tried once',
  );
  t.notOk(
    registry.calls.some((line) => line.startsWith('PUT')),
    'and the stricter level left alone',
  );
  t.same(await versionsOf(scratchSubject), [1], 'nothing was stored');
});
