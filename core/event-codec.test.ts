/**
 * How a failed schema registration is classified, and what the codec asks the registry, against
 * a fake Confluent-compatible API: the real registry's verdicts are proven in
 * test/integration/schema-evolution.test.ts.
 */
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { SchemaRegistry } from '@kafkajs/confluent-schema-registry';
import t, { type Test } from 'tap';
import type { AvroSchema } from '../schemas/index.js';
import { PipelineError } from './errors.js';
import { classifyRegistrationFailure, compatibilityRule, createEventCodec, IncompatibleSchemaError, registryReason } from './event-codec.js';

/** The shape of the registry client's ResponseError: the HTTP status and `<client id> - <registry message>`. */
function responseError(status: number, message: string): Error {
  return Object.assign(new Error(`Confluent_Schema_Registry - ${message}`), { name: 'ResponseError', status });
}

const apicurioRefusal =
  'io.apicurio.registry.rules.RuleViolationException: Incompatible artifact: Orders-value [AVRO], num of incompatible diffs: {1}, list of diff types: [c at /fields/1] Causes: c at /fields/1';

t.test('a 409 is an incompatible schema, with the registry reason without client prefix or Java class', async (t) => {
  t.same(classifyRegistrationFailure(responseError(409, apicurioRefusal)), {
    kind: 'incompatible',
    reason: 'Incompatible artifact: Orders-value [AVRO], num of incompatible diffs: {1}, list of diff types: [c at /fields/1] Causes: c at /fields/1',
  });
  t.equal(
    classifyRegistrationFailure({ error_code: 409, message: 'Schema being registered is incompatible' }).kind,
    'incompatible',
    'error_code 409 in a kept body',
  );
  t.equal(classifyRegistrationFailure({ body: { error_code: 409 } }).kind, 'incompatible');
});

t.test('other 4xx are refusals that a retry would repeat; 408 and 429 are not', async (t) => {
  t.same(classifyRegistrationFailure(responseError(422, 'Invalid schema')), { kind: 'refused', status: 422, reason: 'Invalid schema' });
  t.equal(classifyRegistrationFailure(responseError(401, 'Unauthorized')).kind, 'refused');
  t.equal(classifyRegistrationFailure(responseError(408, 'Request Timeout')).kind, 'unavailable');
  t.equal(classifyRegistrationFailure(responseError(429, 'Too Many Requests')).kind, 'unavailable');
});

t.test('5xx, transport errors and anything without a status are unavailable (retriable)', async (t) => {
  t.equal(classifyRegistrationFailure(responseError(503, 'Service Unavailable')).kind, 'unavailable');
  t.equal(classifyRegistrationFailure(Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:8081'), { code: 'ECONNREFUSED' })).kind, 'unavailable');
  t.equal(classifyRegistrationFailure('socket hang up').kind, 'unavailable');
  t.equal(registryReason(new Error('Headers Timeout Error')), 'Headers Timeout Error');
});

t.test('IncompatibleSchemaError names the subject, the version and the rule; it is not retriable', async (t) => {
  const error = new IncompatibleSchemaError({ subject: 'Orders-value', compatibility: 'FULL', latestVersion: 3, reason: 'c at /fields/1' });
  t.ok(error instanceof PipelineError);
  t.match(error, { code: 'ERR_SCHEMA_INCOMPATIBLE', retriable: false, subject: 'Orders-value', compatibility: 'FULL', latestVersion: 3 });
  t.equal(error.message, 'schema for subject Orders-value is incompatible with version 3 under FULL: c at /fields/1 (see schemas/README.md)');
  const transitive = new IncompatibleSchemaError({ subject: 'Orders-value', compatibility: 'FULL_TRANSITIVE', latestVersion: 3, reason: 'r' });
  t.match(transitive.message, /incompatible with versions up to 3 under FULL_TRANSITIVE: r/);
  t.match(
    new IncompatibleSchemaError({ subject: 's', compatibility: 'FULL', latestVersion: undefined, reason: 'r' }).message,
    /incompatible with its registered versions under FULL/,
  );
});

interface FakeRegistry {
  url: string;
  /** The compatibility level per subject, as PUT /config set it. */
  levels: Map<string, string>;
  /** What POST /subjects/<subject>/versions answers. */
  answer: { status: number; body: unknown };
  /** Requests received, as `METHOD path`. */
  calls: string[];
}

async function fakeRegistry(t: Test): Promise<FakeRegistry> {
  const fake: FakeRegistry = { url: '', levels: new Map(), answer: { status: 200, body: { id: 7 } }, calls: [] };
  const reply = (res: ServerResponse, status: number, body: unknown) => {
    res.writeHead(status, { 'content-type': 'application/vnd.schemaregistry.v1+json' });
    res.end(JSON.stringify(body));
  };
  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    let text = '';
    req.on('data', (chunk: Buffer) => (text += chunk.toString()));
    req.on('end', () => {
      const path = req.url ?? '';
      fake.calls.push(`${req.method} ${path}`);
      const config = /^\/config\/([^/?]+)$/.exec(path);
      if (config !== null) {
        const subject = decodeURIComponent(config[1]!);
        if (req.method === 'PUT') {
          const { compatibility } = JSON.parse(text) as { compatibility: string };
          fake.levels.set(subject, compatibility);
          return reply(res, 200, { compatibility });
        }
        const level = fake.levels.get(subject);
        return level === undefined ? reply(res, 404, { error_code: 40401, message: 'not found' }) : reply(res, 200, { compatibilityLevel: level });
      }
      if (req.method === 'POST' && /^\/subjects\/[^/]+\/versions$/.test(path)) return reply(res, fake.answer.status, fake.answer.body);
      if (req.method === 'GET' && /^\/subjects\/[^/]+\/versions\/latest$/.test(path)) return reply(res, 200, { version: 4, id: 3 });
      reply(res, 404, { error_code: 404, message: 'no such route' });
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.teardown(() => new Promise<void>((resolve) => server.close(() => resolve())));
  fake.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return fake;
}

const schema: AvroSchema = { type: 'record', name: 'Order', namespace: 'etl.test', doc: 'An order.', fields: [{ name: 'id', type: 'string' }] };

function codecFor(fake: FakeRegistry) {
  return createEventCodec(new SchemaRegistry({ host: fake.url, retry: { retries: 0 } }), fake.url);
}

t.test(`a new subject, or one held to a weaker level, is held to ${compatibilityRule}; a stricter one keeps its level`, async (t) => {
  const fake = await fakeRegistry(t);
  const codec = codecFor(fake);
  t.equal(await codec.register('Fresh', schema), 7);
  t.equal(fake.levels.get('Fresh-value'), 'FULL', 'a subject without a level');
  fake.levels.set('Weak-value', 'BACKWARD');
  await codec.register('Weak', schema);
  t.equal(fake.levels.get('Weak-value'), 'FULL', 'BACKWARD alone lets a required field go');
  fake.levels.set('Strict-value', 'FULL_TRANSITIVE');
  fake.calls.length = 0;
  await codec.register('Strict', schema);
  t.equal(fake.levels.get('Strict-value'), 'FULL_TRANSITIVE');
  t.notOk(
    fake.calls.some((call) => call.startsWith('PUT')),
    'not written',
  );
});

t.test('a 409 from the registry becomes an IncompatibleSchemaError naming the level read back and the latest version', async (t) => {
  const fake = await fakeRegistry(t);
  fake.levels.set('Orders-value', 'FULL_TRANSITIVE');
  fake.answer = { status: 409, body: { error_code: 409, message: apicurioRefusal } };
  const error = await codecFor(fake)
    .register('Orders', schema)
    .catch((error: unknown) => error);
  t.ok(error instanceof IncompatibleSchemaError);
  t.match(error, { code: 'ERR_SCHEMA_INCOMPATIBLE', retriable: false, subject: 'Orders-value', compatibility: 'FULL_TRANSITIVE', latestVersion: 4 });
  t.match(
    (error as Error).message,
    /^schema for subject Orders-value is incompatible with versions up to 4 under FULL_TRANSITIVE: Incompatible artifact: Orders-value/,
  );
  t.equal(fake.calls.filter((call) => call.startsWith('POST')).length, 1, 'asked once, not retried');
});

t.test('a 5xx stays a retriable ERR_REGISTRY_REGISTER; a 422 is not retriable', async (t) => {
  const fake = await fakeRegistry(t);
  fake.answer = { status: 503, body: { error_code: 50301, message: 'down' } };
  await t.rejects(codecFor(fake).register('Orders', schema), { code: 'ERR_REGISTRY_REGISTER', retriable: true });
  fake.answer = { status: 422, body: { error_code: 42201, message: 'Invalid schema' } };
  await t.rejects(codecFor(fake).register('Orders', schema), { code: 'ERR_REGISTRY_REGISTER', retriable: false });
});

t.test('an unreachable registry is a retriable ERR_REGISTRY_REGISTER', async (t) => {
  // A port that was just free and is closed again: nothing listens on it.
  const closed = createServer();
  await new Promise<void>((resolve) => closed.listen(0, '127.0.0.1', resolve));
  const deadUrl = `http://127.0.0.1:${(closed.address() as AddressInfo).port}`;
  await new Promise<void>((resolve) => closed.close(() => resolve()));
  const codec = createEventCodec(new SchemaRegistry({ host: deadUrl, retry: { retries: 0 } }), deadUrl);
  await t.rejects(codec.register('Orders', schema), { code: 'ERR_REGISTRY_REGISTER', retriable: true });
});
