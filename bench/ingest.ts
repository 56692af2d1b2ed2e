/**
 * bench:ingest — how close the ingress gets to the machine's own ceilings, measured in ONE run
 * so that the ratios hold even on a noisy shared machine:
 *
 *   (a)  hello-world uWebSockets.js (GET / → "ok"), 64 connections: the HTTP ceiling
 *   (b)  POST /import/<tenant> of ~5 KB NDJSON files, 64 connections, against a real ingress in
 *        a child process (node --import tsx ingress/main.ts): req/s, p50/p99, every answer 202?
 *   (b⁰) the same against an ingress with INGRESS_DURABLE_CLAIMS=false: what the durable
 *        request-id claim (ingress/import-claims.ts: two conditional S3 writes) costs per import
 *   (c)  raw S3 PutObject (@aws-sdk/client-s3) of the same bytes, 64 in flight: the storage ceiling
 *   (c′) the same PUTs through the ingress's own lean PUT (ingress/s3-put.ts: SigV4 by hand over an
 *        undici Pool): how much of (c) is the SDK's CPU
 *   (d)  one 200 MiB NDJSON upload streamed from disk: MB/s and the ingress's RSS growth
 * plus, for the published figures in /work/shared/FIELD-NOTES.md: uWS vs node:http with
 * `-c100 -p10`, MinIO 4 KiB PUTs with 1 and 2 in flight, and an undici Pool client on (a) to show
 * which client costs less.
 *
 * Load generator: autocannon's programmatic API (raw sockets, pre-encoded requests, per-response
 * latency in ms from hrtime), in this process; every server runs in a child process. (b), (c) and
 * (c′) run in interleaved rounds so that a change in the machine's load reaches all three.
 * Results go to stdout, bench/tmp/ingest-last.json and the `## bench:ingest` section of
 * bench/results.md (`tsx bench/ingest.ts --render-only` re-renders it from the JSON). Everything
 * the run writes to S3 is under `bench-<timestamp>/` and is deleted at the end, as is the temp
 * file. The ingress's FileExtractSuccess events stay in Kafka (they cannot be deleted).
 *
 * Environment: BENCH_SECONDS (10) measured seconds per phase, BENCH_WARMUP_SECONDS (3),
 * BENCH_ROUNDS (2), BENCH_CONNECTIONS (64), BENCH_FILE_BYTES (5000), BENCH_BIG_MIB (200),
 * BENCH_PHASES (a,b,c,d,pub; a subset leaves results.md alone), BENCH_CPU_PROF=1 (the ingress of
 * (b) runs with --cpu-prof into bench/tmp/prof; summarise with bench/cpuprofile-top.ts), plus the
 * usual S3_* / KAFKA_* / SCHEMA_REGISTRY_URL.
 */
import { createHash, randomUUID } from 'node:crypto';
import { createReadStream, mkdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { dirname, join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import {
  AbortMultipartUploadCommand,
  DeleteObjectsCommand,
  ListMultipartUploadsCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  S3Client,
} from '@aws-sdk/client-s3';
import autocannon from 'autocannon';
import { Pool, request } from 'undici';
import { loadConfig, type S3Config } from '../core/config.js';
import { createLeanS3Put, type LeanS3Put } from '../ingress/s3-put.js';
import { generateCompanies, writeCompanies } from '../examples/generate/companies.js';
import { freePort, spawnSource, stopChild, waitForHttp, type Child } from './lib/children.js';
import { envNumber } from './lib/env.js';
import { finding } from './lib/findings.js';
import { metric, scrape, type Sample } from './lib/metrics.js';
import { cpuMeter, findPids, medianRss, resetHwm, sampleRssPeaks, vm, type CpuReport } from './lib/proc.js';
import { published } from './lib/published.js';
import { cpuText as cpuLine, fmt, machineInfo, machineLine, verdict, writeSection, type Machine } from './lib/report.js';
import { createLog, runMain, stopOnInterrupt } from './lib/run.js';
import { spawnIngress } from './lib/services.js';

// ---------------------------------------------------------------------------------------------
// Settings

const MiB = 1024 * 1024;
const settings = {
  seconds: envNumber('BENCH_SECONDS', 10),
  warmupSeconds: envNumber('BENCH_WARMUP_SECONDS', 3),
  connections: Math.round(envNumber('BENCH_CONNECTIONS', 64)),
  fileBytes: Math.round(envNumber('BENCH_FILE_BYTES', 5000)),
  bigMiB: envNumber('BENCH_BIG_MIB', 200),
  rounds: Math.round(envNumber('BENCH_ROUNDS', 2)),
  phases: new Set((process.env.BENCH_PHASES ?? 'a,b,c,d,pub').split(',').map((phase) => phase.trim())),
  cpuProf: process.env.BENCH_CPU_PROF === '1',
};
const allPhases = ['a', 'b', 'c', 'd', 'pub'].every((phase) => settings.phases.has(phase));

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const tmpDir = join(root, 'bench', 'tmp');
const resultsFile = join(root, 'bench', 'results.md');
const config = loadConfig();
const bucket = config.s3.bucket;
const tenant = `bench-${Date.now()}`;
// claimRatio: issue 11's bound on the durable request-id claim (under 10% of imports/s).
const targets = { bOverC: 0.7, p99Ms: 50, rssMiB: 150, claimRatio: 0.9 };
const log = createLog('bench:ingest');

// ---------------------------------------------------------------------------------------------
// Statistics

function percentile(sorted: Float64Array, q: number): number {
  if (sorted.length === 0) return Number.NaN;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))] ?? Number.NaN;
}

function latencyStats(latenciesMs: number[]): { p50: number; p99: number; max: number } {
  const sorted = Float64Array.from(latenciesMs).sort();
  return { p50: percentile(sorted, 0.5), p99: percentile(sorted, 0.99), max: sorted[sorted.length - 1] ?? Number.NaN };
}

// ---------------------------------------------------------------------------------------------
// Child processes (servers under test); only the ones this run started are ever signalled

// The servers under test run from their TypeScript source (`node --import tsx`), as results.md says.

async function startHello(kind: 'uws' | 'node'): Promise<Child> {
  const port = await freePort();
  const child = spawnSource(`hello-${kind}`, 'bench/hello-server.ts', [kind, String(port)], process.env, `http://127.0.0.1:${port}`);
  await waitForHttp(child, '/', 30_000);
  return child;
}

async function startIngressChild(name: string, nodeArgs: string[] = [], env: NodeJS.ProcessEnv = {}): Promise<Child> {
  const child = await spawnIngress({ name, nodeArgs, env, fromSource: true });
  await waitForHttp(child, '/readiness', 120_000);
  return child;
}

// ---------------------------------------------------------------------------------------------
// Load generators: each is a "runner" that keeps its load on for a number of seconds

interface RawRun {
  latencies: number[];
  statuses: Map<number, number>;
  errors: number;
  seconds: number;
}

type Runner = (seconds: number) => Promise<RawRun>;

interface Measured extends RawRun {
  cpu: CpuReport;
}

interface LoadResult {
  count: number;
  seconds: number;
  /** Successful answers (2xx; for (b) only 202) per second. */
  rate: number;
  p50: number;
  p99: number;
  max: number;
  statuses: Record<string, number>;
  errors: number;
  cpu: CpuReport;
  /** Per-slice rates when the phase ran in interleaved rounds. */
  slices: number[];
}

function count(statuses: Map<number, number>, status: number): void {
  statuses.set(status, (statuses.get(status) ?? 0) + 1);
}

/** autocannon with a per-response listener: exact latencies (ms, from hrtime) and status counts. */
function cannonRunner(options: autocannon.Options): Runner {
  return (seconds) =>
    new Promise((resolve, reject) => {
      const latencies: number[] = [];
      const statuses = new Map<number, number>();
      const instance = autocannon({ ...options, duration: seconds }, (error: unknown, result: autocannon.Result) => {
        if (error) reject(error instanceof Error ? error : new Error('autocannon failed', { cause: error }));
        else resolve({ latencies, statuses, errors: result.errors + result.timeouts, seconds: result.duration });
      });
      instance.on('response', (_client, statusCode, _bytes, responseTime) => {
        latencies.push(responseTime);
        count(statuses, statusCode);
      });
    });
}

/** `concurrency` loops, each awaiting one operation at a time until the deadline. */
function loopRunner(concurrency: number, operation: () => Promise<number>): Runner {
  return async (seconds) => {
    const latencies: number[] = [];
    const statuses = new Map<number, number>();
    let errors = 0;
    let lastError: unknown;
    const started = performance.now();
    const deadline = started + seconds * 1000;
    await Promise.all(
      Array.from({ length: concurrency }, async () => {
        while (performance.now() < deadline) {
          const t0 = performance.now();
          try {
            const status = await operation();
            latencies.push(performance.now() - t0);
            count(statuses, status);
          } catch (error) {
            errors++;
            lastError = error;
          }
        }
      }),
    );
    if (errors > 0) log(`${errors} operations failed, last: ${String(lastError)}`);
    return { latencies, statuses, errors, seconds: (performance.now() - started) / 1000 };
  };
}

/** GET / through an undici Pool: the alternative client, to show which one costs less. */
function undiciGetRunner(pool: Pool, concurrency: number): Runner {
  return loopRunner(concurrency, async () => {
    const { statusCode, body } = await pool.request({ path: '/', method: 'GET' });
    await body.dump();
    return statusCode;
  });
}

/** An S3 client like core/s3.ts's, but with one socket per in-flight PUT (the SDK's default agent stops at 50). */
function benchS3(s3: S3Config, maxSockets: number): S3Client {
  return new S3Client({
    endpoint: s3.endpoint,
    region: s3.region,
    forcePathStyle: s3.forcePathStyle,
    credentials: { accessKeyId: s3.accessKeyId, secretAccessKey: s3.secretAccessKey },
    maxAttempts: 3,
    requestHandler: { httpAgent: { keepAlive: true, maxSockets } },
  });
}

let putSequence = 0;

/** PutObjectCommand with the same headers and metadata as the ingress's small-file PUT (ingress/s3-upload.ts). */
function sdkPutRunner(s3: S3Client, body: Buffer, concurrency: number, keyPart: string): Runner {
  const sha256 = createHash('sha256').update(body).digest('hex');
  const records = String(
    body
      .toString('utf8')
      .split('\n')
      .filter((line) => line !== '').length,
  );
  return loopRunner(concurrency, async () => {
    const put = await s3.send(
      new PutObjectCommand({
        Bucket: bucket,
        Key: `${tenant}/raw/${keyPart}/${putSequence++}.json`,
        Body: body,
        ContentLength: body.length,
        ContentType: 'application/x-ndjson',
        Metadata: { 'request-id': randomUUID(), tenant, sha256, 'record-count': records, format: 'ndjson' },
      }),
    );
    return put.$metadata.httpStatusCode ?? 200;
  });
}

/**
 * The same PUTs without the AWS SDK: the ingress's own lean PUT (ingress/s3-put.ts: SigV4 with the
 * payload hash signed, over an undici Pool). It shows how much of (c) is MinIO and how much is
 * the SDK's per-request CPU.
 */
function leanPutRunner(s3: LeanS3Put, body: Buffer, concurrency: number, keyPart: string): Runner {
  const sha256 = createHash('sha256').update(body).digest('hex');
  return loopRunner(concurrency, async () => {
    await s3.put({
      key: `${tenant}/raw/${keyPart}/${putSequence++}.json`,
      body,
      contentType: 'application/x-ndjson',
      metadata: { 'request-id': randomUUID() },
      sha256,
    });
    return 200;
  });
}

async function measure(runner: Runner, seconds: number, groups: Record<string, number[]>): Promise<Measured> {
  const stop = cpuMeter(groups);
  const run = await runner(seconds);
  return { ...run, cpu: stop() };
}

/** Merges measured slices: counts and latencies pooled, CPU averaged by time. */
function summarise(label: string, runs: Measured[], ok: (status: number) => boolean, unit: string): LoadResult {
  const statuses = new Map<number, number>();
  const latencies: number[] = [];
  let seconds = 0;
  let errors = 0;
  const cpu: CpuReport = { groups: {}, machine: 0, others: 0, seconds: 0 };
  for (const run of runs) {
    for (const [status, n] of run.statuses) statuses.set(status, (statuses.get(status) ?? 0) + n);
    for (const latency of run.latencies) latencies.push(latency);
    seconds += run.seconds;
    errors += run.errors;
    for (const [name, value] of Object.entries(run.cpu.groups)) cpu.groups[name] = (cpu.groups[name] ?? 0) + value * run.seconds;
    cpu.machine += run.cpu.machine * run.seconds;
    cpu.others += run.cpu.others * run.seconds;
  }
  for (const name of Object.keys(cpu.groups)) cpu.groups[name] = (cpu.groups[name] ?? 0) / seconds;
  cpu.machine /= seconds;
  cpu.others /= seconds;
  cpu.seconds = seconds;
  const good = (run: RawRun) => [...run.statuses].reduce((sum, [status, n]) => sum + (ok(status) ? n : 0), 0);
  const result: LoadResult = {
    count: latencies.length,
    seconds,
    rate: runs.reduce((sum, run) => sum + good(run), 0) / seconds,
    ...latencyStats(latencies),
    statuses: Object.fromEntries([...statuses].map(([status, n]) => [String(status), n])),
    errors,
    cpu,
    slices: runs.map((run) => good(run) / run.seconds),
  };
  log(
    `${label}: ${fmt(result.rate)} ${unit}${runs.length > 1 ? ` (slices ${result.slices.map((rate) => fmt(rate)).join(', ')})` : ''}, ` +
      `p50 ${fmt(result.p50, 2)} ms, p99 ${fmt(result.p99, 2)} ms, answers ${JSON.stringify(result.statuses)}, errors ${errors}, CPU ${cpuText(cpu)}`,
  );
  return result;
}

const is2xx = (status: number) => status >= 200 && status < 300;

/** Warm-up, then one measured run. */
async function phase(label: string, runner: Runner, groups: Record<string, number[]>, unit: string, seconds = settings.seconds): Promise<LoadResult> {
  log(`${label}: warm-up ${settings.warmupSeconds} s, then ${seconds} s measured`);
  await runner(settings.warmupSeconds);
  return summarise(label, [await measure(runner, seconds, groups)], is2xx, unit);
}

// ---------------------------------------------------------------------------------------------
// The ingress's own /metrics (prom-client text), for the "what limits it" diagnosis

interface IngressBreakdown {
  windowSeconds: number;
  requestMeanMs: number;
  s3PutMeanMs: number;
  s3PutCount: number;
  /** Mean time from handing one event to the producer until acks=all acknowledged it. */
  kafkaSendMeanMs: number;
  /** Events acknowledged (one per send: librdkafka batches them itself, for linger.ms). */
  kafkaSends: number;
  /** Sum of per-event send durations / window: the mean number of events awaiting their ack (Little's law). */
  kafkaInFlight: number;
  eventLoopLagP99Ms: number;
  s3Operations: Record<string, { count: number; meanMs: number; sumSeconds: number }>;
}

interface MetricsWindow {
  before: Sample[];
  after: Sample[];
  seconds: number;
}

/** The ingress's own view of one or more measured windows (deltas of its counters and histograms). */
function breakdown(windows: MetricsWindow[]): IngressBreakdown {
  const delta = (name: string, labels: Record<string, string> = {}) =>
    windows.reduce((sum, window) => sum + metric(window.after, name, labels) - metric(window.before, name, labels), 0);
  const mean = (base: string, labels: Record<string, string> = {}) => {
    const count = delta(`${base}_count`, labels);
    return count === 0 ? Number.NaN : delta(`${base}_sum`, labels) / count;
  };
  const windowSeconds = windows.reduce((sum, window) => sum + window.seconds, 0);
  const s3Operations: IngressBreakdown['s3Operations'] = {};
  for (const sample of windows.at(-1)?.after ?? []) {
    if (sample.name !== 'ingress_s3_request_duration_seconds_count') continue;
    const operation = sample.labels.operation ?? '?';
    const labels = { operation, result: sample.labels.result ?? 'ok' };
    const count = delta('ingress_s3_request_duration_seconds_count', labels);
    if (count === 0) continue;
    const sumSeconds = delta('ingress_s3_request_duration_seconds_sum', labels);
    s3Operations[`${operation}/${labels.result}`] = { count, meanMs: (sumSeconds / count) * 1000, sumSeconds };
  }
  return {
    windowSeconds,
    requestMeanMs: mean('ingress_http_request_duration_seconds') * 1000,
    s3PutMeanMs: mean('ingress_s3_request_duration_seconds', { operation: 'PutObject', result: 'ok' }) * 1000,
    s3PutCount: delta('ingress_s3_request_duration_seconds_count', { operation: 'PutObject', result: 'ok' }),
    kafkaSendMeanMs: mean('ingress_kafka_send_duration_seconds', { result: 'ok' }) * 1000,
    kafkaSends: delta('ingress_kafka_send_duration_seconds_count', { result: 'ok' }),
    kafkaInFlight: delta('ingress_kafka_send_duration_seconds_sum') / windowSeconds,
    // prom-client resets its event-loop histogram at every scrape: each `after` covers its window.
    eventLoopLagP99Ms: Math.max(...windows.map((window) => metric(window.after, 'nodejs_eventloop_lag_p99_seconds'))) * 1000,
    s3Operations,
  };
}

// ---------------------------------------------------------------------------------------------
// Test data

/** A few company-like NDJSON lines, about `bytes` long in total. */
function smallNdjson(bytes: number): Buffer {
  let text = '';
  for (const record of generateCompanies({ count: 1000, seed: 7, bytesPerRecord: Math.round(bytes / 4) })) {
    const line = `${record.line}\n`;
    if (text !== '' && Buffer.byteLength(text + line) > bytes * 1.1) continue;
    text += line;
    if (Buffer.byteLength(text) >= bytes * 0.95) break;
  }
  return Buffer.from(text);
}

// ---------------------------------------------------------------------------------------------
// Formatting

/** CPU on the machine this runs on. */
const cpuText = (cpu: CpuReport) => cpuLine(cpu, os.availableParallelism());

// ---------------------------------------------------------------------------------------------
// The run

interface BigUpload {
  bytes: number;
  records: number;
  generateSeconds: number;
  seconds: number;
  bodySentSeconds: number;
  mbPerSecond: number;
  status: number;
  answer: Record<string, unknown>;
  idleRss: number;
  peakRssSampled: number;
  peakRssHwm: number;
  hwmReset: boolean;
  peakMinusIdle: number;
  cpu: CpuReport;
  ingress: IngressBreakdown;
}

interface Results {
  date: string;
  machine: Machine;
  settings: Omit<typeof settings, 'phases'> & { phases: string[]; fileBytesActual: number; fileRecords: number };
  a?: LoadResult;
  aUndici?: LoadResult;
  pubUws?: LoadResult;
  pubNode?: LoadResult;
  b?: LoadResult & { ingress: IngressBreakdown; rssAfterMiB: number };
  bNoClaims?: LoadResult;
  c?: LoadResult;
  cMinimal?: LoadResult;
  c1?: LoadResult;
  c2?: LoadResult;
  d?: BigUpload;
  cleanup?: { deletedObjects: number; abortedUploads: number };
}

async function deleteTenantPrefix(s3: S3Client): Promise<{ deletedObjects: number; abortedUploads: number }> {
  let deletedObjects = 0;
  let abortedUploads = 0;
  // The files, then the request-id claims (ingress/import-claims.ts keeps them under _claims/).
  for (const prefix of [`${tenant}/`, `_claims/${tenant}/`]) {
    let token: string | undefined;
    do {
      const listed = await s3.send(new ListObjectsV2Command({ Bucket: bucket, Prefix: prefix, ContinuationToken: token }));
      const keys = (listed.Contents ?? []).flatMap((object) => (object.Key === undefined ? [] : [{ Key: object.Key }]));
      if (keys.length > 0) {
        const deleted = await s3.send(new DeleteObjectsCommand({ Bucket: bucket, Delete: { Objects: keys, Quiet: true } }));
        if ((deleted.Errors ?? []).length > 0) log(`cleanup: ${deleted.Errors?.length} objects not deleted`);
        deletedObjects += keys.length - (deleted.Errors ?? []).length;
      }
      token = listed.IsTruncated ? listed.NextContinuationToken : undefined;
    } while (token !== undefined);
  }
  const uploads = await s3.send(new ListMultipartUploadsCommand({ Bucket: bucket, Prefix: `${tenant}/` }));
  for (const upload of uploads.Uploads ?? []) {
    if (upload.Key === undefined || upload.UploadId === undefined) continue;
    await s3.send(new AbortMultipartUploadCommand({ Bucket: bucket, Key: upload.Key, UploadId: upload.UploadId }));
    abortedUploads++;
  }
  return { deletedObjects, abortedUploads };
}

async function post(url: string, body: Buffer): Promise<{ status: number; json: Record<string, unknown> }> {
  const response = await request(url, { method: 'POST', body, headers: { 'content-type': 'application/x-ndjson' } });
  const text = await response.body.text();
  return { status: response.statusCode, json: JSON.parse(text) as Record<string, unknown> };
}

async function main(): Promise<void> {
  mkdirSync(tmpDir, { recursive: true });
  const stack = findPids(new Set());
  const body = smallNdjson(settings.fileBytes);
  const body4k = body.subarray(0, 4096);
  const s3 = benchS3(config.s3, Math.max(settings.connections, 2));
  const results: Results = {
    date: new Date().toISOString(),
    machine: machineInfo(),
    settings: {
      ...settings,
      phases: [...settings.phases],
      fileBytesActual: body.length,
      fileRecords: body
        .toString('utf8')
        .split('\n')
        .filter((line) => line !== '').length,
    },
  };
  log(`tenant ${tenant}; ${settings.connections} connections; ${settings.seconds} s per phase; body ${body.length} bytes`);
  log(`stack pids: minio ${stack.minio.join(',') || '?'}, kafka ${stack.kafka.join(',') || '?'}, registry ${stack.registry.join(',') || '?'}`);
  const stackGroups = { minio: stack.minio, kafka: stack.kafka };
  const bigFile = join(tmpDir, `ingest-${settings.bigMiB}MiB.ndjson`);

  try {
    // (a) the HTTP ceiling, plus the client check and the published-figure configuration
    if (settings.phases.has('a') || settings.phases.has('pub')) {
      const hello = await startHello('uws');
      const groups = { loadgen: [process.pid], server: [hello.pid] };
      const url = `${hello.url}/`;
      try {
        if (settings.phases.has('a')) {
          results.a = await phase('(a) uWS hello-world, autocannon', cannonRunner({ url, connections: settings.connections }), groups, 'req/s');
          const pool = new Pool(hello.url, { connections: settings.connections, pipelining: 1 });
          try {
            results.aUndici = await phase('(a′) uWS hello-world, undici Pool', undiciGetRunner(pool, settings.connections), groups, 'req/s');
          } finally {
            await pool.close();
          }
        }
        if (settings.phases.has('pub')) {
          results.pubUws = await phase('(pub) uWS hello-world -c100 -p10', cannonRunner({ url, connections: 100, pipelining: 10 }), groups, 'req/s');
        }
      } finally {
        await stopChild(hello);
      }
      if (settings.phases.has('pub')) {
        const node = await startHello('node');
        try {
          results.pubNode = await phase(
            '(pub) node:http hello-world -c100 -p10',
            cannonRunner({ url: `${node.url}/`, connections: 100, pipelining: 10 }),
            { loadgen: [process.pid], server: [node.pid] },
            'req/s',
          );
        } finally {
          await stopChild(node);
        }
      }
    }

    // (b) the real ingress in a child process, (c) the same PUTs with the SDK, (c′) without it:
    // measured in interleaved rounds (b c c′, then c′ c b, ...) so that a change in the machine's
    // load while the run goes on reaches all three alike.
    if (settings.phases.has('b') || settings.phases.has('c')) {
      const profDir = join(tmpDir, 'prof');
      const ingress = settings.phases.has('b')
        ? await startIngressChild('ingress-b', settings.cpuProf ? ['--cpu-prof', `--cpu-prof-dir=${profDir}`] : [])
        : undefined;
      const unclaimed = settings.phases.has('b') ? await startIngressChild('ingress-b0', [], { INGRESS_DURABLE_CLAIMS: 'false' }) : undefined;
      const leanPut = settings.phases.has('c') ? createLeanS3Put(config.s3, { connections: settings.connections }) : undefined;
      const cGroups = { loadgen: [process.pid], ...stackGroups };
      try {
        interface Contestant {
          key: 'b' | 'bNoClaims' | 'c' | 'cMinimal';
          label: string;
          runner: Runner;
          groups: Record<string, number[]>;
          slices: Measured[];
          windows: MetricsWindow[];
        }
        const contestants: Contestant[] = [];
        if (ingress !== undefined) {
          const first = await post(`${ingress.url}/import/${tenant}`, body);
          if (first.status !== 202) throw new Error(`the ingress answered ${first.status}: ${JSON.stringify(first.json)}`);
          log(`(b) sanity check: 202, ${String(first.json.records)} records, key ${String(first.json.key)}`);
          contestants.push({
            key: 'b',
            label: '(b) ingress POST /import',
            runner: cannonRunner({
              url: ingress.url,
              connections: settings.connections,
              requests: [{ method: 'POST', path: `/import/${tenant}`, headers: { 'content-type': 'application/x-ndjson' }, body }],
            }),
            groups: { loadgen: [process.pid], server: [ingress.pid], ...stackGroups },
            slices: [],
            windows: [],
          });
        }
        if (unclaimed !== undefined) {
          contestants.push({
            key: 'bNoClaims',
            label: '(b⁰) ingress POST /import, no durable claims',
            runner: cannonRunner({
              url: unclaimed.url,
              connections: settings.connections,
              requests: [{ method: 'POST', path: `/import/${tenant}`, headers: { 'content-type': 'application/x-ndjson' }, body }],
            }),
            groups: { loadgen: [process.pid], server: [unclaimed.pid], ...stackGroups },
            slices: [],
            windows: [],
          });
        }
        if (leanPut !== undefined) {
          contestants.push(
            { key: 'c', label: '(c) S3 PutObject, SDK', runner: sdkPutRunner(s3, body, settings.connections, 'c'), groups: cGroups, slices: [], windows: [] },
            {
              key: 'cMinimal',
              label: '(c′) S3 PUT, no SDK',
              runner: leanPutRunner(leanPut, body, settings.connections, 'c-minimal'),
              groups: cGroups,
              slices: [],
              windows: [],
            },
          );
        }
        for (const contestant of contestants) {
          log(`${contestant.label}: warm-up ${settings.warmupSeconds} s`);
          await contestant.runner(settings.warmupSeconds);
        }
        const sliceSeconds = settings.seconds / settings.rounds;
        for (let round = 0; round < settings.rounds; round++) {
          for (const contestant of round % 2 === 0 ? contestants : [...contestants].reverse()) {
            // Requests cut off at the end of the previous slice finish in the background; let them.
            await sleep(1000);
            log(`${contestant.label}: round ${round + 1}/${settings.rounds}, ${fmt(sliceSeconds, 1)} s`);
            if (contestant.key === 'b' && ingress !== undefined) {
              const before = await scrape(ingress.url);
              const started = performance.now();
              contestant.slices.push(await measure(contestant.runner, sliceSeconds, contestant.groups));
              contestant.windows.push({ before, after: await scrape(ingress.url), seconds: (performance.now() - started) / 1000 });
            } else {
              contestant.slices.push(await measure(contestant.runner, sliceSeconds, contestant.groups));
            }
          }
        }
        for (const contestant of contestants) {
          if (contestant.key === 'b' && ingress !== undefined) {
            results.b = {
              ...summarise(contestant.label, contestant.slices, (status) => status === 202, 'req/s (202)'),
              ingress: breakdown(contestant.windows),
              rssAfterMiB: vm(ingress.pid, 'VmRSS') / MiB,
            };
            log(`(b) ingress metrics: ${JSON.stringify(results.b.ingress)}`);
          } else if (contestant.key === 'bNoClaims') {
            results.bNoClaims = summarise(contestant.label, contestant.slices, (status) => status === 202, 'req/s (202)');
          } else if (contestant.key === 'c') {
            results.c = summarise(contestant.label, contestant.slices, is2xx, 'obj/s');
          } else if (contestant.key === 'cMinimal') {
            results.cMinimal = summarise(contestant.label, contestant.slices, is2xx, 'obj/s');
          }
        }
      } finally {
        if (ingress !== undefined) {
          await stopChild(ingress);
          // autocannon cuts off the requests in flight when a run ends; the ingress logs each as 'client went away'.
          const warnings = ingress.log.filter(
            (line) => (line.includes('"level":"warn"') || line.includes('"level":"error"')) && !line.includes('client went away'),
          );
          for (const warning of warnings.slice(-5)) log(`(b) ingress said: ${warning}`);
          if (settings.cpuProf) log(`(b) CPU profile in ${profDir} (summary: tsx bench/cpuprofile-top.ts <file>)`);
        }
        if (unclaimed !== undefined) await stopChild(unclaimed);
        await leanPut?.close();
      }
      if (settings.phases.has('c')) {
        const short = Math.max(1, settings.seconds / 2);
        results.c1 = await phase('(c1) S3 PutObject 4 KiB, 1 in flight', sdkPutRunner(s3, body4k, 1, 'c1'), cGroups, 'obj/s', short);
        results.c2 = await phase('(c2) S3 PutObject 4 KiB, 2 in flight', sdkPutRunner(s3, body4k, 2, 'c2'), cGroups, 'obj/s', short);
      }
    }

    // (d) one big upload, streamed from disk, against a fresh ingress
    if (settings.phases.has('d')) {
      const count = Math.ceil((settings.bigMiB * MiB) / 4001);
      log(`(d) generating ${settings.bigMiB} MiB (${count} records) into ${bigFile}`);
      const generated = performance.now();
      const written = await writeCompanies(bigFile, { count, seed: 2024, bytesPerRecord: 4000 });
      const generateSeconds = (performance.now() - generated) / 1000;
      const bytes = statSync(bigFile).size;
      log(`(d) generated ${fmt(bytes / MiB, 1)} MiB in ${fmt(generateSeconds, 1)} s`);
      const ingress = await startIngressChild('ingress-d');
      try {
        const warm = await post(`${ingress.url}/import/${tenant}`, body);
        if (warm.status !== 202) throw new Error(`the ingress answered ${warm.status}: ${JSON.stringify(warm.json)}`);
        await sleep(2000);
        const [idleRss = Number.NaN] = await medianRss([ingress.pid], 10);
        // Without the reset VmHWM is the peak since start; the 50 ms samples still give the peak.
        const hwmReset = resetHwm(ingress.pid);
        const sampler = sampleRssPeaks(() => [ingress.pid], 50);
        const before = await scrape(ingress.url);
        const stop = cpuMeter({ loadgen: [process.pid], server: [ingress.pid], ...stackGroups });
        const started = performance.now();
        let bodySent = Number.NaN;
        const stream = createReadStream(bigFile, { highWaterMark: MiB });
        stream.once('end', () => (bodySent = performance.now()));
        log(`(d) uploading ${fmt(bytes / MiB, 1)} MiB`);
        let status: number;
        let answer: Record<string, unknown>;
        try {
          const response = await request(`${ingress.url}/import/${tenant}`, {
            method: 'POST',
            body: stream,
            headers: { 'content-type': 'application/x-ndjson', 'content-length': String(bytes), 'x-filename': 'bench-big.ndjson' },
            headersTimeout: 600_000,
            bodyTimeout: 600_000,
          });
          status = response.statusCode;
          answer = JSON.parse(await response.body.text()) as Record<string, unknown>;
        } finally {
          sampler.stop();
        }
        const sampled = sampler.peak(ingress.pid);
        const peakRssSampled = Number.isNaN(sampled) ? idleRss : Math.max(idleRss, sampled);
        const seconds = (performance.now() - started) / 1000;
        const cpu = stop();
        const after = await scrape(ingress.url);
        const peakRssHwm = vm(ingress.pid, 'VmHWM');
        const peak = Math.max(peakRssSampled, hwmReset ? peakRssHwm : 0);
        results.d = {
          bytes,
          records: written.total,
          generateSeconds,
          seconds,
          bodySentSeconds: (bodySent - started) / 1000,
          mbPerSecond: bytes / 1e6 / seconds,
          status,
          answer,
          idleRss,
          peakRssSampled,
          peakRssHwm,
          hwmReset,
          peakMinusIdle: peak - idleRss,
          cpu,
          ingress: breakdown([{ before, after, seconds }]),
        };
        const d = results.d;
        log(
          `(d) ${status} in ${fmt(seconds, 2)} s (body sent after ${fmt(d.bodySentSeconds, 2)} s): ${fmt(d.mbPerSecond, 1)} MB/s; ` +
            `RSS idle ${fmt(idleRss / MiB, 1)} MiB, peak ${fmt(peak / MiB, 1)} MiB (sampled ${fmt(peakRssSampled / MiB, 1)}, VmHWM ${fmt(peakRssHwm / MiB, 1)}${hwmReset ? ', reset' : ''}), ` +
            `records ${String(answer.records)}/${written.total}, CPU ${cpuText(cpu)}`,
        );
        log(`(d) S3 operations: ${JSON.stringify(d.ingress.s3Operations)}`);
      } finally {
        await stopChild(ingress);
      }
    }
  } finally {
    results.machine.loadavgAfter = os.loadavg();
    try {
      results.cleanup = await deleteTenantPrefix(s3);
      log(`cleanup: deleted ${results.cleanup.deletedObjects} objects under ${tenant}/, aborted ${results.cleanup.abortedUploads} uploads`);
    } catch (error) {
      log(`cleanup of ${tenant}/ failed: ${String(error)}`);
    }
    rmSync(bigFile, { force: true });
    s3.destroy();
  }

  // Only a complete run replaces the numbers that --render-only reads.
  writeFileSync(join(tmpDir, allPhases ? 'ingest-last.json' : 'ingest-last-partial.json'), `${JSON.stringify(results, null, 2)}\n`);
  const section = renderSection(results);
  process.stdout.write(`${section}\n`);
  if (allPhases) {
    writeSection(resultsFile, '## bench:ingest', section);
    log(`wrote the "## bench:ingest" section of ${resultsFile}`);
  } else {
    log(`BENCH_PHASES is a subset: ${resultsFile} left unchanged`);
  }
}

// ---------------------------------------------------------------------------------------------
// bench/results.md

function renderSection(r: Results): string {
  const lines: string[] = [];
  const s = r.settings;
  const cores = r.machine.nproc;
  lines.push('## bench:ingest', '');
  lines.push(`Date: ${r.date}  `);
  lines.push(
    `${machineLine(r.machine)} — shared with other people's tests and with the whole local stack (3 Kafka brokers, registry, MinIO, PostgreSQL), so absolute numbers move between runs; the ratios are measured in the same run.`,
  );
  lines.push('', '```', '$ free -g', r.machine.free, '```', '');
  const envText = `BENCH_SECONDS=${s.seconds} BENCH_WARMUP_SECONDS=${s.warmupSeconds} BENCH_ROUNDS=${s.rounds} BENCH_CONNECTIONS=${s.connections} BENCH_FILE_BYTES=${s.fileBytes} BENCH_BIG_MIB=${s.bigMiB}`;
  lines.push(
    `Command: \`${envText} npm run bench:ingest\` (plain \`npm run bench:ingest\` uses the defaults BENCH_SECONDS=10 BENCH_WARMUP_SECONDS=3 BENCH_ROUNDS=2 BENCH_CONNECTIONS=64 BENCH_FILE_BYTES=5000 BENCH_BIG_MIB=200).`,
    '',
  );
  lines.push(
    `Load generator: autocannon (programmatic API) in the bench process; every server in a child process (\`node --import tsx\`). ` +
      `autocannon writes pre-encoded requests on raw sockets and parses answers with a minimal parser, so it costs less CPU per request than an undici Pool loop (row (a′) below) — on ${cores} cores the client's CPU is taken from the server's. ` +
      `Each phase: ${s.warmupSeconds} s warm-up, then ${s.seconds} s measured; (b), (c) and (c′) are measured in ${s.rounds} interleaved rounds of ${fmt(s.seconds / s.rounds, 1)} s (b c c′, then c′ c b, …) so that a change in the machine's load during the run reaches all three; latency per response from hrtime. ` +
      `Body of (b)/(c): ${s.fileBytesActual} bytes, ${s.fileRecords} company records as NDJSON (\`examples/generate/companies.ts\`; its records are 1.8-3 KB each). ` +
      `(c) uses @aws-sdk/client-s3 PutObjectCommand with the same headers/metadata as the ingress's small-file PUT, ${s.connections} sockets. ` +
      `CPU is % of one core over the measured window, from /proc: loadgen = this process, server = the child under test, others = everything else busy on the machine (registry, PostgreSQL, kernel, other people's tests).`,
    '',
  );

  lines.push('### Absolute numbers', '');
  lines.push('| phase | what | throughput | p50 | p99 | answers | CPU (% of one core) |');
  lines.push('| --- | --- | --- | --- | --- | --- | --- |');
  const row = (id: string, what: string, x: LoadResult | undefined, unit: string) => {
    if (x === undefined) return lines.push(`| ${id} | ${what} | not run | | | | |`);
    const answers = Object.entries(x.statuses)
      .map(([code, n]) => `${fmt(n)}× ${code}`)
      .join(', ');
    lines.push(
      `| ${id} | ${what} | ${fmt(x.rate)} ${unit} | ${fmt(x.p50, 2)} ms | ${fmt(x.p99, 2)} ms | ${answers}${x.errors > 0 ? `, ${x.errors} errors` : ''} | ${cpuText(x.cpu)} |`,
    );
  };
  row('(a)', `uWS hello-world GET /, ${s.connections} conn., autocannon`, r.a, 'req/s');
  row('(a′)', `same server, ${s.connections} conn., undici Pool loop (client check)`, r.aUndici, 'req/s');
  row('(b)', `ingress POST /import/<tenant>, ${s.connections} conn.`, r.b, 'req/s');
  row('(b⁰)', `the same, INGRESS_DURABLE_CLAIMS=false, ${s.connections} conn.`, r.bNoClaims, 'req/s');
  row('(c)', `S3 PutObject (@aws-sdk/client-s3), ${s.connections} in flight`, r.c, 'obj/s');
  row('(c′)', `same PUTs, hand-made SigV4 over an undici Pool (no SDK), ${s.connections} in flight`, r.cMinimal, 'obj/s');
  row('(c1)', 'S3 PutObject 4 KiB, 1 in flight', r.c1, 'obj/s');
  row('(c2)', 'S3 PutObject 4 KiB, 2 in flight', r.c2, 'obj/s');
  row('(pub-uws)', 'uWS hello-world, autocannon -c100 -p10', r.pubUws, 'req/s');
  row('(pub-node)', 'node:http hello-world, autocannon -c100 -p10', r.pubNode, 'req/s');
  if (r.d !== undefined) {
    const d = r.d;
    lines.push(
      `| (d) | one ${fmt(d.bytes / MiB, 1)} MiB NDJSON upload (${fmt(d.records)} records), undici stream from disk | ${fmt(d.mbPerSecond, 1)} MB/s (${fmt(d.seconds, 2)} s) | | | ${d.status}${d.answer.records === d.records ? `, ${fmt(d.records)} records counted` : `, records ${String(d.answer.records)} ≠ ${d.records}`} | ${cpuText(d.cpu)} |`,
    );
  } else {
    lines.push('| (d) | 200 MiB upload | not run | | | | |');
  }
  lines.push('');
  if (r.d !== undefined) {
    const d = r.d;
    lines.push(
      `(d) ingress RSS: idle ${fmt(d.idleRss / MiB, 1)} MiB (fresh ingress after one small import), peak ${fmt((d.idleRss + d.peakMinusIdle) / MiB, 1)} MiB ` +
        `(VmRSS sampled every 50 ms: ${fmt(d.peakRssSampled / MiB, 1)} MiB; VmHWM${d.hwmReset ? ' after resetting it via clear_refs' : ' since start'}: ${fmt(d.peakRssHwm / MiB, 1)} MiB). ` +
        `The body was fully read from disk after ${fmt(d.bodySentSeconds, 2)} s; the 202 came ${fmt(d.seconds - d.bodySentSeconds, 2)} s later. ` +
        `MB = 10⁶ bytes.`,
      '',
    );
  }

  lines.push('### Ratios and targets', '');
  lines.push('| measure | value | target | verdict |');
  lines.push('| --- | --- | --- | --- |');
  const b = r.b;
  const c = r.c;
  const a = r.a;
  if (b !== undefined && c !== undefined) {
    const ratio = b.rate / c.rate;
    const perRound = b.slices.map((rate, i) => (rate / (c.slices[i] ?? Number.NaN)).toFixed(2)).join(', ');
    lines.push(
      `| (b)/(c) ingress vs raw S3 PUTs (SDK) | ${ratio.toFixed(2)} (rounds: ${perRound}) | ≥ ${targets.bOverC.toFixed(2)} | ${verdict(ratio >= targets.bOverC)} |`,
    );
    if (r.cMinimal !== undefined)
      lines.push(`| (b)/(c′) ingress vs raw PUTs without the SDK | ${(b.rate / r.cMinimal.rate).toFixed(2)} | — (information) | — |`);
    const perImport = cpuMsPerOp(b, 'server');
    const perPut = cpuMsPerOp(c, 'loadgen');
    lines.push(
      `| CPU per import in the ingress ÷ CPU per SDK PUT in (c) (less sensitive to the machine's load than req/s) | ${fmt(perImport, 2)} ms ÷ ${fmt(perPut, 2)} ms = ${(perImport / perPut).toFixed(2)}` +
        `${r.cMinimal === undefined ? '' : `; a PUT without the SDK: ${fmt(cpuMsPerOp(r.cMinimal, 'loadgen'), 2)} ms`} | — (information) | — |`,
    );
  }
  if (b !== undefined && r.bNoClaims !== undefined) {
    const unclaimed = r.bNoClaims;
    const ratio = b.rate / unclaimed.rate;
    const cpu = cpuMsPerOp(b, 'server') / cpuMsPerOp(unclaimed, 'server');
    // The claim is two more (small, conditional) PUTs per import: MinIO's share says whether they are what limits it.
    const minio = cpuMsPerOp(b, 'minio') / cpuMsPerOp(unclaimed, 'minio');
    lines.push(
      `| (b)/(b⁰) imports/s with the durable request-id claim vs without (its cost: ${((1 - ratio) * 100).toFixed(1)}%; CPU per import: ingress ×${cpu.toFixed(2)}, MinIO ×${minio.toFixed(2)}) | ${ratio.toFixed(2)} | ≥ ${targets.claimRatio.toFixed(2)} | ${verdict(ratio >= targets.claimRatio)} |`,
    );
  }
  if (b !== undefined && a !== undefined) lines.push(`| (b)/(a) ingress vs hello-world | ${(b.rate / a.rate).toFixed(3)} | — (information) | — |`);
  if (b !== undefined) {
    lines.push(`| p99 of (b) | ${fmt(b.p99, 1)} ms | < ${targets.p99Ms} ms | ${verdict(b.p99 < targets.p99Ms)} |`);
    const non202 = Object.entries(b.statuses).filter(([code]) => code !== '202');
    const ok = non202.length === 0 && b.errors === 0;
    lines.push(
      `| every answer of (b) is 202 | ${ok ? `yes (${fmt(b.count)})` : `no: ${non202.map(([code, n]) => `${n}× ${code}`).join(', ')}${b.errors > 0 ? `, ${b.errors} errors` : ''}`} | all 202 | ${verdict(ok)} |`,
    );
  }
  if (r.d !== undefined) {
    const d = r.d;
    lines.push(
      `| (d) peak RSS − idle RSS | ${fmt(d.peakMinusIdle / MiB, 1)} MiB | ≤ ${targets.rssMiB} MiB | ${verdict(d.peakMinusIdle <= targets.rssMiB * MiB)} |`,
    );
    lines.push(
      `| (d) 202 with every record counted | ${d.status}, ${String(d.answer.records)} records | 202, ${d.records} | ${verdict(d.status === 202 && d.answer.records === d.records)} |`,
    );
    lines.push(`| (d) throughput | ${fmt(d.mbPerSecond, 1)} MB/s | — (information) | — |`);
  }
  lines.push('');

  lines.push('### Against the published figures (FIELD-NOTES.md; other hardware, so ratios)', '');
  lines.push('| comparison | published | here | here ÷ published |');
  lines.push('| --- | --- | --- | --- |');
  if (r.pubUws !== undefined && r.pubNode !== undefined) {
    const pubRatio = published.uwsHello / published.nodeHello;
    const ours = r.pubUws.rate / r.pubNode.rate;
    lines.push(
      `| uWS ÷ node:http, hello-world, -c100 -p10 | ${fmt(published.uwsHello)} / ${fmt(published.nodeHello)} = ${pubRatio.toFixed(2)} | ${fmt(r.pubUws.rate)} / ${fmt(r.pubNode.rate)} = ${ours.toFixed(2)} | ${(ours / pubRatio).toFixed(2)} |`,
    );
    const cpuRatio = cpuMsPerOp(r.pubNode, 'server') / cpuMsPerOp(r.pubUws, 'server');
    lines.push(
      `| server CPU per request, node:http ÷ uWS (at saturation this is the req/s ratio) | ${pubRatio.toFixed(2)} | ${cpuRatio.toFixed(2)} | ${(cpuRatio / pubRatio).toFixed(2)} |`,
    );
    lines.push(
      `| uWS hello-world req/s, -c100 -p10 | ${fmt(published.uwsHello)} | ${fmt(r.pubUws.rate)} | ${(r.pubUws.rate / published.uwsHello).toFixed(3)} |`,
    );
  }
  if (b !== undefined && r.pubUws !== undefined) {
    lines.push(
      `| ingress (b) ÷ uWS hello-world (published config) | — | ${fmt(b.rate)} / ${fmt(r.pubUws.rate)} = ${(b.rate / r.pubUws.rate).toFixed(3)} | — |`,
    );
  }
  if (r.c1 !== undefined && r.c2 !== undefined) {
    const pubScaling = published.minio2 / published.minio1;
    const ours = r.c2.rate / r.c1.rate;
    lines.push(`| MinIO 4 KiB PUTs, 1 in flight | ${fmt(published.minio1)}/s | ${fmt(r.c1.rate)}/s | ${(r.c1.rate / published.minio1).toFixed(2)} |`);
    lines.push(`| MinIO 4 KiB PUTs, 2 in flight | ${fmt(published.minio2)}/s | ${fmt(r.c2.rate)}/s | ${(r.c2.rate / published.minio2).toFixed(2)} |`);
    lines.push(`| MinIO scaling 2 ÷ 1 in flight | ${pubScaling.toFixed(2)} | ${ours.toFixed(2)} | ${(ours / pubScaling).toFixed(2)} |`);
    if (c !== undefined) lines.push(`| MinIO scaling ${s.connections} ÷ 1 in flight (~5 KB vs 4 KiB) | — | ${(c.rate / r.c1.rate).toFixed(2)} | — |`);
  }
  if (r.c1 !== undefined)
    lines.push('| note | MinIO figures here include the cost of the @aws-sdk/client-s3 client on the same 2 cores; (c′) shows the same PUTs without it | | |');
  lines.push('');

  lines.push('### What limits it', '');
  for (const paragraph of diagnosis(r)) lines.push(paragraph, '');
  return lines.join('\n');
}

/** CPU milliseconds one operation cost a process group: % of a core ÷ operations per second. */
function cpuMsPerOp(x: LoadResult, group: string): number {
  return ((x.cpu.groups[group] ?? 0) / 100 / x.rate) * 1000;
}

/** Paragraphs built from what this run observed (CPU per process, the ingress's own metrics). */
function diagnosis(r: Results): string[] {
  const out: string[] = [];
  const cores = r.machine.nproc;
  const full = cores * 100;
  const connections = r.settings.connections;
  const { a, b, c, cMinimal } = r;
  const saturatedMachine = (x: LoadResult) => x.cpu.machine >= full * 0.9;
  if (a !== undefined && r.aUndici !== undefined) {
    out.push(
      `**(a)** The hello-world phase measures this ${cores}-core machine with this client more than uWS: the load generator used ${fmt(a.cpu.groups.loadgen ?? 0)}% of a core and the server ${fmt(a.cpu.groups.server ?? 0)}% ` +
        `(others ${fmt(a.cpu.others)}%, machine ${fmt(a.cpu.machine)}% of ${full}%). ` +
        `Client CPU per request: autocannon ${fmt(cpuMsPerOp(a, 'loadgen') * 1000, 1)} µs, an undici Pool loop ${fmt(cpuMsPerOp(r.aUndici, 'loadgen') * 1000, 1)} µs ` +
        `(${(a.rate / r.aUndici.rate).toFixed(2)}× the throughput${cpuMsPerOp(a, 'loadgen') < cpuMsPerOp(r.aUndici, 'loadgen') ? '; autocannon is the cheaper client' : '; here autocannon was not cheaper'}).` +
        (b !== undefined
          ? ` (b) runs at ${((b.rate / a.rate) * 100).toFixed(1)}% of (a) with the load generator at ${fmt(b.cpu.groups.loadgen ?? 0)}% of a core: the client and uWS's HTTP layer are not what limits (b).`
          : ''),
    );
  }
  if (r.pubUws !== undefined && r.pubNode !== undefined) {
    const uws = cpuMsPerOp(r.pubUws, 'server') * 1000;
    const node = cpuMsPerOp(r.pubNode, 'server') * 1000;
    out.push(
      `**Published hello-world ratio.** At -c100 -p10 the load generator used ${fmt(r.pubUws.cpu.groups.loadgen ?? 0)}% of a core against uWS, which itself used ${fmt(r.pubUws.cpu.groups.server ?? 0)}%: ` +
        `on ${cores} shared cores the client runs out first, so the req/s ratio uWS ÷ node:http (${(r.pubUws.rate / r.pubNode.rate).toFixed(2)}) moves with the machine's load. ` +
        `Server CPU per request is steadier: uWS ${fmt(uws, 1)} µs, node:http ${fmt(node, 1)} µs, a ratio of ${(node / uws).toFixed(2)} against the published ${(published.uwsHello / published.nodeHello).toFixed(2)}.`,
    );
  }
  if (b !== undefined) {
    const ing = b.ingress;
    const server = b.cpu.groups.server ?? 0;
    let cause: string;
    if (server >= 85) {
      cause = `the ingress's single JS thread was saturated: ${fmt(server)}% of a core, ${fmt(cpuMsPerOp(b, 'server'), 2)} ms of CPU per import, event-loop delay p99 ${fmt(ing.eventLoopLagP99Ms, 0)} ms`;
    } else if (saturatedMachine(b)) {
      cause =
        `the machine was saturated (${fmt(b.cpu.machine)}% of ${full}%) and the ingress got only ${fmt(server)}% of a core (${fmt(cpuMsPerOp(b, 'server'), 2)} ms of CPU per import, event-loop delay p99 ${fmt(ing.eventLoopLagP99Ms, 0)} ms): ` +
        `MinIO ${fmt(b.cpu.groups.minio ?? 0)}%, Kafka ${fmt(b.cpu.groups.kafka ?? 0)}%, load generator ${fmt(b.cpu.groups.loadgen ?? 0)}%, others ${fmt(b.cpu.others)}%`;
    } else {
      cause = `neither the ingress thread (${fmt(server)}%) nor the machine (${fmt(b.cpu.machine)}% of ${full}%) was saturated: requests waited on I/O`;
    }
    out.push(
      `**(b)** During the measured windows ${cause}. ` +
        `Per import (the ingress's own metrics over the same windows): ${fmt(ing.requestMeanMs, 1)} ms mean from first byte to answer, of which the S3 PutObject took ${fmt(ing.s3PutMeanMs, 1)} ms ` +
        `and the Kafka send of its event (acks=all; librdkafka gathers concurrent events for linger.ms into one request per partition) ${fmt(ing.kafkaSendMeanMs, 1)} ms mean over ${fmt(ing.kafkaSends / ing.windowSeconds)} events/s, ` +
        `${fmt(ing.kafkaInFlight, 1)} events awaiting their ack on average (sum of send durations ÷ window), ` +
        `so the linger and the acks=all round trip add latency to each import rather than capping throughput. Both durations include time spent waiting for a busy event loop.`,
    );
    const needed = connections / (targets.p99Ms / 1000);
    out.push(
      `**p99 of (b).** With ${connections} connections in a closed loop, mean latency = ${connections} ÷ throughput (Little's law): ${fmt((connections / b.rate) * 1000, 0)} ms at ${fmt(b.rate)} req/s. ` +
        `Even the mean gets under ${targets.p99Ms} ms only above ${fmt(needed)} req/s` +
        (c !== undefined ? ` — ${(needed / c.rate).toFixed(1)}× the raw S3 PUT rate of (c)` : '') +
        (cMinimal !== undefined ? ` and ${(needed / cMinimal.rate).toFixed(1)}× that of (c′)` : '') +
        (c !== undefined && cMinimal !== undefined
          ? `. Raw PUTs alone at ${connections} in flight had p99 ${fmt(c.p99, 0)} ms (SDK) and ${fmt(cMinimal.p99, 0)} ms (no SDK): at this concurrency, on this machine, storage alone is over the ${targets.p99Ms} ms target before the ingress adds anything.`
          : '.'),
    );
  }
  if (b !== undefined && c !== undefined) {
    const perImport = cpuMsPerOp(b, 'server');
    const perPut = cpuMsPerOp(c, 'loadgen');
    out.push(
      `**(b)/(c).** CPU is the scarce resource on this machine. The ingress got ${fmt(b.cpu.groups.server ?? 0)}% of a core during (b), the client of (c) ${fmt(c.cpu.groups.loadgen ?? 0)}%; ` +
        `per operation the ingress spent ${fmt(perImport, 2)} ms of CPU per import against ${fmt(perPut, 2)} ms for a bare SDK PutObject (×${(perImport / perPut).toFixed(2)}), ` +
        `so with equal CPU shares (b)/(c) cannot exceed about ${(perPut / perImport).toFixed(2)}. Reaching ${targets.bOverC.toFixed(2)} at equal shares needs at most ${fmt(perPut / targets.bOverC, 2)} ms per import. ` +
        `Where the ingress's CPU goes: \`BENCH_PHASES=b BENCH_CPU_PROF=1 npm run bench:ingest\`, then \`npx tsx bench/cpuprofile-top.ts bench/tmp/prof/<main-thread file>.cpuprofile\`. ` +
        finding('ingest-cpu-profile'),
    );
  }
  if (c !== undefined) {
    const sdk = cpuMsPerOp(c, 'loadgen');
    const loadgen = c.cpu.groups.loadgen ?? 0;
    let text =
      `**(c)** The load generator used ${fmt(loadgen)}% of a core for ${fmt(c.rate)} PUTs/s with @aws-sdk/client-s3 (${fmt(sdk, 2)} ms of CPU per PUT), ` +
      `MinIO ${fmt(c.cpu.groups.minio ?? 0)}%, others ${fmt(c.cpu.others)}% (machine ${fmt(c.cpu.machine)}% of ${full}%).`;
    if (cMinimal !== undefined) {
      const minimal = cpuMsPerOp(cMinimal, 'loadgen');
      text +=
        ` Without the SDK (c′) the same PUTs cost ${fmt(minimal, 2)} ms of client CPU each (${(sdk / minimal).toFixed(1)}× less) and reached ${fmt(cMinimal.rate)}/s ` +
        `with MinIO at ${fmt(cMinimal.cpu.groups.minio ?? 0)}% (machine ${fmt(cMinimal.cpu.machine)}% of ${full}%).`;
    }
    if (loadgen >= 85) {
      text += ` So (c) is bounded by the SDK's per-request CPU in one Node process, not by MinIO — and the ingress runs that same SDK code for every file, so (b)/(c) compares like with like.`;
    } else if (saturatedMachine(c)) {
      text += ` The machine was saturated, so (c) is bounded by the CPU left over for the client and MinIO.`;
    } else {
      text += ` Neither the client nor the machine was saturated: MinIO's own latency sets (c).`;
    }
    out.push(text);
  }
  if (r.d !== undefined) {
    const d = r.d;
    const ops = Object.entries(d.ingress.s3Operations)
      .map(([name, op]) => `${name} ${op.count}× ${fmt(op.meanMs, 0)} ms`)
      .join(', ');
    out.push(
      `**(d)** ${fmt(d.mbPerSecond, 1)} MB/s with the ingress at ${fmt(d.cpu.groups.server ?? 0)}% of a core, MinIO at ${fmt(d.cpu.groups.minio ?? 0)}%, others ${fmt(d.cpu.others)}% (machine ${fmt(d.cpu.machine)}% of ${full}%). ` +
        `S3 calls during the upload: ${ops}. Parts go up one at a time and reading pauses while two parts (2 × INGRESS_PART_SIZE_BYTES) are held, so memory stays bounded and the body arrives at the pace of the part PUTs; ` +
        `after the last byte the ingress still ran the final part, CompleteMultipartUpload and a CopyObject of the whole object onto itself (to attach sha256/record-count metadata): ${fmt(d.seconds - d.bodySentSeconds, 2)} s of the ${fmt(d.seconds, 2)} s.`,
    );
  }
  return out;
}

stopOnInterrupt(log, () => {
  rmSync(join(tmpDir, `ingest-${settings.bigMiB}MiB.ndjson`), { force: true });
  return `objects under ${bucket}/${tenant}/ may remain`;
});

await runMain(log, async () => {
  if (process.argv.includes('--render-only')) {
    // Re-renders the section from the last run's numbers (bench/tmp/ingest-last.json) without measuring.
    const last = JSON.parse(readFileSync(join(tmpDir, 'ingest-last.json'), 'utf8')) as Results;
    writeSection(resultsFile, '## bench:ingest', renderSection(last));
    log(`re-rendered the "## bench:ingest" section of ${resultsFile} from bench/tmp/ingest-last.json (${last.date})`);
  } else {
    await main();
  }
});
