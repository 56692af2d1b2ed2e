/**
 * `npm run import` (examples/cli/import.ts) as a user runs it — a child process — against a real
 * ingress on the real stack: request ids printed per file, retries of 503, 409 and refused
 * connections that end in exactly one import, refusals in the summary and the exit code.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import t, { type Test } from 'tap';
import { request } from 'undici';
import { createLogger } from '../../core/logger.js';
import { topics } from '../../core/pipeline.js';
import { createRegistry } from '../../core/registry.js';
import { requestIdFor } from '../../examples/cli/import-client.js';
import { loadIngressConfig, startIngress } from '../../ingress/index.js';
import type { FileExtractSuccess } from '../../schemas/index.js';
import { collectEvents, eventually, freePort, uniqueName } from './helpers.js';

const repoRoot = new URL('../..', import.meta.url).pathname;
const registry = createRegistry(loadIngressConfig().registry);
const decode = <T>(buffer: Buffer) => registry.decode(buffer) as Promise<T>;

const sampleObject = readFileSync(new URL('../../examples/data/json/c.json', import.meta.url));
const sampleNdjson = readFileSync(new URL('../../examples/data/json/companies-sample.ndjson', import.meta.url));

function scratchDir(t: Test, files: Record<string, Buffer | string>): string {
  const dir = mkdtempSync(join(tmpdir(), 'import-cli-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  for (const [name, content] of Object.entries(files)) writeFileSync(join(dir, name), content);
  return dir;
}

/** About 2 MB of NDJSON: big enough that an early refusal arrives while the body still streams. */
function largeNdjson(): Buffer {
  const lines = sampleNdjson.toString('utf8').trimEnd().split('\n');
  const out: string[] = [];
  for (let i = 0; i < 600; i++) {
    const record = JSON.parse(lines[i % lines.length]!);
    out.push(JSON.stringify({ ...record, permalink: `${record.permalink}-${i}` }));
  }
  return Buffer.from(`${out.join('\n')}\n`);
}

async function withIngress(t: Test, env: Record<string, string> = {}): Promise<{ url: string }> {
  const config = loadIngressConfig({ ...process.env, INGRESS_PORT: '0', INGRESS_HOST: '127.0.0.1', LOG_LEVEL: process.env.ITEST_LOG_LEVEL ?? 'warn', ...env });
  const ingress = await startIngress(config, createLogger(config.log, 'import-cli-itest'));
  t.teardown(() => ingress.close());
  return { url: `http://127.0.0.1:${ingress.port}` };
}

interface CliRun {
  stdout: () => string;
  stderr: () => string;
  /** Resolves once stderr matches; rejects if the command exits first. */
  waitForStderr: (pattern: RegExp) => Promise<RegExpMatchArray>;
  exitCode: Promise<number>;
}

/** The CLI as a user runs it: its own process, through npx and tsx. */
function runCli(t: Test, args: string[]): CliRun {
  const env = { ...process.env };
  delete env.INGRESS_URL;
  delete env.TOKEN;
  const child = spawn('npx', ['--no-install', 'tsx', 'examples/cli/import.ts', ...args], {
    cwd: repoRoot,
    env,
    stdio: ['ignore', 'pipe', 'pipe'],
    detached: true,
  });
  let stdout = '';
  let stderr = '';
  const waiters = new Set<() => void>();
  child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString('utf8')));
  child.stderr.on('data', (chunk: Buffer) => {
    stderr += chunk.toString('utf8');
    for (const waiter of waiters) waiter();
  });
  let exited = false;
  const exitCode = new Promise<number>((resolve) =>
    child.once('close', (code, signal) => {
      exited = true;
      for (const waiter of waiters) waiter();
      resolve(code ?? (signal === null ? -1 : 128));
    }),
  );
  t.teardown(() => {
    // npx → tsx → node: the whole process group this test started, by its id.
    if (!exited && child.pid !== undefined) process.kill(-child.pid, 'SIGKILL');
  });
  const waitForStderr = (pattern: RegExp) =>
    new Promise<RegExpMatchArray>((resolve, reject) => {
      const check = () => {
        const match = stderr.match(pattern);
        if (match !== null) {
          waiters.delete(check);
          resolve(match);
        } else if (exited) {
          waiters.delete(check);
          reject(new Error(`the import exited before stderr matched ${pattern}:\n${stderr}\nstdout:\n${stdout}`));
        }
      };
      waiters.add(check);
      check();
    });
  return { stdout: () => stdout, stderr: () => stderr, waitForStderr, exitCode };
}

/** The request id the CLI printed for a file. */
function printedId(run: CliRun, file: string): string | undefined {
  return run.stderr().match(new RegExp(`^${file.replaceAll('.', '\\.')}: request id ([A-Za-z0-9_-]+)$`, 'm'))?.[1];
}

async function uploadsInFlight(url: string): Promise<number> {
  const response = await request(`${url}/metrics`);
  const text = await response.body.text();
  return Number(text.match(/^ingress_uploads_in_flight(?:\{[^}]*\})? (\d+)$/m)?.[1] ?? NaN);
}

/**
 * An upload the test holds in flight until `release()` sends the rest of its body at once.
 * While held it trickles its own bytes, a few every half second: uWS drops a connection that
 * sends nothing for ~10 s, and the CLI's child process may take longer than that to start.
 */
function holdUpload(url: string, tenant: string, body: Buffer, headers: Record<string, string> = {}) {
  let released = false;
  let release: () => void = () => undefined;
  const releasedNow = new Promise<void>((resolve) => (release = () => ((released = true), resolve())));
  const trickleBytes = 64;
  const response = request(`${url}/import/${tenant}`, {
    method: 'POST',
    headers: { 'content-type': 'application/x-ndjson', ...headers },
    body: Readable.from(
      (async function* () {
        let sent = 0;
        while (!released && sent + trickleBytes < body.length) {
          yield body.subarray(sent, sent + trickleBytes);
          sent += trickleBytes;
          await Promise.race([releasedNow, new Promise((resolve) => setTimeout(resolve, 500))]);
        }
        yield body.subarray(sent);
      })(),
    ),
  }).then(async (answer) => ({ status: answer.statusCode, json: JSON.parse(await answer.body.text()) }));
  // Awaited by the test after release(); a failure before that is reported there, not as unhandled.
  response.catch(() => undefined);
  return { release, response };
}

const successesOf = (tenant: string, count: number) =>
  collectEvents<FileExtractSuccess>(topics.fileExtractSuccess.name, (value) => value.tenant === tenant, { count, decode, timeoutMs: 60_000 });

t.test('a folder: a request id per file, a refused file in the summary and exit 1, each good file imported once', async (t) => {
  const { url } = await withIngress(t);
  const tenant = uniqueName('cli');
  const dir = scratchDir(t, { 'a.json': sampleObject, 'b.ndjson': sampleNdjson, 'broken.json': '{"name": "cut off', 'notes.txt': 'skipped' });
  const run = runCli(t, [tenant, dir, '--url', url, '--concurrency', '2']);
  t.equal(await run.exitCode, 1, 'exit 1: a file was refused', { stderr: run.stderr() });

  const ids = ['a.json', 'b.ndjson', 'broken.json'].map((file) => printedId(run, file));
  t.ok(
    ids.every((id) => id !== undefined),
    'each file has a printed request id',
  );
  t.equal(new Set(ids).size, 3, 'one id per file');
  t.notOk(run.stderr().includes('notes.txt'), 'only .json/.ndjson/.jsonl files are sent');
  const [a, b, broken] = ids as [string, string, string];
  const stdout = run.stdout();
  t.match(stdout, new RegExp(`^ok +a\\.json +202 1 records +request id ${a}$`, 'm'));
  t.match(stdout, new RegExp(`^ok +b\\.ndjson +202 60 records +request id ${b}$`, 'm'));
  t.match(stdout, new RegExp(`^REFUSED +broken\\.json +400 TRUNCATED: .* +request id ${broken}$`, 'm'), 'the refusal, its code and id');
  t.match(stdout, /^2\/3 files accepted, 1 refused, 0 gave up; 61 records, .* exit 1 \(some file was refused\)$/m);

  const events = await successesOf(tenant, 2);
  t.same(events.map((event) => event.value.request_id).sort(), [a, b].sort(), 'one FileExtractSuccess per accepted file, none for the refused one');

  const badTenant = runCli(t, ['Not_A_Tenant', join(dir, 'a.json'), '--url', url]);
  t.equal(await badTenant.exitCode, 1);
  t.match(badTenant.stdout(), /^REFUSED +a\.json +400 INVALID_TENANT: /m, 'a tenant the ingress refuses');

  const usage = runCli(t, [tenant, dir, '--url', url, '--concurrency', '0']);
  t.equal(await usage.exitCode, 2, 'a bad option is a usage error');
  t.match(usage.stderr(), /error: --concurrency must be an integer from 1 to 64, got "0"\n\nusage: npm run import/);
  t.equal(usage.stdout(), '', 'nothing sent, no summary');
});

t.test('a 503 (the ingress at its upload limit) is retried after Retry-After and the file is imported once', async (t) => {
  const { url } = await withIngress(t, { INGRESS_MAX_CONCURRENT_UPLOADS: '1', INGRESS_BODY_MIN_BYTES_PER_SECOND: '0' });
  const tenant = uniqueName('cli-503');
  const held = holdUpload(url, tenant, sampleNdjson);
  await eventually('the held upload to take the only slot', async () => ((await uploadsInFlight(url)) === 1 ? true : undefined));

  const dir = scratchDir(t, { 'large.ndjson': largeNdjson() });
  const run = runCli(t, [tenant, join(dir, 'large.ndjson'), '--url', url, '--max-delay', '1']);
  const retried = await run.waitForStderr(/^large\.ndjson: 503 TOO_MANY_UPLOADS: .*; retry 1\/10 in (\d+\.\d) s, request id ([A-Za-z0-9_-]+)$/m);
  t.ok(Number(retried[1]) >= 1, 'waits at least the Retry-After: 1 the ingress sent (beyond --max-delay)');
  const id = printedId(run, 'large.ndjson');
  t.equal(retried[2], id, 'the retry carries the printed request id');

  held.release();
  t.equal((await held.response).status, 202, 'the upload that held the slot completes');
  t.equal(await run.exitCode, 0, 'exit 0: the file was accepted', { stderr: run.stderr() });
  t.match(run.stdout(), new RegExp(`^ok +large\\.ndjson +202 600 records +after \\d+ attempts +request id ${id}$`, 'm'));
  t.match(run.stdout(), /^1\/1 files accepted, 0 refused, 0 gave up; 600 records/m);

  const events = await successesOf(tenant, 2);
  t.equal(events.filter((event) => event.value.request_id === id).length, 1, 'one FileExtractSuccess for the retried file');
  t.equal(events.length, 2, 'and one for the held upload: nothing else');
});

t.test('a 409 (the same request id still in flight) is retried until the first result; one import', async (t) => {
  const { url } = await withIngress(t, { INGRESS_BODY_MIN_BYTES_PER_SECOND: '0' });
  const tenant = uniqueName('cli-409');
  const dir = scratchDir(t, { 'sample.ndjson': sampleNdjson });
  const file = join(dir, 'sample.ndjson');
  const prefix = uniqueName('rerun').replaceAll('.', '-');
  const stats = statSync(file);
  const id = requestIdFor(prefix, { path: file, size: stats.size, mtimeMs: stats.mtimeMs });
  // An earlier run of the same command (same prefix) whose upload is still in flight.
  const earlier = holdUpload(url, tenant, sampleNdjson, { 'x-request-id': id });
  await eventually('the earlier upload to be in flight', async () => ((await uploadsInFlight(url)) === 1 ? true : undefined));

  const run = runCli(t, [tenant, file, '--url', url, '--max-delay', '1', '--request-id-prefix', prefix]);
  await run.waitForStderr(new RegExp(`^sample\\.ndjson: 409 IMPORT_IN_PROGRESS: .*; retry 1/10 in .*, request id ${id}$`, 'm'));
  t.equal(printedId(run, 'sample.ndjson'), id, 'the id is the one the prefix names for this file');

  earlier.release();
  const first = await earlier.response;
  t.equal(first.status, 202);
  t.equal(await run.exitCode, 0, 'exit 0: the file was accepted', { stderr: run.stderr() });
  t.match(run.stdout(), new RegExp(`^ok +sample\\.ndjson +202 60 records \\(a retry: the first result\\) +after \\d+ attempts +request id ${id}$`, 'm'));

  const events = await successesOf(tenant, 1);
  t.equal(events.length, 1, 'one FileExtractSuccess for the two uploads of the id');
  t.equal(events[0]!.value.key, first.json.key);
});

t.test('refused connections (started before the ingress listens) are retried; the file is imported once', async (t) => {
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  const tenant = uniqueName('cli-conn');
  const dir = scratchDir(t, { 'a.json': sampleObject });
  const run = runCli(t, [tenant, join(dir, 'a.json'), '--url', url, '--max-delay', '1', '--retries', '100']);
  await run.waitForStderr(/^a\.json: connection failed \(ECONNREFUSED\): .*; retry 1\/100 in /m);

  await withIngress(t, { INGRESS_PORT: String(port) });
  t.equal(await run.exitCode, 0, 'exit 0: the file was accepted', { stderr: run.stderr() });
  const id = printedId(run, 'a.json');
  t.match(run.stdout(), new RegExp(`^ok +a\\.json +202 1 records +after \\d+ attempts +request id ${id}$`, 'm'));
  const events = await successesOf(tenant, 1);
  t.same(
    events.map((event) => event.value.request_id),
    [id],
    'one FileExtractSuccess, under the printed id',
  );
});
