/**
 * Retries across ingress replicas and restarts, against the real stack (Kafka, the registry,
 * MinIO): a request id is claimed durably in S3 (ingress/import-claims.ts), so the first
 * answer holds whichever ingress a retry reaches.
 */
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { Readable } from 'node:stream';
import { HeadObjectCommand, ListObjectsV2Command } from '@aws-sdk/client-s3';
import t, { type Test } from 'tap';
import { request } from 'undici';
import { createLogger } from '../../core/logger.js';
import { topics } from '../../core/pipeline.js';
import { createRegistry } from '../../core/registry.js';
import { createS3 } from '../../core/s3.js';
import { claimKey } from '../../ingress/import-claims.js';
import { loadIngressConfig, startIngress, type Ingress } from '../../ingress/index.js';
import type { FileExtractSuccess } from '../../schemas/index.js';
import { collectEvents, eventually, freePort, uniqueName } from './helpers.js';

const baseConfig = loadIngressConfig();
const registry = createRegistry(baseConfig.registry);
const decode = <T>(buffer: Buffer) => registry.decode(buffer) as Promise<T>;
const s3 = createS3(baseConfig.s3);
const bucket = baseConfig.s3.bucket;
t.teardown(() => s3.destroy());

const sampleObject = readFileSync(new URL('../../examples/data/json/c.json', import.meta.url));

async function startReplica(t: Test): Promise<{ ingress: Ingress; url: string }> {
  const config = loadIngressConfig({ ...process.env, INGRESS_PORT: '0', INGRESS_HOST: '127.0.0.1', LOG_LEVEL: process.env.ITEST_LOG_LEVEL ?? 'warn' });
  const ingress = await startIngress(config, createLogger(config.log, 'ingress-replicas-itest'));
  t.teardown(() => ingress.close());
  return { ingress, url: `http://127.0.0.1:${ingress.port}` };
}

async function post(url: string, body: string | Buffer, headers: Record<string, string> = {}) {
  const response = await request(url, { method: 'POST', body, headers: { 'content-type': 'application/json', ...headers } });
  const text = await response.body.text();
  return { status: response.statusCode, json: text === '' ? undefined : JSON.parse(text) };
}

async function filesOf(tenant: string): Promise<string[]> {
  const listed = await s3.send(new ListObjectsV2Command({ Bucket: bucket, Prefix: `${tenant}/` }));
  return (listed.Contents ?? []).map((object) => object.Key!);
}

const eventsOf = (tenant: string, count: number) =>
  collectEvents<FileExtractSuccess>(topics.fileExtractSuccess.name, (value) => value.tenant === tenant, { count, decode });

const newRequestId = () => uniqueName('req').replaceAll('.', '-');

t.test('a retry sent to another ingress, and one sent after a restart, get the first answer; one import', async (t) => {
  const a = await startReplica(t);
  const b = await startReplica(t);
  const tenant = uniqueName('replicas');
  const requestId = newRequestId();
  const first = await post(`${a.url}/import/${tenant}`, sampleObject, { 'x-request-id': requestId });
  t.equal(first.status, 202);
  t.notOk(first.json.duplicate, 'the first attempt imports');

  const onOther = await post(`${b.url}/import/${tenant}`, sampleObject, { 'x-request-id': requestId });
  t.equal(onOther.status, 202, 'the other replica answers 202');
  t.equal(onOther.json.duplicate, true, 'with the first result');
  t.same({ ...onOther.json, duplicate: undefined }, { ...first.json, duplicate: undefined });

  await a.ingress.close();
  await b.ingress.close();
  const restarted = await startReplica(t);
  const afterRestart = await post(`${restarted.url}/import/${tenant}`, sampleObject, { 'x-request-id': requestId });
  t.equal(afterRestart.status, 202);
  t.equal(afterRestart.json.duplicate, true, 'a restarted ingress remembers it too');
  t.equal(afterRestart.json.key, first.json.key);

  const events = await eventsOf(tenant, 1);
  t.equal(events.length, 1, 'one FileExtractSuccess for three attempts');
  t.same(await filesOf(tenant), [first.json.key], 'one stored file');
});

t.test('the same request id on two ingresses at once: one import', async (t) => {
  const a = await startReplica(t);
  const b = await startReplica(t);
  const tenant = uniqueName('race');
  const requestId = newRequestId();
  const answers = await Promise.all([a, b].map((replica) => post(`${replica.url}/import/${tenant}`, sampleObject, { 'x-request-id': requestId })));
  const imported = answers.filter((answer) => answer.status === 202 && answer.json.duplicate !== true);
  t.equal(imported.length, 1, `exactly one attempt imports (answers ${answers.map((answer) => answer.status).join(', ')})`);
  for (const answer of answers.filter((candidate) => candidate !== imported[0])) {
    t.ok(
      answer.status === 409 ? answer.json.error.code === 'IMPORT_IN_PROGRESS' : answer.status === 202 && answer.json.duplicate === true,
      'the other is told it is in progress, or gets the first result',
    );
  }
  const events = await eventsOf(tenant, 1);
  t.equal(events.length, 1);
  t.equal((await filesOf(tenant)).length, 1);
});

t.test('an import that failed releases its id: the retry on another ingress imports', async (t) => {
  const a = await startReplica(t);
  const b = await startReplica(t);
  const tenant = uniqueName('released');
  const requestId = newRequestId();
  const broken = await post(`${a.url}/import/${tenant}`, '{"name": "cut off', { 'x-request-id': requestId });
  t.equal(broken.status, 400);
  // The release is written in the background after the 400; the retry waits for it, not a clock.
  const retry = await eventually('the id to be released', async () => {
    const answer = await post(`${b.url}/import/${tenant}`, sampleObject, { 'x-request-id': requestId });
    return answer.status === 409 ? undefined : answer;
  });
  t.equal(retry.status, 202);
  t.notOk(retry.json.duplicate, 'a new import, not a replay of the failure');
  t.equal((await eventsOf(tenant, 1)).length, 1);
});

t.test('a claim left by an ingress killed mid-upload blocks the retry only until its lease ends', async (t) => {
  const port = await freePort();
  const leaseMs = 2000;
  const child = spawn(process.execPath, ['--import', 'tsx', 'ingress/main.ts'], {
    env: {
      ...process.env,
      INGRESS_PORT: String(port),
      INGRESS_HOST: '127.0.0.1',
      INGRESS_CLAIM_LEASE_MS: String(leaseMs),
      INGRESS_BODY_MIN_BYTES_PER_SECOND: '0',
      LOG_LEVEL: process.env.ITEST_LOG_LEVEL ?? 'warn',
    },
    stdio: ['ignore', 'inherit', 'inherit'],
  });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  t.teardown(() => {
    child.kill('SIGKILL');
  });
  const dying = `http://127.0.0.1:${port}`;
  await eventually('the ingress process to listen', async () => ((await request(`${dying}/liveness`)).statusCode === 200 ? true : undefined), 60_000);
  const tenant = uniqueName('killed');
  const requestId = newRequestId();
  // A body that stops after its first line: the upload is in flight when the process dies.
  let stop: () => void = () => undefined;
  const stopped = new Promise<void>((resolve) => (stop = resolve));
  const upload = request(`${dying}/import/${tenant}`, {
    method: 'POST',
    headers: { 'content-type': 'application/x-ndjson', 'x-request-id': requestId },
    body: Readable.from(
      (async function* () {
        yield Buffer.from('{"name":"first","permalink":"first"}\n');
        await stopped;
      })(),
    ),
  }).catch((error: unknown) => error);
  await eventually('the request id to be claimed', () =>
    s3.send(new HeadObjectCommand({ Bucket: bucket, Key: claimKey(tenant, requestId) })).then(
      () => true,
      () => undefined,
    ),
  );
  child.kill('SIGKILL');
  await exited;
  stop();
  await upload;

  const survivor = await startReplica(t);
  const retry = await eventually(
    "the dead ingress's claim to run out",
    async () => {
      const answer = await post(`${survivor.url}/import/${tenant}`, sampleObject, { 'x-request-id': requestId });
      if (answer.status === 409) {
        t.equal(answer.json.error.code, 'IMPORT_IN_PROGRESS');
        return undefined;
      }
      return answer;
    },
    60_000,
  );
  t.equal(retry.status, 202, 'the retry imports once the lease is over');
  t.notOk(retry.json.duplicate);
  t.equal((await eventsOf(tenant, 1)).length, 1, 'one FileExtractSuccess');
  t.same(await filesOf(tenant), [retry.json.key], "only the retry's file is stored");
});
