import type { S3Client } from '@aws-sdk/client-s3';
import { pino } from 'pino';
import t from 'tap';
import type { EventCodec } from '../core/event-codec.js';
import { topics } from '../core/pipeline.js';
import { TenantTokens } from '../core/tenant-tokens.js';
import { loadIngressConfig } from './config.js';
import { RequestDeduplicator } from './dedupe.js';
import {
  startImportSession,
  type ImportAccepted,
  type ImportSession,
  type ImportRequestHead,
  type ImportResponse,
  type ImportSessionDeps,
} from './import-session.js';
import { createIngressMetrics } from './metrics.js';

/** Records what the session writes and lets a test send body chunks or abort like uWS would. */
class FakeResponse implements ImportResponse {
  status: string | undefined;
  headers: Record<string, string> = {};
  body: string | undefined;
  closeConnection: boolean | undefined;
  ends = 0;
  pauses = 0;
  resumes = 0;
  #onData: ((chunk: ArrayBuffer, isLast: boolean) => void) | undefined;
  #onAborted: (() => void) | undefined;
  #aborted = false;

  writeStatus(status: string): this {
    this.#check();
    this.status = status;
    return this;
  }
  writeHeader(name: string, value: string): this {
    this.#check();
    this.headers[name] = value;
    return this;
  }
  end(body: string, closeConnection?: boolean): this {
    this.#check();
    this.ends++;
    this.body = body;
    this.closeConnection = closeConnection;
    return this;
  }
  cork(callback: () => void): this {
    callback();
    return this;
  }
  onData(handler: (chunk: ArrayBuffer, isLast: boolean) => void): this {
    this.#onData = handler;
    return this;
  }
  onAborted(handler: () => void): this {
    this.#onAborted = handler;
    return this;
  }
  pause(): void {
    this.#check();
    this.pauses++;
  }
  resume(): void {
    this.#check();
    this.resumes++;
  }

  /** uWS passes a chunk whose memory it reuses afterwards: the fake zeroes it to prove the copy. */
  send(text: string | Buffer, isLast = false): void {
    const bytes = typeof text === 'string' ? Buffer.from(text) : text;
    const chunk = new Uint8Array(bytes).buffer;
    this.#onData?.(chunk, isLast);
    new Uint8Array(chunk).fill(0);
  }
  abort(): void {
    this.#aborted = true;
    this.#onAborted?.();
  }
  get json(): { error?: { code: string; message: string; request_id: string } } & Record<string, unknown> {
    return JSON.parse(this.body ?? 'null') as never;
  }
  #check(): void {
    // uWS throws on any use of an aborted response.
    if (this.#aborted) throw new Error('used an aborted response');
  }
}

/** S3 in memory: commands by name, an optional failure per command, an optional gate on parts. */
function fakeS3() {
  const calls: string[] = [];
  const objects = new Map<string, Buffer>();
  const failing = new Set<string>();
  let partGate: Promise<void> | undefined;
  const s3 = {
    async send(command: { constructor: { name: string }; input: Record<string, unknown> }) {
      const name = command.constructor.name.replace(/Command$/, '');
      calls.push(name);
      if (failing.has(name)) throw new Error(`${name}: connect ECONNREFUSED 127.0.0.1:9000`);
      switch (name) {
        case 'PutObject':
          objects.set(command.input.Key as string, command.input.Body as Buffer);
          return { ETag: '"etag-1"' };
        case 'CreateMultipartUpload':
          return { UploadId: 'upload-1' };
        case 'UploadPart':
          await partGate;
          return { ETag: `"part-${String(command.input.PartNumber)}"` };
        case 'CompleteMultipartUpload':
          objects.set(command.input.Key as string, Buffer.alloc(0));
          return {};
        case 'CopyObject':
          return { CopyObjectResult: { ETag: '"etag-copy"' } };
        case 'DeleteObject':
          objects.delete(command.input.Key as string);
          return {};
        default:
          return {};
      }
    },
  };
  return {
    s3: s3 as unknown as S3Client,
    calls,
    objects,
    failing,
    holdParts(): () => void {
      let open: () => void = () => undefined;
      partGate = new Promise((resolve) => (open = resolve));
      return () => {
        partGate = undefined;
        open();
      };
    },
  };
}

function setup(env: Record<string, string> = {}, tune: (deps: ImportSessionDeps) => void = () => undefined) {
  const config = loadIngressConfig({ INGRESS_BODY_MIN_BYTES_PER_SECOND: '0', ...env });
  const storage = fakeS3();
  const events: Array<{ topic: string; key: string; value: unknown; headers: Record<string, string> }> = [];
  let kafkaDown = false;
  const counts = { changed: 0, released: 0 };
  const dedupe = new RequestDeduplicator<ImportAccepted>(60_000);
  const release = dedupe.release.bind(dedupe);
  dedupe.release = (tenant, requestId) => {
    counts.released++;
    release(tenant, requestId);
  };
  const codec = { encode: async (_topic: string, value: unknown) => Buffer.from(JSON.stringify(value)) } as unknown as EventCodec;
  const deps: ImportSessionDeps = {
    config,
    s3: storage.s3,
    codec,
    sendEvent: async (topic, message) => {
      if (kafkaDown) throw new Error('Local: Message timed out');
      events.push({ topic, key: message.key, value: JSON.parse(message.value.toString()), headers: message.headers });
    },
    dedupe,
    tokens: new TenantTokens(config.ingress.tenantTokens),
    metrics: createIngressMetrics(),
    logger: pino({ level: 'silent' }),
    inFlight: { count: 0, changed: () => counts.changed++ },
  };
  tune(deps);
  const head = (overrides: Partial<ImportRequestHead> = {}): ImportRequestHead => ({
    tenant: 'acme',
    requestId: 'req-0000001',
    contentType: 'application/x-ndjson',
    contentLength: undefined,
    authorization: undefined,
    filename: 'companies.ndjson',
    ...overrides,
  });
  return {
    deps,
    storage,
    events,
    counts,
    head,
    kafkaDown: () => (kafkaDown = true),
    start(res: FakeResponse, overrides: Partial<ImportRequestHead> = {}) {
      return startImportSession(deps, res, head(overrides));
    },
    async requests(status: string): Promise<number> {
      const metric = await deps.metrics.requests.get();
      return metric.values.find((value) => value.labels.status === status)?.value ?? 0;
    },
  };
}

/** Until `done()` holds: the session's steps run over promises and the fakes' awaits; tap's timeout bounds the wait. */
async function until(done: () => boolean): Promise<void> {
  while (!done()) await new Promise((resolve) => setImmediate(resolve));
}

/** Until the session answered. */
function answered(res: FakeResponse): Promise<void> {
  return until(() => res.ends > 0);
}

/** The session a test started (start() returns undefined only for refusals at admission). */
function started(session: ImportSession | undefined): ImportSession {
  if (session === undefined) throw new Error('the session was refused at admission');
  return session;
}

const body = '{"name":"Acme","permalink":"acme"}\n{"name":"Globex","permalink":"globex"}\n';

t.test('a good body is stored, announced, then answered 202', async (t) => {
  const h = setup();
  const res = new FakeResponse();
  h.start(res);
  res.send(body.slice(0, 10));
  res.send(body.slice(10), true);
  await answered(res);
  t.equal(res.status, '202 Accepted');
  t.equal(res.headers['content-type'], 'application/json');
  t.equal(res.headers['x-request-id'], 'req-0000001');
  t.equal(res.closeConnection, false, 'the whole body was read: the connection stays');
  t.match(res.json, { request_id: 'req-0000001', tenant: 'acme', records: 2, format: 'ndjson', etag: 'etag-1', size: body.length });
  t.equal(h.events.length, 1);
  t.equal(h.events[0]?.topic, topics.fileExtractSuccess.name);
  t.match(h.events[0], { key: 'acme/req-0000001', headers: { request_id: 'req-0000001', event_type: 'FileExtractSuccess' } });
  t.match(h.events[0]?.value, { record_count: 2, size: body.length, original_filename: 'companies.ndjson' });
  t.equal([...h.storage.objects.values()][0]?.toString(), body, 'the bytes stored are the bytes sent (copied before uWS reuses them)');
  t.same({ inFlight: h.deps.inFlight.count, changed: h.counts.changed, released: h.counts.released }, { inFlight: 0, changed: 1, released: 0 });
  t.equal(await h.requests('202'), 1);

  const retry = new FakeResponse();
  t.equal(h.start(retry), undefined, 'a retry with the same id is answered at admission');
  t.equal(retry.status, '202 Accepted');
  t.match(retry.json, { duplicate: true, etag: 'etag-1' });
  t.equal(h.events.length, 1, 'and produces nothing');
});

t.test('an unparseable body: FileExtractError, then 400 with its code, nothing stored', async (t) => {
  const h = setup();
  const res = new FakeResponse();
  h.start(res);
  res.send('{"name":"Acme"}\n{"name": nope}\n');
  res.send('{"ignored":true}\n', true);
  await answered(res);
  t.equal(res.status, '400 Bad Request');
  t.equal(res.closeConnection, true);
  const error = res.json.error;
  t.match(error, { request_id: 'req-0000001' });
  t.equal(h.events.length, 1);
  t.equal(h.events[0]?.topic, topics.fileExtractError.name);
  t.match(h.events[0]?.value, { request_id: 'req-0000001', tenant: 'acme', reason_code: error?.code, message: error?.message });
  t.ok(res.pauses >= 1, 'the rest of the body is not read');
  t.equal(h.storage.objects.size, 0);
  t.same({ inFlight: h.deps.inFlight.count, changed: h.counts.changed, released: h.counts.released }, { inFlight: 0, changed: 1, released: 1 });
  t.equal(await h.requests('400'), 1);
});

t.test('the client goes away mid-body: cleaned up once, nothing emitted or written', async (t) => {
  const h = setup({}, (deps) => (deps.config.ingress.partSizeBytes = 16));
  const res = new FakeResponse();
  const session = started(h.start(res));
  res.send(body.slice(0, 40));
  res.abort();
  res.abort();
  res.send(body.slice(40), true);
  await session.closed;
  // The upload is aborted in the background of the clean-up.
  await until(() => h.storage.calls.includes('AbortMultipartUpload'));
  t.equal(res.ends, 0, 'no answer on an aborted response');
  t.equal(h.events.length, 0);
  t.ok(h.storage.calls.includes('AbortMultipartUpload'), 'the parts sent are aborted');
  t.notOk(h.storage.calls.includes('CompleteMultipartUpload'));
  t.same({ inFlight: h.deps.inFlight.count, changed: h.counts.changed, released: h.counts.released }, { inFlight: 0, changed: 1, released: 1 });
  t.equal(h.start(new FakeResponse()) !== undefined, true, 'the request id is free for a retry');
});

t.test('S3 fails: 503 STORAGE_UNAVAILABLE with Retry-After, cleaned up once', async (t) => {
  const h = setup();
  h.storage.failing.add('PutObject');
  const res = new FakeResponse();
  const session = started(h.start(res));
  res.send(body, true);
  await answered(res);
  t.equal(res.status, '503 Service Unavailable');
  t.equal(res.headers['retry-after'], '1');
  t.match(res.json.error, { code: 'STORAGE_UNAVAILABLE', message: /could not be stored: PutObject failed: .*ECONNREFUSED/ });
  t.equal(h.events.length, 0);
  res.abort();
  await session.closed;
  t.same({ inFlight: h.deps.inFlight.count, changed: h.counts.changed, released: h.counts.released }, { inFlight: 0, changed: 1, released: 1 });
  t.equal(await h.requests('503'), 1);
});

t.test('Kafka does not acknowledge: the stored file is deleted, 503 EVENT_NOT_ACKNOWLEDGED', async (t) => {
  const h = setup();
  h.kafkaDown();
  const res = new FakeResponse();
  h.start(res);
  res.send(body, true);
  await answered(res);
  t.equal(res.status, '503 Service Unavailable');
  t.equal(res.json.error?.code, 'EVENT_NOT_ACKNOWLEDGED');
  t.ok(h.storage.calls.includes('DeleteObject'));
  t.equal(h.storage.objects.size, 0);
  t.same({ inFlight: h.deps.inFlight.count, changed: h.counts.changed, released: h.counts.released }, { inFlight: 0, changed: 1, released: 1 });
});

t.test('a body too large: 413 at admission by Content-Length, or once it streams past the limit', async (t) => {
  const h = setup({ INGRESS_MAX_BODY_BYTES: '50' });
  const early = new FakeResponse();
  t.equal(h.start(early, { contentLength: '51' }), undefined);
  t.equal(early.status, '413 Payload Too Large');
  t.match(early.json.error, { code: 'BODY_TOO_LARGE', message: 'the body exceeds 50 bytes', limit_bytes: 50 });
  t.equal(h.deps.inFlight.count, 0);
  t.equal(h.counts.changed, 0, 'refused at admission: never counted in flight');

  const res = new FakeResponse();
  h.start(res, { requestId: 'req-0000002' });
  res.send(body.slice(0, 30));
  res.send(body.slice(30, 60));
  res.send(body.slice(60), true);
  await answered(res);
  t.equal(res.status, '413 Payload Too Large');
  t.equal(res.closeConnection, true);
  t.match(res.json.error, { code: 'BODY_TOO_LARGE', limit_bytes: 50, request_id: 'req-0000002' });
  t.equal(h.events.length, 0);
  t.same({ inFlight: h.deps.inFlight.count, changed: h.counts.changed, released: h.counts.released }, { inFlight: 0, changed: 1, released: 1 });
});

t.test('S3 backpressure pauses the body and resumes it when the parts drain', async (t) => {
  const h = setup({}, (deps) => (deps.config.ingress.partSizeBytes = 16));
  const open = h.storage.holdParts();
  const res = new FakeResponse();
  h.start(res);
  res.send(body.slice(0, 40));
  t.equal(res.pauses, 1, 'two parts held: reading pauses');
  t.equal(res.resumes, 0);
  open();
  await until(() => res.resumes > 0);
  t.equal(res.resumes, 1, 'the parts went up: reading resumes');
  res.send(body.slice(40), true);
  await answered(res);
  t.equal(res.status, '202 Accepted');
  t.match(res.json, { records: 2, etag: 'etag-copy' });
  t.ok(h.storage.calls.includes('CompleteMultipartUpload'));
});

t.test('a body slower than the minimum rate gets 408 BODY_TOO_SLOW', async (t) => {
  const h = setup({ INGRESS_BODY_MIN_BYTES_PER_SECOND: '1000000', INGRESS_BODY_RATE_WINDOW_MS: '100' });
  const res = new FakeResponse();
  const session = started(h.start(res));
  res.send(body.slice(0, 5));
  await answered(res);
  t.equal(res.status, '408 Request Timeout');
  t.match(res.json.error, { code: 'BODY_TOO_SLOW', bytes_received: 5 });
  res.send(body.slice(5), true);
  await session.closed;
  t.same({ inFlight: h.deps.inFlight.count, changed: h.counts.changed, released: h.counts.released }, { inFlight: 0, changed: 1, released: 1 });
  t.equal(res.ends, 1);
});

t.test('admission refusals answer at once and never enter the in-flight count', async (t) => {
  const h = setup({ INGRESS_AUTH_TOKENS: 'acme:secret' });
  const cases: Array<[Partial<ImportRequestHead>, string, string]> = [
    [{ requestId: 'bad id!' }, '400 Bad Request', 'INVALID_REQUEST_ID'],
    [{ tenant: '../etc' }, '400 Bad Request', 'INVALID_TENANT'],
    [{ authorization: 'Bearer wrong' }, '401 Unauthorized', 'UNAUTHORIZED'],
    [{ authorization: 'Bearer secret', contentType: 'text/csv' }, '415 Unsupported Media Type', 'UNSUPPORTED_MEDIA_TYPE'],
  ];
  for (const [overrides, status, code] of cases) {
    const res = new FakeResponse();
    t.equal(h.start(res, overrides), undefined);
    t.equal(res.status, status, code);
    t.equal(res.json.error?.code, code);
    t.equal(res.closeConnection, true);
  }
  t.equal(h.counts.changed, 0);
});

t.test('clean-up runs exactly once whatever arrives after the end', async (t) => {
  const endings: Array<[string, (res: FakeResponse, h: ReturnType<typeof setup>) => Promise<void>]> = [
    [
      'abort, then data, then abort',
      async (res) => {
        res.send(body.slice(0, 10));
        res.abort();
        res.send(body.slice(10), true);
        res.abort();
      },
    ],
    [
      'too large, then abort',
      async (res) => {
        res.send('x'.repeat(60));
        res.abort();
      },
    ],
    [
      'parse error, then more data and the end',
      async (res) => {
        res.send('[[[');
        res.send(']', true);
        await answered(res);
        res.abort();
      },
    ],
    [
      'S3 failure, then abort',
      async (res, h) => {
        h.storage.failing.add('PutObject');
        res.send(body, true);
        await answered(res);
        res.abort();
      },
    ],
    [
      'accepted, then abort',
      async (res) => {
        res.send(body, true);
        await answered(res);
        res.abort();
      },
    ],
    [
      'abort after the last byte: the import still finishes',
      async (res) => {
        res.send(body, true);
        res.abort();
      },
    ],
  ];
  for (const [name, run] of endings) {
    const h = setup({ INGRESS_MAX_BODY_BYTES: '100' });
    const res = new FakeResponse();
    const session = started(h.start(res));
    await run(res, h);
    await session.closed;
    t.equal(h.counts.changed, 1, `${name}: left the in-flight count once`);
    t.equal(h.deps.inFlight.count, 0, `${name}: nothing in flight`);
    t.ok(h.counts.released <= 1, `${name}: the request id released at most once`);
    t.ok(res.ends <= 1, `${name}: answered at most once`);
    t.equal((await h.deps.metrics.uploadsInFlight.get()).values[0]?.value, 0, `${name}: uploads gauge back to 0`);
  }
});
