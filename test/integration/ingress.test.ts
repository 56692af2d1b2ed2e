/**
 * The ingress against the real stack: Kafka (3 brokers), the Schema Registry, MinIO.
 * Each test uses its own tenant, so what it finds in S3 and Kafka is its own.
 */
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { connect } from 'node:net';
import { Readable } from 'node:stream';
import {
  CreateMultipartUploadCommand,
  GetObjectCommand,
  HeadObjectCommand,
  ListMultipartUploadsCommand,
  ListObjectsV2Command,
  UploadPartCommand,
} from '@aws-sdk/client-s3';
import t, { type Test } from 'tap';
import { request } from 'undici';
import { createLogger } from '../../core/logger.js';
import { createRegistry } from '../../core/registry.js';
import { createS3 } from '../../core/s3.js';
import { topics } from '../../core/pipeline.js';
import { runningProfile, stackPaths, stackPorts, startServer, stopServer } from '../../deployments/local/servers.js';
import { loadIngressConfig, startIngress, type Ingress, type IngressConfig } from '../../ingress/index.js';
import type { FileExtractError, FileExtractSuccess } from '../../schemas/index.js';
import { collectEvents, eventually, freePort, testKafka, uniqueName } from './helpers.js';
import { partitionCountsOf } from '../../core/kafka.js';

const registry = createRegistry(loadIngressConfig().registry);
const decode = <T>(buffer: Buffer) => registry.decode(buffer) as Promise<T>;
const s3 = createS3(loadIngressConfig().s3);
const bucket = loadIngressConfig().s3.bucket;
t.teardown(() => s3.destroy());

const sampleObject = readFileSync(new URL('../../examples/data/json/c.json', import.meta.url));
const sampleNdjson = readFileSync(new URL('../../examples/data/json/companies-sample.ndjson', import.meta.url));

async function withIngress(t: Test, env: Record<string, string> = {}): Promise<{ ingress: Ingress; url: string; config: IngressConfig }> {
  const config = loadIngressConfig({ ...process.env, INGRESS_PORT: '0', INGRESS_HOST: '127.0.0.1', LOG_LEVEL: process.env.ITEST_LOG_LEVEL ?? 'warn', ...env });
  const ingress = await startIngress(config, createLogger(config.log, 'ingress-itest'));
  t.teardown(() => ingress.close());
  return { ingress, url: `http://127.0.0.1:${ingress.port}`, config };
}

async function post(url: string, body: string | Buffer, headers: Record<string, string> = {}) {
  const response = await request(url, { method: 'POST', body, headers });
  const text = await response.body.text();
  return { status: response.statusCode, headers: response.headers, json: text === '' ? undefined : JSON.parse(text) };
}

/** True once nothing listens on the port any more (undefined while something accepts). */
function refusesConnections(port: number): Promise<true | undefined> {
  return new Promise((resolve) => {
    const probe = connect(port, '127.0.0.1', () => {
      probe.destroy();
      resolve(undefined);
    });
    probe.on('error', (error: NodeJS.ErrnoException) => resolve(error.code === 'ECONNREFUSED' ? true : undefined));
  });
}

async function objectsOf(tenant: string): Promise<string[]> {
  const listed = await s3.send(new ListObjectsV2Command({ Bucket: bucket, Prefix: `${tenant}/` }));
  return (listed.Contents ?? []).map((object) => object.Key!);
}

t.test('accepts the three shapes, stores each file and announces it', async (t) => {
  const { url } = await withIngress(t);
  const tenant = uniqueName('shapes');
  const array = Buffer.from(JSON.stringify([{ name: 'A', permalink: 'a' }, { name: 'B', permalink: 'b' }, 3]));
  const cases = [
    { name: 'object', body: sampleObject, contentType: 'application/json', format: 'object', records: 1 },
    { name: 'array', body: array, contentType: undefined, format: 'array', records: 3 },
    { name: 'ndjson', body: sampleNdjson, contentType: 'application/x-ndjson', format: 'ndjson', records: 60 },
  ];
  const accepted: any[] = [];
  for (const testCase of cases) {
    const headers: Record<string, string> = { 'x-filename': `${testCase.name}.json` };
    if (testCase.contentType !== undefined) headers['content-type'] = testCase.contentType;
    const response = await post(`${url}/import/${tenant}`, testCase.body, headers);
    t.equal(response.status, 202, `${testCase.name}: 202`);
    t.equal(response.json.records, testCase.records, `${testCase.name}: records counted`);
    t.equal(response.json.format, testCase.format);
    t.equal(response.json.size, testCase.body.length);
    t.equal(response.headers['x-request-id'], response.json.request_id, 'request id echoed');
    t.match(response.json.key, new RegExp(`^${tenant}/files/\\d{4}/\\d{2}/\\d{2}/${response.json.request_id}\\.json$`));
    t.match(response.json.status_url, new RegExp(`/imports/${response.json.request_id}\\?tenant=${response.json.tenant}$`));
    const head = await s3.send(new HeadObjectCommand({ Bucket: bucket, Key: response.json.key }));
    t.equal(head.ContentLength, testCase.body.length, `${testCase.name}: stored whole`);
    t.equal(head.Metadata?.['record-count'], String(testCase.records));
    t.equal(head.Metadata?.['request-id'], response.json.request_id);
    t.equal(head.Metadata?.tenant, tenant);
    t.equal(head.Metadata?.sha256, response.json.sha256);
    t.equal(head.Metadata?.['original-filename'], `${testCase.name}.json`);
    accepted.push(response.json);
  }

  const events = await collectEvents<FileExtractSuccess>(topics.fileExtractSuccess.name, (value) => value.tenant === tenant, {
    count: 3,
    decode,
  });
  t.equal(events.length, 3, 'one event per file, no duplicates');
  for (const response of accepted) {
    const event = events.find((candidate) => candidate.value.request_id === response.request_id);
    t.ok(event, `event for ${response.format}`);
    t.equal(event!.key, `${tenant}/${response.request_id}`, "keyed by tenant and request id, so a tenant's files spread over the partitions");
    t.same(event!.value.pieces, [], 'a small file is one piece');
    t.ok(Number(event!.value.accepted_at) >= Number(event!.value.received_at), 'accepted after it was received');
    t.same(event!.headers, { request_id: response.request_id, event_type: 'FileExtractSuccess', 'content-type': 'application/vnd.etl.avro' });
    t.match(event!.value, {
      request_id: response.request_id,
      tenant,
      bucket,
      key: response.key,
      etag: response.etag,
      size: response.size,
      sha256: response.sha256,
      record_count: response.records,
      format: response.format,
      original_filename: `${response.format}.json`,
    });
    t.ok(Math.abs(Number(event!.value.received_at) - Date.now()) < 120_000, 'received_at is a recent epoch-millis time');
  }
});

t.test('a file larger than INGRESS_PIECE_BYTES is announced with record-aligned pieces that ranged GETs read on their own', async (t) => {
  const { url } = await withIngress(t, { INGRESS_PIECE_BYTES: '4096' });
  const tenant = uniqueName('pieces');
  const arrayBody = Buffer.from(
    JSON.stringify(
      sampleNdjson
        .toString()
        .trim()
        .split('\n')
        .map((line) => JSON.parse(line) as unknown),
      null,
      1,
    ),
  );
  for (const [format, body] of [
    ['ndjson', sampleNdjson],
    ['array', arrayBody],
  ] as const) {
    const response = await post(`${url}/import/${tenant}`, body, { 'content-type': format === 'ndjson' ? 'application/x-ndjson' : 'application/json' });
    t.equal(response.status, 202);
    const [event] = await collectEvents<FileExtractSuccess>(topics.fileExtractSuccess.name, (value) => value.request_id === response.json.request_id, {
      count: 1,
      decode,
    });
    const pieces = event!.value.pieces ?? [];
    t.ok(pieces.length > 1 && pieces.length <= Math.ceil(body.length / 4096), `${format}: ${pieces.length} pieces of a ${body.length}-byte file`);
    t.ok(
      pieces.slice(0, -1).every((piece) => Number(piece.byte_end) - Number(piece.byte_start) >= 4096),
      'each piece but the last spans at least INGRESS_PIECE_BYTES',
    );
    const records: unknown[] = [];
    for (const piece of pieces) {
      const object = await s3.send(
        new GetObjectCommand({ Bucket: bucket, Key: response.json.key, Range: `bytes=${piece.byte_start}-${Number(piece.byte_end) - 1}` }),
      );
      const text = await object.Body!.transformToString();
      t.equal(Buffer.byteLength(text), Number(piece.byte_end) - Number(piece.byte_start), 'the range is what S3 returns');
      const values =
        format === 'array'
          ? (JSON.parse(`[${text}]`) as unknown[])
          : text
              .split('\n')
              .filter((line) => line.trim() !== '')
              .map((line) => JSON.parse(line) as unknown);
      t.equal(values.length, Number(piece.record_count));
      t.equal(Number(piece.record_start), records.length);
      records.push(...values);
    }
    t.equal(records.length, response.json.records, `${format}: the pieces hold every record once`);
  }
});

t.test('the files of one tenant spread over every FileExtractSuccess partition', async (t) => {
  const { url } = await withIngress(t);
  const admin = testKafka().admin();
  await admin.connect();
  t.teardown(() => admin.disconnect());
  const partitionCount = (await partitionCountsOf(admin, [topics.fileExtractSuccess.name]))(topics.fileExtractSuccess.name);
  // Keys are tenant/request id with random ids: n partitions all get one of 16·n files but with
  // probability about n·e^-16 (1e-7 per partition).
  const files = 16 * partitionCount;
  const tenant = uniqueName('busy-tenant');
  const ids: string[] = [];
  for (let i = 0; i < files; i++) ids.push((await post(`${url}/import/${tenant}`, JSON.stringify([{ permalink: `p${i}` }]))).json.request_id);
  const events = await collectEvents<FileExtractSuccess>(topics.fileExtractSuccess.name, (value) => value.tenant === tenant, { count: files, decode });
  t.same(events.map((event) => event.value.request_id).sort(), [...ids].sort(), 'one event per file');
  const used = new Set(events.map((event) => event.partition));
  t.equal(used.size, partitionCount, `${files} files of one tenant on partitions ${[...used].sort().join(', ')} of ${partitionCount}`);
});

t.test('unparseable files: 400 with code and offset, nothing stored, a FileExtractError', async (t) => {
  const { url } = await withIngress(t, { INGRESS_PART_SIZE_BYTES: String(5 * 1024 * 1024) });
  const tenant = uniqueName('malformed');
  // A broken file bigger than one part: its parts were already uploaded when the error shows.
  const bigBroken = Buffer.concat([Buffer.from(sampleNdjson.toString().repeat(60)), Buffer.from('{"name": oops}\n')]);
  const cases: Array<{ name: string; body: Buffer; contentType?: string; code: string; offset?: number }> = [
    { name: 'empty body', body: Buffer.alloc(0), code: 'EMPTY_BODY', offset: 0 },
    { name: 'truncated', body: Buffer.from('{"name": "acme", "permalink": "ac'), code: 'TRUNCATED', offset: 33 },
    { name: 'invalid JSON', body: Buffer.from('{"name": acme}'), code: 'INVALID_JSON', offset: 9 },
    { name: 'invalid UTF-8', body: Buffer.from([0x7b, 0x22, 0x61, 0x22, 0x3a, 0x22, 0xc3, 0x28, 0x22, 0x7d]), code: 'INVALID_UTF8', offset: 7 },
    { name: 'trailing garbage', body: Buffer.from('{"a":1} xyz'), contentType: 'application/json', code: 'TRAILING_DATA', offset: 8 },
    { name: 'top-level scalar', body: Buffer.from('42'), code: 'TOP_LEVEL_SCALAR', offset: 0 },
    { name: 'large file broken after several parts', body: bigBroken, contentType: 'application/x-ndjson', code: 'INVALID_JSON' },
  ];
  for (const testCase of cases) {
    const headers: Record<string, string> = testCase.contentType === undefined ? {} : { 'content-type': testCase.contentType };
    const response = await post(`${url}/import/${tenant}`, testCase.body, headers);
    t.equal(response.status, 400, `${testCase.name}: 400`);
    t.equal(response.json.error.code, testCase.code, `${testCase.name}: code`);
    t.type(response.json.error.message, 'string');
    t.equal(response.json.error.request_id, response.headers['x-request-id']);
    if (testCase.offset !== undefined) t.equal(response.json.error.offset, testCase.offset, `${testCase.name}: offset`);
    else t.type(response.json.error.offset, 'number');
  }
  t.same(await objectsOf(tenant), [], 'nothing stayed in S3');
  const events = await collectEvents<FileExtractError>(topics.fileExtractError.name, (value) => value.tenant === tenant, {
    count: cases.length,
    decode,
  });
  t.equal(events.length, cases.length, 'one FileExtractError per refused file');
  t.same(events.map((event) => event.value.reason_code).sort(), cases.map((testCase) => testCase.code).sort());
  for (const event of events) t.equal(event.headers.event_type, 'FileExtractError');
});

t.test('refusals before anything is read: bad tenant, media type, size, auth', async (t) => {
  const { url } = await withIngress(t, { INGRESS_MAX_BODY_BYTES: '1000', INGRESS_AUTH_TOKENS: 'acme-auth:tok-123' });
  const big = Buffer.alloc(2000, 0x20);
  // Raw request lines: HTTP clients resolve '..' and '%2e%2e' before a request leaves them.
  const rawPost = (path: string) =>
    new Promise<{ status: number; json: any }>((resolve, reject) => {
      const socket = connect(Number(new URL(url).port), '127.0.0.1', () =>
        socket.write(`POST ${path} HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}`),
      );
      let data = '';
      socket.on('data', (chunk) => (data += chunk.toString()));
      socket.on('error', reject);
      socket.on('close', () => {
        const [head = '', body = ''] = data.split('\r\n\r\n');
        resolve({ status: Number(head.split(' ')[1]), json: JSON.parse(body) });
      });
    });
  for (const tenant of ['..%2fx', '%2e%2e', '..', 'UPPER', 'a..b', 'a%00b']) {
    const response = await rawPost(`/import/${tenant}`);
    t.equal(response.status, 400, `tenant ${tenant}`);
    t.equal(response.json.error.code, 'INVALID_TENANT');
  }
  const nested = await rawPost('/import/a/b');
  t.equal(nested.status, 404, 'a/b is no tenant: no route matches');
  t.equal(nested.json.error.code, 'NOT_FOUND');
  const auth = { authorization: 'Bearer tok-123' };
  const media = await post(`${url}/import/acme-auth`, '{}', { ...auth, 'content-type': 'text/csv' });
  t.equal(media.status, 415);
  t.equal(media.json.error.code, 'UNSUPPORTED_MEDIA_TYPE');
  const tooLarge = await post(`${url}/import/acme-auth`, big, auth);
  t.equal(tooLarge.status, 413);
  t.equal(tooLarge.json.error.code, 'BODY_TOO_LARGE');
  // Without a Content-Length the limit is enforced while streaming.
  const chunked = await request(`${url}/import/acme-auth`, {
    method: 'POST',
    headers: auth,
    body: Readable.from(
      (async function* () {
        for (let i = 0; i < 5; i++) yield Buffer.from(`[${' '.repeat(500)}`);
      })(),
    ),
  });
  t.equal(chunked.statusCode, 413, 'streamed body over the limit');
  await chunked.body.dump();
  const noToken = await post(`${url}/import/acme-auth`, '{}');
  t.equal(noToken.status, 401);
  t.equal(noToken.json.error.code, 'UNAUTHORIZED');
  const wrongToken = await post(`${url}/import/acme-auth`, '{}', { authorization: 'Bearer nope' });
  t.equal(wrongToken.status, 401);
  const ok = await post(`${url}/import/acme-auth`, '{"name":"x","permalink":"x"}', auth);
  t.equal(ok.status, 202, 'the right token is accepted');
  const tenantObjects = await objectsOf('acme-auth');
  t.ok(tenantObjects.includes(ok.json.key), 'the accepted file is stored');
  t.notOk(tenantObjects.some((key) => key !== ok.json.key && key.includes(ok.json.request_id)));
});

t.test('a body that trickles in (slowloris) gets 408 BODY_TOO_SLOW, its connection closed, nothing stored', async (t) => {
  const { url } = await withIngress(t, { INGRESS_BODY_MIN_BYTES_PER_SECOND: '100', INGRESS_BODY_RATE_WINDOW_MS: '1000' });
  const tenant = uniqueName('slow');
  const started = Date.now();
  const answer = await new Promise<{ status: number; json: any; closedAfterMs: number }>((resolve, reject) => {
    const socket = connect(Number(new URL(url).port), '127.0.0.1', () => {
      socket.write(`POST /import/${tenant} HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\nContent-Type: application/json\r\n\r\n[`);
    });
    // One byte every 200 ms: 5 bytes/s, far under the 100 bytes/s minimum.
    const drip = setInterval(() => socket.writable && socket.write(' '), 200);
    let data = '';
    socket.on('data', (chunk) => (data += chunk.toString()));
    socket.on('error', () => undefined);
    socket.on('close', () => {
      clearInterval(drip);
      const [head = '', body = ''] = data.split('\r\n\r\n');
      try {
        resolve({ status: Number(head.split(' ')[1]), json: JSON.parse(body), closedAfterMs: Date.now() - started });
      } catch (error) {
        reject(new Error(`no JSON answer before the close: ${JSON.stringify(data)} (${String(error)})`));
      }
    });
  });
  t.equal(answer.status, 408);
  t.equal(answer.json.error.code, 'BODY_TOO_SLOW');
  t.ok(answer.json.error.bytes_received > 0 && answer.json.error.bytes_received < 1000, 'the answer says how much arrived');
  t.ok(answer.closedAfterMs < 10_000, 'the server closed the connection itself');
  t.same(await objectsOf(tenant), [], 'nothing stored');
  // A body at a normal pace on the same ingress is unaffected.
  const ok = await post(`${url}/import/${tenant}`, '{"name":"x","permalink":"x"}', { 'content-type': 'application/json' });
  t.equal(ok.status, 202);
  // Once the whole body is in, waiting is the ingress's doing (here a 1 s produce linger, as
  // with a slow broker): no 408. Regression: a broker outage turned into BODY_TOO_SLOW answers.
  const slowKafka = await withIngress(t, { INGRESS_BODY_MIN_BYTES_PER_SECOND: '100', INGRESS_BODY_RATE_WINDOW_MS: '200', INGRESS_PRODUCE_LINGER_MS: '1000' });
  const waited = await post(`${slowKafka.url}/import/${tenant}`, '{"name":"y","permalink":"y"}', { 'content-type': 'application/json' });
  t.equal(waited.status, 202, 'a complete body waiting on Kafka is not "too slow"');
});

t.test('multipart uploads left by a killed ingress are aborted when an ingress starts', async (t) => {
  const key = `${uniqueName('stale')}/files/left-behind.json`;
  const created = await s3.send(new CreateMultipartUploadCommand({ Bucket: bucket, Key: key }));
  await s3.send(new UploadPartCommand({ Bucket: bucket, Key: key, UploadId: created.UploadId, PartNumber: 1, Body: Buffer.alloc(5 * 1024 * 1024, 0x20) }));
  const pending = async () => ((await s3.send(new ListMultipartUploadsCommand({ Bucket: bucket, Prefix: key }))).Uploads ?? []).length;
  t.equal(await pending(), 1, 'the leftover is there');
  // Uploads begun less than INGRESS_STALE_UPLOAD_MS ago belong to live replicas: kept.
  await withIngress(t, { INGRESS_STALE_UPLOAD_MS: String(60 * 60 * 1000) });
  await new Promise((resolve) => setTimeout(resolve, 1000));
  t.equal(await pending(), 1, 'a young upload is left alone');
  await new Promise((resolve) => setTimeout(resolve, 1100));
  await withIngress(t, { INGRESS_STALE_UPLOAD_MS: '1000' });
  await eventually('the stale upload to be aborted', async () => ((await pending()) === 0 ? true : undefined), 20_000);
  t.equal(await pending(), 0, 'aborted');
});

t.test('a retry with the same X-Request-Id returns the first result and imports once', async (t) => {
  const { url } = await withIngress(t);
  const tenant = uniqueName('retry');
  const requestId = uniqueName('req').replaceAll('.', '-');
  const first = await post(`${url}/import/${tenant}`, sampleObject, { 'x-request-id': requestId });
  const second = await post(`${url}/import/${tenant}`, sampleObject, { 'x-request-id': requestId });
  t.equal(first.status, 202);
  t.equal(second.status, 202);
  t.equal(second.json.key, first.json.key);
  t.equal(second.json.etag, first.json.etag);
  t.equal(second.json.duplicate, true);
  t.equal(second.headers['x-request-id'], requestId);
  const events = await collectEvents<FileExtractSuccess>(topics.fileExtractSuccess.name, (value) => value.tenant === tenant, {
    count: 1,
    decode,
  });
  t.equal(events.length, 1, 'one event for both attempts');
  t.equal(events[0]!.value.request_id, requestId);
  t.equal((await objectsOf(tenant)).length, 1, 'one object');
  const badId = await post(`${url}/import/${tenant}`, sampleObject, { 'x-request-id': '../../etc/passwd' });
  t.equal(badId.status, 400);
  t.equal(badId.json.error.code, 'INVALID_REQUEST_ID');
});

t.test('a client that goes away after sending the whole body: the import finishes, its retry gets the first result', async (t) => {
  // A 1 s produce linger stands in for a slow broker. Regression: the ingress treated this as
  // an abandoned upload (object deleted, id released) while its event could still be written,
  // so the client's retry announced the file a second time.
  const { url } = await withIngress(t, { INGRESS_PRODUCE_LINGER_MS: '1000' });
  const tenant = uniqueName('gone');
  const requestId = uniqueName('req').replaceAll('.', '-');
  const body = Buffer.from(sampleObject);
  const socket = connect(Number(new URL(url).port), '127.0.0.1');
  const closed = new Promise<void>((resolve, reject) => {
    socket.on('error', reject);
    socket.on('close', () => resolve());
  });
  socket.write(
    `POST /import/${tenant} HTTP/1.1\r\nHost: x\r\nX-Request-Id: ${requestId}\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\n\r\n`,
  );
  socket.write(body);
  // The object is stored only once the whole body is in: only then may the client go away.
  await eventually('the file to be stored', async () => ((await objectsOf(tenant)).length > 0 ? true : undefined));
  socket.destroy();
  await closed;
  const retry = await eventually('the first attempt to finish', async () => {
    const answer = await post(`${url}/import/${tenant}`, sampleObject, { 'x-request-id': requestId, 'content-type': 'application/json' });
    return answer.status === 409 ? undefined : answer;
  });
  t.equal(retry.status, 202);
  t.equal(retry.json.duplicate, true, "the first attempt's result");
  const events = await collectEvents<FileExtractSuccess>(topics.fileExtractSuccess.name, (value) => value.tenant === tenant, { count: 1, decode });
  t.equal(events.length, 1, 'announced once');
  t.same(await objectsOf(tenant), [retry.json.key], 'stored once, where the event says');
});

t.test('liveness, readiness and metrics', async (t) => {
  const { url } = await withIngress(t);
  const live = await request(`${url}/liveness`);
  const liveness = (await live.body.json()) as Record<string, unknown>;
  t.equal(live.statusCode, 200);
  t.match(liveness, { service: 'ingress', version: String, commit: String, branch: String, build_time: String, node_version: process.version, uws: 'native' });
  const ready = await request(`${url}/readiness`);
  t.equal(ready.statusCode, 200);
  t.match(await ready.body.json(), { ready: true, checks: { kafka: { ok: true }, schema_registry: { ok: true }, s3: { ok: true } } });
  await post(`${url}/import/${uniqueName('metrics')}`, sampleObject);
  const metrics = await (await request(`${url}/metrics`)).body.text();
  t.match(metrics, /ingress_http_requests_total\{route="\/import\/:tenant",status="202",service="ingress"\} 1/);
  t.match(metrics, /ingress_events_produced_total\{event_type="FileExtractSuccess",result="ok",service="ingress"\} 1/);
  t.match(metrics, /ingress_bytes_ingested_total\{service="ingress"\} \d+/);
  t.match(metrics, /ingress_s3_request_duration_seconds_bucket/);
  t.match(metrics, /ingress_kafka_send_duration_seconds_bucket/);
  t.match(metrics, /process_resident_memory_bytes/);
});

t.test('readiness turns 503 while S3 is stopped, imports get 503, and both recover', async (t) => {
  const profile = runningProfile();
  if (profile === undefined) throw new Error('no local stack is running');
  const paths = stackPaths(profile);
  const { url } = await withIngress(t, { INGRESS_READINESS_CACHE_MS: '0' });
  const tenant = uniqueName('s3down');
  await stopServer(paths, 'minio');
  try {
    const ready = await request(`${url}/readiness`);
    const body = (await ready.body.json()) as any;
    t.equal(ready.statusCode, 503);
    t.equal(body.checks.s3.ok, false, 'names S3 as down');
    t.equal(body.checks.kafka.ok, true);
    const refused = await post(`${url}/import/${tenant}`, sampleObject);
    t.equal(refused.status, 503);
    t.equal(refused.json.error.code, 'STORAGE_UNAVAILABLE');
  } finally {
    await startServer(paths, stackPorts(), 'minio');
  }
  await eventually('readiness back to 200', async () => ((await request(`${url}/readiness`)).statusCode === 200 ? true : undefined), 60_000);
  const accepted = await post(`${url}/import/${tenant}`, sampleObject);
  t.equal(accepted.status, 202, 'imports work again');
  t.same(await objectsOf(tenant), [accepted.json.key], 'only the accepted file is stored');
});

t.test('SIGTERM: stops accepting, finishes in-flight imports, exits 0, loses nothing accepted', async (t) => {
  const port = await freePort();
  const child = spawn(process.execPath, ['--import', 'tsx', 'ingress/main.ts'], {
    // The test holds the bodies back itself; the slow-body guard would answer 408 to them.
    env: {
      ...process.env,
      INGRESS_PORT: String(port),
      INGRESS_HOST: '127.0.0.1',
      INGRESS_BODY_MIN_BYTES_PER_SECOND: '0',
      LOG_LEVEL: process.env.ITEST_LOG_LEVEL ?? 'warn',
    },
    stdio: ['ignore', 'inherit', 'inherit'],
  });
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  const url = `http://127.0.0.1:${port}`;
  await eventually('the ingress process to listen', async () => ((await request(`${url}/liveness`)).statusCode === 200 ? true : undefined), 60_000);
  const tenant = uniqueName('sigterm');
  // Uploads whose bodies stop after their first line until the ingress has stopped accepting:
  // they are in flight when SIGTERM arrives, and the rest of each body comes during the shutdown.
  let release: () => void = () => undefined;
  const released = new Promise<void>((resolve) => (release = resolve));
  const uploads = Array.from({ length: 8 }, (_, i) =>
    request(`${url}/import/${tenant}`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-ndjson' },
      body: Readable.from(
        (async function* () {
          for (let line = 0; line < 5; line++) {
            if (line === 1) await released;
            yield Buffer.from(`{"name":"c${i}-${line}","permalink":"c${i}-${line}"}\n`);
          }
        })(),
      ),
    }).then(
      async (response) => ({ status: response.statusCode, body: (await response.body.json()) as any }),
      (error: unknown) => ({ status: 0, body: String(error) }),
    ),
  );
  await eventually('the 8 uploads to be in flight', async () =>
    /^ingress_uploads_in_flight(\{[^}]*\})? 8$/m.test(await (await request(`${url}/metrics`)).body.text()) ? true : undefined,
  );
  child.kill('SIGTERM');
  // A new connection, not one of the pool's: the listener closing is what "stops accepting" means.
  await eventually('the ingress to stop accepting connections', () => refusesConnections(port), 60_000);
  release();
  const results = await Promise.all(uploads);
  t.equal(await exited, 0, 'exit code 0');
  const accepted = results.filter((result) => result.status === 202);
  t.equal(accepted.length, 8, 'every in-flight import finished');
  for (const result of accepted) t.equal(result.body.records, 5);
  await t.rejects(request(`${url}/liveness`), 'no longer listening');
  const events = await collectEvents<FileExtractSuccess>(topics.fileExtractSuccess.name, (value) => value.tenant === tenant, {
    count: accepted.length,
    decode,
  });
  t.same(events.map((event) => event.value.request_id).sort(), accepted.map((result) => result.body.request_id).sort(), 'every accepted import has its event');
});
