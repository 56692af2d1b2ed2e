/**
 * The hostile-input corpus: seeded cases sent to a real ingress (child process, real stack).
 * Each case has its documented answer (README, "Ingress"); after the corpus the ingress must
 * still be alive, and nothing may be stored or announced for any refused request.
 */
import { connect } from 'node:net';
import { readFileSync } from 'node:fs';
import { Readable } from 'node:stream';
import { HeadObjectCommand, ListObjectsV2Command } from '@aws-sdk/client-s3';
import { request } from 'undici';
import { topics } from '../../core/pipeline.js';
import { generateCompanies } from '../../examples/generate/companies.js';
import { config, eventually, Ledger, log, s3, seededRandom, startService, type Service } from './harness.js';
import type { Profile } from './faults.js';

export interface HostileCase {
  name: string;
  expected: { status: number; code?: string };
  got: { status: number; code?: string };
  ok: boolean;
  note?: string;
}

export interface HostileResult {
  cases: HostileCase[];
  seed: number;
  checks: Array<{ what: string; ok: boolean }>;
  ok: boolean;
  seconds: number;
  error?: string;
}

const PARSE_ERRORS = new Set([
  'EMPTY_BODY',
  'INVALID_JSON',
  'INVALID_UTF8',
  'TRUNCATED',
  'TRAILING_DATA',
  'TOP_LEVEL_SCALAR',
  'NESTING_TOO_DEEP',
  'LINE_TOO_LONG',
]);

interface Answer {
  status: number;
  code?: string;
  requestId?: string;
  retryAfter?: string;
}

/** A request written byte for byte on a socket: nothing normalises the path or headers. */
function raw(port: number, head: string, body: Buffer | string = ''): Promise<Answer> {
  return new Promise((resolve) => {
    const socket = connect(port, '127.0.0.1', () => {
      socket.write(head);
      socket.end(body);
    });
    let data = '';
    socket.on('data', (chunk) => (data += chunk.toString('latin1')));
    socket.on('error', () => undefined);
    socket.on('close', () => resolve(parseAnswer(data)));
  });
}

function parseAnswer(data: string): Answer {
  const split = data.indexOf('\r\n\r\n');
  const head = split < 0 ? data : data.slice(0, split);
  const status = Number(/^HTTP\/1\.1 (\d{3})/.exec(head)?.[1] ?? 0);
  const retryAfter = /\r\nretry-after: *([^\r]*)/i.exec(head)?.[1];
  try {
    const json = JSON.parse(data.slice(split + 4)) as { error?: { code?: string; request_id?: string } };
    return { status, code: json.error?.code, requestId: json.error?.request_id, retryAfter };
  } catch {
    return { status, retryAfter };
  }
}

/** Whether `data` holds a whole answer: its head and as many body bytes as its Content-Length says. */
function answerComplete(data: string): boolean {
  const split = data.indexOf('\r\n\r\n');
  if (split < 0) return false;
  const length = /\r\ncontent-length: *(\d+)/i.exec(data.slice(0, split))?.[1];
  return length !== undefined && data.length - (split + 4) >= Number(length);
}

/**
 * An upload on a raw socket whose head goes out at once and whose body only on `sendBody()`.
 * A request refused at its head is answered before any byte of its body, so the whole answer
 * is read: a client still sending when the answer and close arrive may see a reset instead.
 */
function heldUpload(port: number, head: string, body: { chunk: Buffer; count: number }) {
  const socket = connect(port, '127.0.0.1');
  let data = '';
  let answer: Answer | undefined;
  const answered = new Promise<Answer>((resolve) => {
    const finish = () => {
      answer ??= parseAnswer(data);
      resolve(answer);
    };
    socket.on('data', (chunk) => {
      data += chunk.toString('latin1');
      if (!answerComplete(data)) return;
      finish();
      socket.destroy();
    });
    socket.on('error', () => undefined);
    socket.on('close', finish);
  });
  socket.write(head);
  return {
    answered,
    /** The answer, once it arrived whole (or the connection closed). */
    get answer() {
      return answer;
    },
    async sendBody(): Promise<void> {
      for (let sent = 0; sent < body.count && answer === undefined; sent++) {
        if (socket.write(body.chunk)) continue;
        await new Promise<void>((resolve) => {
          const done = () => {
            socket.off('drain', done).off('close', done);
            resolve();
          };
          socket.on('drain', done).on('close', done);
        });
      }
    },
  };
}

async function post(url: string, body: Buffer | string | Readable, headers: Record<string, string>): Promise<Answer & { json?: any }> {
  try {
    const response = await request(url, { method: 'POST', body, headers, headersTimeout: 120_000, bodyTimeout: 120_000 });
    const json = (await response.body.json().catch(() => undefined)) as any;
    return { status: response.statusCode, code: json?.error?.code, requestId: json?.error?.request_id ?? json?.request_id, json };
  } catch (error) {
    return { status: 0, code: (error as { code?: string }).code ?? 'CONNECTION_FAILED' };
  }
}

/** Answers of the import route by status, from the service's own /metrics. */
async function serverAnswers(service: Service): Promise<Record<string, number>> {
  const text = await (await request(`${service.url}/metrics`)).body.text();
  const counts: Record<string, number> = {};
  for (const match of text.matchAll(/^ingress_http_requests_total\{[^}]*status="(\d+)"[^}]*\} (\d+)/gm)) {
    counts[match[1]!] = (counts[match[1]!] ?? 0) + Number(match[2]);
  }
  return counts;
}

/** Seeded malformed variants of a valid NDJSON file: JSON.parse decides what they should get. */
function corruptions(seed: number, count: number): Array<{ name: string; body: Buffer }> {
  const random = seededRandom(seed);
  const lines = [...generateCompanies({ count: 3, seed, bytesPerRecord: 600 })].map((record) => record.line);
  const valid = Buffer.from(`${lines.join('\n')}\n`);
  const junk = ['{', '}', '[', ']', '"', ',', ':', '\\', 'x', '\n', '0', ' ', '\u0000', '\u00ff'];
  const out: Array<{ name: string; body: Buffer }> = [];
  for (let i = 0; i < count; i++) {
    const bytes = Buffer.from(valid);
    const at = Math.floor(random() * bytes.length);
    const kind = Math.floor(random() * 3);
    let body: Buffer;
    if (kind === 0)
      body = bytes.subarray(0, at); // truncated
    else if (kind === 1) {
      bytes[at] = junk[Math.floor(random() * junk.length)]!.charCodeAt(0) & 0xff; // one byte replaced
      body = bytes;
    } else body = Buffer.concat([bytes.subarray(0, at), bytes.subarray(at + 1 + Math.floor(random() * 20))]); // bytes cut out
    out.push({ name: `corruption #${i} (${['truncated', 'byte replaced', 'bytes removed'][kind]} at ${at})`, body });
  }
  return out;
}

/** What the scanner must say about an NDJSON body: parseable iff every non-blank line parses as JSON (objects/arrays/scalars). */
function ndjsonParses(body: Buffer): boolean {
  const text = new TextDecoder('utf-8', { fatal: true });
  let decoded: string;
  try {
    decoded = text.decode(body);
  } catch {
    return false;
  }
  const lines = decoded.split('\n').filter((line) => line.trim() !== '');
  if (lines.length === 0) return false;
  try {
    for (const line of lines) JSON.parse(line);
    return true;
  } catch {
    return false;
  }
}

export async function runHostileCorpus(context: { seed: number; profile: Profile }): Promise<HostileResult> {
  const started = Date.now();
  const tenant = `chaos-hostile-${Date.now().toString(36)}`;
  const cases: HostileCase[] = [];
  const checks: HostileResult['checks'] = [];
  const refusedIds: string[] = [];
  const acceptedIds: string[] = [];
  const services: Service[] = [];
  const result: HostileResult = { cases, seed: context.seed, checks, ok: false, seconds: 0 };
  const ledger = new Ledger((requestId) => requestId.startsWith('hostile-'));
  log(`hostile corpus (seed ${context.seed})`);
  let caseNumber = 0;
  const idFor = () => `hostile-${tenant}-${caseNumber++}`;
  const record = (name: string, expected: HostileCase['expected'], got: Answer, requestId: string | undefined, note?: string) => {
    const ok = got.status === expected.status && (expected.code === undefined || got.code === expected.code);
    cases.push({ name, expected, got: { status: got.status, code: got.code }, ok, note });
    if (requestId !== undefined) (got.status === 202 ? acceptedIds : refusedIds).push(requestId);
    if (!ok) log(`  ${name}: expected ${expected.status} ${expected.code ?? ''}, got ${got.status} ${got.code ?? ''}`);
  };
  try {
    await ledger.start();
    const ingress = await startService('ingress', {});
    services.push(ingress);
    const port = ingress.port;
    const url = `${ingress.url}/import/${tenant}`;
    const json = { 'content-type': 'application/json' };
    const ndjson = { 'content-type': 'application/x-ndjson' };

    // Malformed JSON of every kind, with the code each must get.
    const malformed: Array<[string, string, string, Record<string, string>]> = [
      ['empty body', '', 'EMPTY_BODY', json],
      ['only whitespace', ' \n\t ', 'EMPTY_BODY', json],
      ['truncated object', '{"name":"a","permalink":', 'TRUNCATED', json],
      ['unquoted key', '{name:"a"}', 'INVALID_JSON', json],
      ['single quotes', "{'name':'a'}", 'INVALID_JSON', json],
      ['trailing comma', '[{"a":1},]', 'INVALID_JSON', json],
      ['leading zero', '{"a":01}', 'INVALID_JSON', json],
      ['NaN', '{"a":NaN}', 'INVALID_JSON', json],
      ['bad escape', '{"a":"\\x41"}', 'INVALID_JSON', json],
      ['unterminated string', '{"a":"abc', 'TRUNCATED', json],
      ['trailing garbage', '{"a":1} x', 'TRAILING_DATA', json],
      ['two documents in a JSON body', '{"a":1}{"b":2}', 'TRAILING_DATA', json],
      ['top-level scalar', '42', 'TOP_LEVEL_SCALAR', json],
      ['top-level string', '"just text"', 'TOP_LEVEL_SCALAR', json],
      ['raw NUL byte in a string', '{"a":"x\u0000y"}', 'INVALID_JSON', json],
      ['raw NUL byte after a value', '{"a":1}\u0000', 'TRAILING_DATA', ndjson],
      ['NDJSON with a broken second line', '{"a":1}\n{"b":\n', 'INVALID_JSON', ndjson],
    ];
    for (const [name, body, code, headers] of malformed) {
      const requestId = idFor();
      record(name, { status: 400, code }, await post(url, Buffer.from(body, 'utf8'), { ...headers, 'x-request-id': requestId }), requestId);
    }
    // Invalid and overlong UTF-8.
    const utf8: Array<[string, number[]]> = [
      ['invalid UTF-8 byte 0xff', [0xff]],
      ['overlong "/" (0xc0 0xaf)', [0xc0, 0xaf]],
      ['overlong NUL (0xe0 0x80 0x80)', [0xe0, 0x80, 0x80]],
      ['UTF-16 surrogate in UTF-8 (0xed 0xa0 0x80)', [0xed, 0xa0, 0x80]],
      ['code point above U+10FFFF (0xf4 0x90 0x80 0x80)', [0xf4, 0x90, 0x80, 0x80]],
      ['truncated sequence (0xe2 0x82)', [0xe2, 0x82]],
    ];
    for (const [name, bytes] of utf8) {
      const requestId = idFor();
      const body = Buffer.concat([Buffer.from('{"name":"'), Buffer.from(bytes), Buffer.from('"}')]);
      record(name, { status: 400, code: 'INVALID_UTF8' }, await post(url, body, { ...json, 'x-request-id': requestId }), requestId);
    }
    // Nesting thousands of levels deep.
    for (const depth of [1_000, 100_000]) {
      const requestId = idFor();
      const body = Buffer.from(`${'['.repeat(depth)}${']'.repeat(depth)}`);
      record(
        `nesting ${depth.toLocaleString('en')} levels deep`,
        { status: 400, code: 'NESTING_TOO_DEEP' },
        await post(url, body, { ...json, 'x-request-id': requestId }),
        requestId,
      );
    }
    // A single 100 MB string, streamed (the client never holds it either).
    {
      const requestId = idFor();
      const total = 100 * 1024 * 1024;
      const chunk = Buffer.alloc(1024 * 1024, 0x61);
      const body = Readable.from(
        (function* () {
          yield Buffer.from('{"name":"');
          for (let sent = 0; sent < total; sent += chunk.length) yield chunk;
          yield Buffer.from('"}');
        })(),
      );
      record(
        'one 100 MB string',
        { status: 400, code: 'LINE_TOO_LONG' },
        await post(url, body, { ...json, 'x-request-id': requestId }),
        requestId,
        'a record is bounded by INGRESS_MAX_LINE_BYTES (16 MiB)',
      );
    }
    // Seeded random corruptions: the answer must agree with a strict parser.
    for (const { name, body } of corruptions(context.seed, context.profile === 'short' ? 40 : 200)) {
      const requestId = idFor();
      const parses = ndjsonParses(body);
      const got = await post(url, body, { ...ndjson, 'x-request-id': requestId });
      const expected = parses ? { status: 202 } : { status: 400 };
      const ok = got.status === expected.status && (parses || PARSE_ERRORS.has(got.code ?? ''));
      cases.push({ name, expected, got: { status: got.status, code: got.code }, ok, note: parses ? 'still valid NDJSON' : undefined });
      (got.status === 202 ? acceptedIds : refusedIds).push(requestId);
      if (!ok) log(`  ${name}: expected ${expected.status}, got ${got.status} ${got.code ?? ''}`);
    }
    // Hostile tenants (raw request lines: clients would normalise them) and request ids.
    for (const [path, status, code] of [
      ['/import/../x', 404, 'NOT_FOUND'],
      ['/import/..%2fx', 400, 'INVALID_TENANT'],
      ['/import/%2e%2e', 400, 'INVALID_TENANT'],
      ['/import/a/b', 404, 'NOT_FOUND'],
      ['/import/UPPER', 400, 'INVALID_TENANT'],
      ['/import/a%00b', 400, 'INVALID_TENANT'],
      ['/import/' + 'a'.repeat(64), 400, 'INVALID_TENANT'],
    ] as const) {
      const got = await raw(port, `POST ${path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 2\r\nConnection: close\r\n\r\n`, '{}');
      record(`tenant path ${path.length > 40 ? `${path.slice(0, 30)}…` : path}`, { status, code }, got, undefined);
    }
    for (const id of ['../../etc/passwd', 'a b', 'x'.repeat(200), 'short']) {
      const got = await post(url, '{}', { ...json, 'x-request-id': id });
      record(`request id ${JSON.stringify(id.length > 20 ? `${id.slice(0, 12)}…` : id)}`, { status: 400, code: 'INVALID_REQUEST_ID' }, got, undefined);
    }
    record('Content-Type text/plain', { status: 415, code: 'UNSUPPORTED_MEDIA_TYPE' }, await post(url, '{}', { 'content-type': 'text/plain' }), undefined);
    record(
      'charset latin1',
      { status: 415, code: 'UNSUPPORTED_MEDIA_TYPE' },
      await post(url, '{}', { 'content-type': 'application/json; charset=latin1' }),
      undefined,
    );
    record(
      'Content-Length beyond the limit',
      { status: 413, code: 'BODY_TOO_LARGE' },
      await raw(port, `POST /import/${tenant} HTTP/1.1\r\nHost: x\r\nContent-Length: ${300 * 1024 * 1024}\r\nConnection: close\r\n\r\n`),
      undefined,
    );
    // Header injection through the filename: stored as an inert label, never as headers.
    {
      const requestId = idFor();
      const evil = 'report.json\r\nX-Amz-Meta-Evil: 1\r\nx: y';
      const got = await post(`${url}?filename=${encodeURIComponent(evil)}`, '{"name":"x","permalink":"x"}', { ...json, 'x-request-id': requestId });
      record('CR/LF header injection in ?filename=', { status: 202 }, got, requestId);
      if (got.status === 202) {
        const head = await s3.send(new HeadObjectCommand({ Bucket: config.s3.bucket, Key: got.json.key }));
        const metadata = head.Metadata ?? {};
        checks.push({ what: 'no injected S3 metadata from the filename', ok: !('evil' in metadata) });
        checks.push({ what: 'the object key is the request id, not the filename', ok: String(got.json.key).endsWith(`/${requestId}.json`) });
      }
    }
    // NDJSON lines beyond a configured maximum: an ingress with a 64 KiB line limit.
    {
      const small = await startService('ingress', { INGRESS_MAX_LINE_BYTES: String(64 * 1024), INGRESS_MAX_BODY_BYTES: String(1024 * 1024) });
      services.push(small);
      const requestId = idFor();
      const body = `{"name":"ok"}\n{"name":"${'b'.repeat(70 * 1024)}"}\n`;
      record(
        'NDJSON line over INGRESS_MAX_LINE_BYTES=64 KiB',
        { status: 400, code: 'LINE_TOO_LONG' },
        await post(`${small.url}/import/${tenant}`, body, { ...ndjson, 'x-request-id': requestId }),
        requestId,
      );
      const bigId = idFor();
      const streamed = Readable.from(
        (function* () {
          yield Buffer.from('[');
          for (let i = 0; i < 40; i++) yield Buffer.from(`${i === 0 ? '' : ','}{"n":"${'c'.repeat(40 * 1024)}"}`);
          yield Buffer.from(']');
        })(),
      );
      record(
        'streamed body over INGRESS_MAX_BODY_BYTES=1 MiB',
        { status: 413, code: 'BODY_TOO_LARGE' },
        await post(`${small.url}/import/${tenant}`, streamed, { ...json, 'x-request-id': bigId }),
        bigId,
      );
    }
    // Slowloris: one byte per second.
    {
      const requestId = idFor();
      const got = await new Promise<Answer>((resolve) => {
        const socket = connect(port, '127.0.0.1', () =>
          socket.write(
            `POST /import/${tenant} HTTP/1.1\r\nHost: x\r\nX-Request-Id: ${requestId}\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n\r\n[`,
          ),
        );
        const drip = setInterval(() => socket.writable && socket.write(' '), 1000);
        let data = '';
        socket.on('data', (chunk) => (data += chunk.toString('latin1')));
        socket.on('error', () => undefined);
        socket.on('close', () => {
          clearInterval(drip);
          resolve(parseAnswer(data));
        });
      });
      record(
        'body at one byte per second (slowloris)',
        { status: 408, code: 'BODY_TOO_SLOW' },
        got,
        requestId,
        'answered after one INGRESS_BODY_RATE_WINDOW_MS (5 s) window',
      );
    }
    // More concurrent large uploads than admitted: an ingress admitting 3 at a time.
    {
      // The test holds each body back until its request is judged; the slow-body guard would answer 408 to them.
      const admitted = await startService('ingress', { INGRESS_MAX_CONCURRENT_UPLOADS: '3', INGRESS_BODY_MIN_BYTES_PER_SECOND: '0' });
      services.push(admitted);
      const line = `${JSON.stringify({ name: 'big', permalink: 'big', blob: 'd'.repeat(8 * 1024) })}\n`;
      const chunk = Buffer.from(line.repeat(64));
      const body = { chunk, count: Math.ceil((24 * 1024 * 1024) / chunk.length) };
      const uploads = Array.from({ length: 10 }, () => {
        const requestId = idFor();
        const head =
          `POST /import/${tenant} HTTP/1.1\r\nHost: x\r\nX-Request-Id: ${requestId}\r\nContent-Type: application/x-ndjson\r\n` +
          `Content-Length: ${body.chunk.length * body.count}\r\n\r\n`;
        return { requestId, upload: heldUpload(admitted.port, head, body) };
      });
      // Every request is judged at its head: admitted (counted in flight, waiting for its body) or answered.
      const inFlight = async () =>
        Number(/^ingress_uploads_in_flight(?:\{[^}]*\})? (\d+)$/m.exec(await (await request(`${admitted.url}/metrics`)).body.text())?.[1] ?? -1);
      const admittedCount = await eventually(
        'each of the 10 uploads to be admitted or refused',
        async () => {
          const count = await inFlight();
          return count + uploads.filter(({ upload }) => upload.answer !== undefined).length === uploads.length ? count : undefined;
        },
        60_000,
      );
      const refused = uploads.filter(({ upload }) => upload.answer !== undefined);
      const held = uploads.filter(({ upload }) => upload.answer === undefined);
      await Promise.all(held.map(({ upload }) => upload.sendBody()));
      const answers = await Promise.all(uploads.map(async ({ requestId, upload }) => ({ requestId, answer: await upload.answered })));
      const isRefusal = (answer: Answer) => answer.status === 503 && answer.code === 'TOO_MANY_UPLOADS' && /^\d+$/.test(answer.retryAfter ?? '');
      const badRefusal = refused.map(({ upload }) => upload.answer!).find((answer) => !isRefusal(answer));
      const heldAnswers = answers.filter(({ requestId }) => held.some((entry) => entry.requestId === requestId)).map(({ answer }) => answer);
      const served = await serverAnswers(admitted);
      const label = (answer: Answer) =>
        `${answer.status} ${answer.code ?? ''}${answer.retryAfter === undefined ? '' : ` Retry-After: ${answer.retryAfter}`}`.trim();
      const tally = new Map<string, number>();
      for (const { answer } of answers) tally.set(label(answer), (tally.get(label(answer)) ?? 0) + 1);
      for (const { answer, requestId } of answers) (answer.status === 202 ? acceptedIds : refusedIds).push(requestId);
      const rss = Number(/VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${admitted.child.pid}/status`, 'utf8'))?.[1] ?? 0) / 1024;
      const firstRefusal = refused[0]?.upload.answer;
      cases.push({
        name: '10 concurrent 24 MiB uploads (a body sent once its request is admitted), INGRESS_MAX_CONCURRENT_UPLOADS=3',
        expected: { status: 503, code: 'TOO_MANY_UPLOADS' },
        got: { status: (badRefusal ?? firstRefusal)?.status ?? 0, code: (badRefusal ?? firstRefusal)?.code },
        ok:
          admittedCount === 3 &&
          held.length === 3 &&
          refused.length === 7 &&
          badRefusal === undefined &&
          heldAnswers.every((answer) => answer.status === 202) &&
          (served['202'] ?? 0) === 3 &&
          (served['503'] ?? 0) === 7,
        note: `bodies held until each request was judged: ${admittedCount} admitted, ${refused.length} answered at once (each must be 503 TOO_MANY_UPLOADS with Retry-After); the clients read ${[...tally].map(([text, count]) => `${count} × ${text}`).join(', ')}; the server counted ${served['202'] ?? 0} × 202 and ${served['503'] ?? 0} × 503 (its ingress_http_requests_total); ingress peak RSS ${rss.toFixed(0)} MiB`,
      });
    }

    // Afterwards: nobody crashed, nothing stored or announced for what was refused.
    for (const service of services) checks.push({ what: `${service.name} on port ${service.port} still alive after the corpus`, ok: service.alive });
    // The events of a tenant share its partition, read in order: once the ledger has the event of
    // a file sent after every other answer, it has read every event of the corpus.
    const lastId = idFor();
    const last = await post(url, '{"name":"last","permalink":"last"}', { ...json, 'x-request-id': lastId });
    record('a well-formed file after the corpus', { status: 202 }, last, lastId);
    const ledgerCaughtUp = await eventually(
      "the ledger to read the last file's event",
      async () => {
        await ledger.catchUp();
        return ledger.counts.fileExtractSuccess.has(lastId) ? true : undefined;
      },
      60_000,
    ).then(
      () => true,
      () => false,
    );
    checks.push({ what: `the ledger read ${topics.fileExtractSuccess.name} up to a file sent after the corpus`, ok: ledgerCaughtUp });
    const listKeys = async () => {
      const keys: string[] = [];
      let token: string | undefined;
      do {
        const page = await s3.send(new ListObjectsV2Command({ Bucket: config.s3.bucket, Prefix: `${tenant}/`, ContinuationToken: token }));
        keys.push(...(page.Contents ?? []).map((object) => object.Key!));
        token = page.NextContinuationToken;
      } while (token !== undefined);
      return keys;
    };
    const storedFor = (keys: string[]) => refusedIds.filter((id) => keys.some((key) => key.endsWith(`/${id}.json`)));
    // A refused upload is aborted in the background after its answer: what is checked is that nothing stays.
    const cleanKeys = await eventually(
      'nothing stored for a refused request',
      async () => {
        const keys = await listKeys();
        return storedFor(keys).length === 0 ? keys : undefined;
      },
      30_000,
    ).catch(() => undefined);
    const keys = cleanKeys ?? (await listKeys());
    checks.push({ what: `nothing stored for the ${refusedIds.length} refused requests`, ok: cleanKeys !== undefined });
    checks.push({
      what: `every one of the ${acceptedIds.length} accepted requests stored`,
      ok: acceptedIds.every((id) => keys.some((key) => key.endsWith(`/${id}.json`))),
    });
    const announcedRefused = refusedIds.filter((id) => (ledger.counts.fileExtractSuccess.get(id) ?? 0) > 0);
    checks.push({ what: `no ${topics.fileExtractSuccess.name} for a refused request`, ok: announcedRefused.length === 0 });
    checks.push({
      what: `one ${topics.fileExtractSuccess.name} per accepted request`,
      ok: acceptedIds.every((id) => ledger.counts.fileExtractSuccess.get(id) === 1),
    });
  } catch (error) {
    result.error = error instanceof Error ? error.message : String(error);
    log(`hostile corpus: ${result.error}`);
  } finally {
    await ledger.stop().catch(() => undefined);
    for (const service of services) await service.kill('SIGTERM').catch(() => undefined);
  }
  result.ok = result.error === undefined && cases.every((entry) => entry.ok) && checks.every((check) => check.ok);
  result.seconds = Math.round((Date.now() - started) / 1000);
  log(`hostile corpus: ${result.ok ? 'PASS' : 'FAIL'} (${cases.filter((entry) => entry.ok).length}/${cases.length} cases) in ${result.seconds} s`);
  return result;
}
