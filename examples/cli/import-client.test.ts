import t from 'tap';
import {
  exitCodes,
  importFile,
  isRetryable,
  newRunPrefix,
  parseImportArgs,
  parseRetryAfter,
  requestIdFor,
  retryDelayMs,
  summarize,
  UsageError,
  type AttemptResult,
  type FileOutcome,
  type ImportOptions,
  type RetryNotice,
} from './import-client.js';

const answer = (status: number, body: unknown = null, retryAfter?: string): AttemptResult => ({ kind: 'answer', status, retryAfter, body });
const refusal = (status: number, code: string, retryAfter?: string) => answer(status, { error: { code, message: code.toLowerCase() } }, retryAfter);
const accepted = (records: number, duplicate = false) => answer(202, { request_id: 'r', records, ...(duplicate ? { duplicate } : {}) });
const connectionFailed: AttemptResult = { kind: 'connection-failed', code: 'ECONNREFUSED', message: 'connect ECONNREFUSED 127.0.0.1:1' };

t.test('options: defaults, environment, and a usage error naming each bad option', async (t) => {
  const options = parseImportArgs(['acme', 'data/'], {}) as ImportOptions;
  t.match(options, {
    tenant: 'acme',
    target: 'data/',
    url: 'http://127.0.0.1:3000',
    token: '',
    concurrency: 4,
    retries: 10,
    maxDelayMs: 30_000,
    requestIdPrefix: undefined,
  });
  t.match(parseImportArgs(['acme', 'f.json'], { INGRESS_URL: 'https://in.example/', TOKEN: 'tok' }), { url: 'https://in.example', token: 'tok' });
  t.match(
    parseImportArgs([
      'acme',
      'f.json',
      '--url=http://h:1',
      '--token',
      'x',
      '--concurrency',
      '2',
      '--retries',
      '0',
      '--max-delay',
      '1.5',
      '--request-id-prefix',
      'batch_7',
    ]),
    { url: 'http://h:1', token: 'x', concurrency: 2, retries: 0, maxDelayMs: 1500, requestIdPrefix: 'batch_7' },
  );
  t.equal(parseImportArgs(['--help']), 'help');
  const bad: Array<[string[], RegExp]> = [
    [['acme'], /expected <tenant> and <file-or-folder>, got 1/],
    [['acme', 'a', 'b'], /got 3/],
    [['acme', 'f', '--concurrency', '0'], /--concurrency must be an integer from 1 to 64, got "0"/],
    [['acme', 'f', '--concurrency', '2.5'], /--concurrency/],
    [['acme', 'f', '--concurrency', 'many'], /--concurrency/],
    [['acme', 'f', '--retries', '-1'], /--retries/],
    [['acme', 'f', '--max-delay', '0'], /--max-delay/],
    [['acme', 'f', '--max-delay', 'soon'], /--max-delay/],
    [['acme', 'f', '--url', 'ftp://h'], /--url must be an http\(s\) URL/],
    [['acme', 'f', '--url', 'not a url'], /--url/],
    [['acme', 'f', '--request-id-prefix', 'a/b'], /--request-id-prefix/],
    [['acme', 'f', '--colour'], /Unknown option '--colour'/],
    [['acme', 'f', '--token'], /--token/],
  ];
  for (const [argv, message] of bad) t.throws(() => parseImportArgs(argv), { name: 'UsageError', code: 'ERR_USAGE', message }, argv.join(' '));
  t.type(
    t.throws(() => parseImportArgs(['acme'])),
    UsageError,
    'callers match on the class',
  );
});

t.test('request ids: one per file of a run, stable for its prefix, valid for the ingress', async (t) => {
  const prefix = newRunPrefix(Date.UTC(2026, 0, 1), Buffer.from([0xab, 0xcd, 0xef]));
  t.equal(prefix, `imp-${Date.UTC(2026, 0, 1).toString(36)}-abcdef`);
  const file = { path: '/data/Companies 2026.ndjson', size: 1234, mtimeMs: 1_700_000_000_000.5 };
  const id = requestIdFor(prefix, file);
  t.match(id, new RegExp(`^${prefix}-Companies-2026-ndjson-[0-9a-f]{10}$`));
  t.match(id, /^[A-Za-z0-9_-]{8,128}$/, 'the ingress accepts it');
  t.equal(requestIdFor(prefix, { ...file }), id, 'the same file under the same prefix: the same id');
  t.not(requestIdFor(prefix, { ...file, path: '/other/Companies 2026.ndjson' }), id, 'another path');
  t.not(requestIdFor(prefix, { ...file, size: 1235 }), id, 'a changed file');
  t.not(requestIdFor(prefix, { ...file, mtimeMs: file.mtimeMs + 1000 }), id, 'a touched file');
  t.not(requestIdFor('other', file), id, 'another prefix');
  t.match(requestIdFor('p'.repeat(64), { path: `/${'x'.repeat(300)}.json`, size: 1, mtimeMs: 0 }), /^[A-Za-z0-9_-]{8,128}$/, 'long names are cut');
  t.match(requestIdFor('p', { path: '/.../###', size: 1, mtimeMs: 0 }), /^p-file-[0-9a-f]{10}$/, 'a name with nothing usable');
});

t.test('which results are retried', async (t) => {
  for (const status of [408, 409, 429, 502, 503, 504]) t.ok(isRetryable(answer(status)), `${status} is retried`);
  for (const status of [202, 400, 401, 404, 413, 415, 500]) t.notOk(isRetryable(answer(status)), `${status} is final`);
  t.ok(isRetryable(connectionFailed), 'no answer: retried with the same id');
  t.notOk(isRetryable({ kind: 'file-unreadable', code: 'EACCES', message: 'denied' }), 'a local read error is final');
});

t.test('Retry-After in seconds and HTTP-date forms', async (t) => {
  const now = Date.parse('Wed, 21 Oct 2026 07:28:00 GMT');
  t.equal(parseRetryAfter('1', now), 1000);
  t.equal(parseRetryAfter(' 120 ', now), 120_000);
  t.equal(parseRetryAfter('0', now), 0);
  t.equal(parseRetryAfter('Wed, 21 Oct 2026 07:28:30 GMT', now), 30_000, 'IMF-fixdate');
  t.equal(parseRetryAfter('Wednesday, 21-Oct-26 07:28:05 GMT', now), 5000, 'obsolete RFC 850 form');
  t.equal(parseRetryAfter('Wed, 21 Oct 2026 07:27:00 GMT', now), 0, 'a date in the past: now');
  for (const malformed of [undefined, '', '-1', '1.5', 'soon', 'Wed, 99 Foo 2026 07:28:30 GMT', '2026-10-21T07:28:30Z']) {
    t.equal(parseRetryAfter(malformed, now), undefined, `malformed: ${JSON.stringify(malformed)}`);
  }
});

t.test('backoff: exponential, jittered between half and whole, capped, never under Retry-After', async (t) => {
  const low = () => 0;
  const high = () => 1;
  t.same(
    [1, 2, 3, 4].map((retry) => retryDelayMs(retry, undefined, low)),
    [250, 500, 1000, 2000],
  );
  t.same(
    [1, 2, 3, 4].map((retry) => retryDelayMs(retry, undefined, high)),
    [500, 1000, 2000, 4000],
  );
  t.equal(retryDelayMs(20, undefined, high), 30_000, 'capped at maxDelayMs');
  t.equal(retryDelayMs(20, undefined, low), 15_000);
  t.equal(retryDelayMs(3, undefined, high, { maxDelayMs: 1500 }), 1500);
  t.equal(retryDelayMs(1, 1000, low), 1000, 'Retry-After above the backoff wins');
  t.equal(retryDelayMs(6, 1000, low), 8000, 'the backoff above Retry-After wins');
  t.equal(retryDelayMs(1, 120_000, low, { maxDelayMs: 2000 }), 120_000, 'Retry-After is honoured beyond the backoff cap');
  t.equal(retryDelayMs(1, 86_400_000, low), 300_000, '… up to maxRetryAfterMs');
  const minimumOfTen = Array.from({ length: 10 }, (_, i) => retryDelayMs(i + 1, undefined, low)).reduce((a, b) => a + b, 0);
  t.ok(minimumOfTen > 60_000, `ten retries wait at least ${minimumOfTen} ms: past the ingress's 60 s claim lease`);
});

/** A fake ingress: answers in turn, and records what each attempt carried. */
function scripted(results: AttemptResult[]) {
  const attempts: number[] = [];
  const slept: number[] = [];
  const notices: RetryNotice[] = [];
  let clock = Date.parse('Wed, 21 Oct 2026 07:28:00 GMT');
  return {
    attempts,
    slept,
    notices,
    run: (retries = 5) =>
      importFile({
        file: '/data/a.json',
        size: 10,
        requestId: 'imp-1-a-json-0123456789',
        attempt: async (n) => {
          attempts.push(n);
          const result = results.shift();
          if (result === undefined) throw new Error('more attempts than scripted');
          return result;
        },
        retries,
        sleep: async (ms) => {
          slept.push(ms);
          clock += ms;
        },
        now: () => clock,
        random: () => 0,
        onRetry: (notice) => notices.push(notice),
      }),
  };
}

t.test('a file is retried through 503, a lost connection and 409 until its first result arrives', async (t) => {
  const ingress = scripted([
    refusal(503, 'TOO_MANY_UPLOADS', '1'),
    connectionFailed,
    refusal(409, 'IMPORT_IN_PROGRESS'),
    refusal(503, 'STORAGE_UNAVAILABLE', 'Wed, 21 Oct 2026 07:28:10 GMT'),
    accepted(60, true),
  ]);
  const outcome = await ingress.run();
  t.equal(outcome.verdict, 'accepted');
  t.equal(outcome.attempts, 5);
  t.equal(outcome.requestId, 'imp-1-a-json-0123456789');
  t.same(ingress.slept, [1000, 500, 1000, 10_000 - 2500], 'Retry-After honoured (seconds, then a date), backoff otherwise');
  t.same(
    ingress.notices.map((notice) => [notice.retry, notice.result.kind === 'answer' ? notice.result.status : notice.result.code]),
    [
      [1, 503],
      [2, 'ECONNREFUSED'],
      [3, 409],
      [4, 503],
    ],
  );
  t.ok(
    ingress.notices.every((notice) => notice.requestId === outcome.requestId),
    'every retry names the same request id',
  );
});

t.test('a final refusal is not retried; retries run out into "gave up"', async (t) => {
  const refused = scripted([refusal(400, 'INVALID_JSON')]);
  t.match(await refused.run(), { verdict: 'refused', attempts: 1 });
  t.same(refused.slept, []);

  const unavailable = scripted([refusal(503, 'TOO_MANY_UPLOADS', '1'), refusal(503, 'TOO_MANY_UPLOADS', '1'), refusal(503, 'TOO_MANY_UPLOADS', '1')]);
  t.match(await unavailable.run(2), { verdict: 'gave-up', attempts: 3 });
  t.equal(unavailable.slept.length, 2);

  const noRetries = scripted([connectionFailed]);
  t.match(await noRetries.run(0), { verdict: 'gave-up', attempts: 1 });
});

t.test('summary: a line per file with its request id, totals, and the exit code', async (t) => {
  const outcome = (file: string, verdict: FileOutcome['verdict'], result: AttemptResult, attempts = 1): FileOutcome => ({
    file: `/data/${file}`,
    size: 1_000_000,
    requestId: `p-${file.replace('.', '-')}-0123456789`,
    attempts,
    verdict,
    result,
  });
  const ok = outcome('a.json', 'accepted', accepted(3));
  const again = outcome('b.json', 'accepted', accepted(2, true), 3);
  const bad = outcome('c.json', 'refused', refusal(400, 'INVALID_JSON'));
  const away = outcome('d.json', 'gave-up', connectionFailed, 11);

  const allGood = summarize([ok, again], 1.25);
  t.equal(allGood.exitCode, exitCodes.ok);
  t.match(allGood.lines[0], /^ok +a\.json +202 3 records +request id p-a-json-0123456789$/);
  t.match(allGood.lines[1], /b\.json +202 2 records \(a retry: the first result\) +after 3 attempts +request id p-b-json/);
  t.match(allGood.lines.at(-1), /^2\/2 files accepted, 0 refused, 0 gave up; 5 records, 2\.0 MB accepted in 1\.3 s; exit 0/);

  const withRefusal = summarize([ok, bad, away], 2);
  t.equal(withRefusal.exitCode, exitCodes.refused, 'a refused file wins over one given up');
  t.match(withRefusal.lines[1], /^REFUSED +c\.json +400 INVALID_JSON: invalid_json +request id p-c-json/);
  t.match(withRefusal.lines[2], /^GAVE UP +d\.json +connection failed \(ECONNREFUSED\)/);
  t.match(withRefusal.lines.at(-1), /1\/3 files accepted, 1 refused, 1 gave up; .* exit 1 \(some file was refused\)/);

  t.equal(summarize([ok, away], 1).exitCode, exitCodes.gaveUp);
  t.same(exitCodes, { ok: 0, refused: 1, usage: 2, gaveUp: 3 });
});
