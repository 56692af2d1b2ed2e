/**
 * The load generators: each is a "runner" that keeps its load on for a number of seconds;
 * measuring one (CPU over the window) and merging measured slices into one result.
 */
import { createHash, randomUUID } from 'node:crypto';
import { PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import autocannon from 'autocannon';
import { Pool } from 'undici';
import { type S3Config } from '../../core/config.js';
import { type LeanS3Put } from '../../ingress/s3-put.js';
import { type CpuReport, cpuMeter } from '../lib/proc.js';
import { fmt } from '../lib/report.js';
import { cpuText } from './render.js';
import { bucket, log, settings, tenant } from './settings.js';

export function percentile(sorted: Float64Array, q: number): number {
  if (sorted.length === 0) return Number.NaN;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))] ?? Number.NaN;
}

export function latencyStats(latenciesMs: number[]): { p50: number; p99: number; max: number } {
  const sorted = Float64Array.from(latenciesMs).sort();
  return { p50: percentile(sorted, 0.5), p99: percentile(sorted, 0.99), max: sorted[sorted.length - 1] ?? Number.NaN };
}

export interface RawRun {
  latencies: number[];
  statuses: Map<number, number>;
  errors: number;
  seconds: number;
}

export type Runner = (seconds: number) => Promise<RawRun>;

export interface Measured extends RawRun {
  cpu: CpuReport;
}

export interface LoadResult {
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

export function count(statuses: Map<number, number>, status: number): void {
  statuses.set(status, (statuses.get(status) ?? 0) + 1);
}

/** autocannon with a per-response listener: exact latencies (ms, from hrtime) and status counts. */
export function cannonRunner(options: autocannon.Options): Runner {
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
export function loopRunner(concurrency: number, operation: () => Promise<number>): Runner {
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
export function undiciGetRunner(pool: Pool, concurrency: number): Runner {
  return loopRunner(concurrency, async () => {
    const { statusCode, body } = await pool.request({ path: '/', method: 'GET' });
    await body.dump();
    return statusCode;
  });
}

/** An S3 client like core/s3.ts's, but with one socket per in-flight PUT (the SDK's default agent stops at 50). */
export function benchS3(s3: S3Config, maxSockets: number): S3Client {
  return new S3Client({
    endpoint: s3.endpoint,
    region: s3.region,
    forcePathStyle: s3.forcePathStyle,
    credentials: { accessKeyId: s3.accessKeyId, secretAccessKey: s3.secretAccessKey },
    maxAttempts: 3,
    requestHandler: { httpAgent: { keepAlive: true, maxSockets } },
  });
}

export let putSequence = 0;

/** PutObjectCommand with the same headers and metadata as the ingress's small-file PUT (ingress/s3-upload.ts). */
export function sdkPutRunner(s3: S3Client, body: Buffer, concurrency: number, keyPart: string): Runner {
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
export function leanPutRunner(s3: LeanS3Put, body: Buffer, concurrency: number, keyPart: string): Runner {
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

export async function measure(runner: Runner, seconds: number, groups: Record<string, number[]>): Promise<Measured> {
  const stop = cpuMeter(groups);
  const run = await runner(seconds);
  return { ...run, cpu: stop() };
}

/** Merges measured slices: counts and latencies pooled, CPU averaged by time. */
export function summarise(label: string, runs: Measured[], ok: (status: number) => boolean, unit: string): LoadResult {
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

export const is2xx = (status: number) => status >= 200 && status < 300;

/** Warm-up, then one measured run. */
export async function phase(label: string, runner: Runner, groups: Record<string, number[]>, unit: string, seconds = settings.seconds): Promise<LoadResult> {
  log(`${label}: warm-up ${settings.warmupSeconds} s, then ${seconds} s measured`);
  await runner(settings.warmupSeconds);
  return summarise(label, [await measure(runner, seconds, groups)], is2xx, unit);
}
