/**
 * bench:pipeline — the whole pipeline end to end against its database ceiling, measured in ONE
 * run so that the ratios hold on a noisy shared machine:
 *
 *   (e2e)  one NDJSON file of BENCH_PIPELINE_COUNT (20,000) seeded companies (~80 MB; seed 42,
 *          every 50th invalid, every 100th a duplicate) POSTed to a real ingress (child process),
 *          extracted, validated and loaded by BENCH_PIPELINE_REPLICAS (1) processor child(ren)
 *          (`node dist/topology/main.js run`, all stages: the services run compiled and with the
 *          image's MALLOC_MMAP_THRESHOLD_, as their images run them; the bench runs `npm run build`
 *          first). t0 = just before the POST starts
 *          streaming the file from disk; t1 = when `SELECT count(*) FROM companies WHERE tenant = $1`
 *          (polled every 150 ms) reaches the file's distinct valid permalinks. records/s = records
 *          in the file ÷ (t1 − t0). The processor's VmRSS is sampled every 50 ms.
 *   (copy) the ceiling: the same rows (the documents the pipeline stores: normalizeRecord,
 *          validateRecord, duplicates collapsed last-wins, mapped to the three tables' rows by
 *          the sink's own companyRows) COPY'd FROM STDIN by the sink's own copyRows (text format,
 *          `pg` + `pg-copy-streams`, one connection, one transaction) into the same three tables
 *          under another tenant, with none of the sink's staging, merge or offsets; timed from
 *          the mapping of the first row to COMMIT.
 *   (writer) the sink alone: createCompanyWriter writing the valid records (file order, duplicates
 *          included, as the load stage receives them) in batches of 1000, no Kafka — both of its
 *          ways: `copy` (COPY into staging tables + one merge; what the load stage uses) and
 *          `insert` (pg-promise multi-row INSERT … ON CONFLICT).
 * Both ceilings run once before and once after the pipeline (bracketing it), and their mean is
 * the reference. Before anything is measured the processor drains whatever backlog the shared
 * topics hold (other people's tests and earlier runs); that drain is reported, not counted. Then
 * one small import (BENCH_PIPELINE_WARMUP_COUNT records, another seed, its own tenant) goes
 * through the whole stack unmeasured, so that a freshly started stack (cold JVMs) and a warm
 * one give comparable numbers.
 * After the run, what validate committed for this import (RecordValidated, ValidationError) is
 * read back from Kafka by its request_id header, to show duplicates the counters cannot see.
 *
 * Results go to stdout, bench/tmp/pipeline-last-r<replicas>.json and — for runs of 20,000 records
 * without profiling — the `## bench:pipeline` section of bench/results.md (rendered from the last
 * 1-replica and 2-replica runs found in bench/tmp; `tsx bench/pipeline.ts --render-only`
 * re-renders it without measuring; the other sections are left as they are). Cleanup:
 * the rows of every tenant this run wrote (children cascade), the writer's sink_offsets rows,
 * the imported S3 object, the temp file; the children get SIGTERM. Kafka events stay.
 *
 * Environment: BENCH_PIPELINE_COUNT (20000), BENCH_PIPELINE_REPLICAS (1),
 * BENCH_PIPELINE_DRAIN_TIMEOUT_S (1200), BENCH_PIPELINE_TIMEOUT_S (1800: the measured run),
 * BENCH_PIPELINE_SETTLE_S (5: how long the lag must stay drained), BENCH_PIPELINE_WARMUP_COUNT (2000),
 * BENCH_PIPELINE_ATTEMPTS (3) and
 * BENCH_PIPELINE_OWNERSHIP_TIMEOUT_S (900): other people's integration tests start processors that
 * join the same consumer groups, so the run waits until its processors own every partition, and
 * a run during which another processor took partitions (or other people's imports went through
 * ours in bulk) is discarded and repeated (and flagged if the attempts run out), BENCH_PIPELINE_CPU_PROF=1
 * (processors run with --cpu-prof into bench/tmp/prof-pipeline; results.md left alone), plus the
 * usual S3_* / KAFKA_* / SCHEMA_REGISTRY_URL / PG*.
 */
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { createReadStream, existsSync, mkdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { dirname, join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { createInterface } from 'node:readline';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { DeleteObjectsCommand, ListObjectsV2Command } from '@aws-sdk/client-s3';
import pg from 'pg';
import { request } from 'undici';
import { loadConfig } from '../core/config.js';
import { createPostgres } from '../core/postgres.js';
import { createKafka, partitionCountsOf, readCommitted } from '../core/kafka.js';
import { topics } from '../core/pipeline.js';
import { TopicReader } from '../core/topic-reader.js';
import { createS3 } from '../core/s3.js';
import { writeCompanies } from '../examples/generate/companies.js';
import {
  companyColumnNames,
  companyRows,
  copyRows,
  createCompanyWriter,
  officeColumnNames,
  roundColumnNames,
  type SinkRecord,
  type WriteMethod,
} from '../sinks/postgres/index.js';
import { etlTopology } from '../topology/etl/topology.js';
import { loadProcessorConfig } from '../topology/config.js';
import { normalizeRecord } from '../topology/etl/normalize.js';
import { validateRecord } from '../topology/etl/validate-record.js';
import { stopChild, waitForHttp, type Child } from './lib/children.js';
import { envNumber } from './lib/env.js';
import { metric, scrape, type Sample } from './lib/metrics.js';
import { clockTicks, cpuMeter, findPids, machineTicks, medianRss, processTicks, resetHwm, sampleRssPeaks, vm, type CpuReport } from './lib/proc.js';
import { cpuText as cpuLine, fmt, machineInfo, type Machine, machineLine, mean, verdict, writeSection } from './lib/report.js';
import { finding } from './lib/findings.js';
import { createLog, runMain, stopOnInterrupt } from './lib/run.js';
import { spawnIngress, spawnProcessor } from './lib/services.js';

// ---------------------------------------------------------------------------------------------
// Settings

const MiB = 1024 * 1024;
const settings = {
  count: Math.round(envNumber('BENCH_PIPELINE_COUNT', 20_000)),
  replicas: Math.round(envNumber('BENCH_PIPELINE_REPLICAS', 1)),
  drainTimeoutSeconds: envNumber('BENCH_PIPELINE_DRAIN_TIMEOUT_S', 1200),
  runTimeoutSeconds: envNumber('BENCH_PIPELINE_TIMEOUT_S', 1800),
  settleSeconds: envNumber('BENCH_PIPELINE_SETTLE_S', 5),
  attempts: Math.round(envNumber('BENCH_PIPELINE_ATTEMPTS', 3)),
  ownershipTimeoutSeconds: envNumber('BENCH_PIPELINE_OWNERSHIP_TIMEOUT_S', 900),
  warmupCount: Math.round(envNumber('BENCH_PIPELINE_WARMUP_COUNT', 2000)),
  cpuProf: process.env.BENCH_PIPELINE_CPU_PROF === '1',
  seed: 42,
  invalidEvery: 50,
  duplicateEvery: 100,
  writerBatch: 1000,
  countPollMs: 150,
  metricsPollMs: 500,
  rssSampleMs: 50,
};

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const tmpDir = join(root, 'bench', 'tmp');
const profDir = join(tmpDir, 'prof-pipeline');
const resultsFile = join(root, 'bench', 'results.md');
const config = loadConfig();
const stamp = Date.now();
const tenants = {
  pipeline: `benchp-${stamp}`,
  copy: [`benchc-${stamp}`, `benchc-${stamp}-2`],
  writer: [1, 2, 3, 4].map((n) => `benchw-${stamp}-${n}`),
};
const writerGroups = [1, 2, 3, 4].map((n) => `bench-pipeline-writer-${stamp}-${n}`);
const targets = { e2eOverCopy: 0.5, rssMiB: 300 };
const stageList = ['split', 'extract', 'validate', 'load'] as const;
type Stage = (typeof stageList)[number];

const log = createLog('bench:pipeline');

async function startIngress(): Promise<Child> {
  const child = await spawnIngress();
  await waitForHttp(child, '/readiness', 120_000);
  return child;
}

function startProcessor(index: number): Promise<Child> {
  const nodeArgs = settings.cpuProf ? ['--cpu-prof', '--cpu-prof-dir', profDir] : [];
  return spawnProcessor(index, { nodeArgs, env: { PROCESSOR_LAG_INTERVAL_MS: '1000' } });
}

// ---------------------------------------------------------------------------------------------
// Prometheus text from /metrics

async function scrapeAll(processors: Child[]): Promise<Sample[][]> {
  return Promise.all(processors.map((child) => scrape(child.url, 10_000)));
}

/** Sum over replicas of a metric's change between two scrapes of all of them. */
function deltaAll(before: Sample[][], after: Sample[][], name: string, labels: Record<string, string> = {}): number {
  return after.reduce((sum, samples, i) => sum + metric(samples, name, labels) - metric(before[i] ?? [], name, labels), 0);
}

// ---------------------------------------------------------------------------------------------
// Draining the shared topics' backlog before measuring

interface LagView {
  /** Largest lag per stage over its partitions (max over replicas' views). */
  maxLag: Record<Stage, number>;
  /** Every lag series, `stage/partition` → lag (max over replicas' views), for "has it moved". */
  lags: Map<string, number>;
  /** Whether every stage has lag series yet. */
  complete: boolean;
  recordsIn: number;
  /** Partitions owned by this run's replicas together, per stage. */
  assigned: Record<Stage, number>;
}

function lagView(scrapes: Sample[][]): LagView {
  const maxLag = { split: -1, extract: -1, validate: -1, load: -1 } as Record<Stage, number>;
  const assigned = { split: 0, extract: 0, validate: 0, load: 0 } as Record<Stage, number>;
  const lags = new Map<string, number>();
  let recordsIn = 0;
  for (const samples of scrapes) {
    for (const sample of samples) {
      const stage = sample.labels.stage as Stage | undefined;
      if (stage === undefined || !stageList.includes(stage)) continue;
      if (sample.name === 'processor_consumer_lag') {
        maxLag[stage] = Math.max(maxLag[stage], sample.value);
        const key = `${stage}/${sample.labels.partition ?? '?'}`;
        lags.set(key, Math.max(lags.get(key) ?? 0, sample.value));
      } else if (sample.name === 'processor_assigned_partitions') assigned[stage] += sample.value;
      else if (sample.name === 'processor_records_in_total') recordsIn += sample.value;
    }
  }
  return { maxLag, lags, complete: stageList.every((stage) => maxLag[stage] >= 0), recordsIn, assigned };
}

/**
 * Other people's imports that may flow through this run's processors before the run counts as
 * not this file's: files extracted besides ours, and extra records validated/loaded (share of the file).
 */
const MAX_FOREIGN_FILES = 10;
const MAX_FOREIGN_SHARE = 0.05;

/** Most control records (transaction markers) a drained partition may still show as lag. */
const MAX_MARKER_LAG = 10;

/**
 * A candidate for "drained": every FileExtractSuccess partition at lag 0, and every
 * FilePiece / RecordExtracted / RecordValidated partition at a small lag. Those topics are written by
 * transactional producers, so a partition can end in control records (the commit marker of the
 * last transaction, abort markers of transactions aborted after they added the partition) that
 * a read_committed consumer never receives and so never commits past: the committed offset stays
 * a few short of the end offset for good. drain() also requires that nothing moves meanwhile.
 */
function isDrained(view: LagView): boolean {
  return (
    view.complete &&
    view.maxLag.split === 0 &&
    view.maxLag.extract <= MAX_MARKER_LAG &&
    view.maxLag.validate <= MAX_MARKER_LAG &&
    view.maxLag.load <= MAX_MARKER_LAG
  );
}

const lagSignature = (view: LagView) => JSON.stringify([...view.lags].sort());

interface DrainReport {
  seconds: number;
  drained: boolean;
  initialMaxLag: Record<Stage, number>;
  /** Max lag per stage once drained (transaction markers, see isDrained). */
  residualMaxLag: Record<Stage, number>;
  recordsProcessed: number;
}

async function drain(processors: Child[], timeoutSeconds: number): Promise<DrainReport> {
  const started = performance.now();
  const deadline = started + timeoutSeconds * 1000;
  let initialMaxLag: Record<Stage, number> | undefined;
  let firstRecordsIn: number | undefined;
  let stableSince: number | undefined;
  let stableRecordsIn = Number.NaN;
  let stableLags = '';
  let lastReport = 0;
  let view: LagView | undefined;
  while (performance.now() < deadline) {
    for (const child of processors)
      if (child.proc.exitCode !== null) throw new Error(`${child.name} exited with ${child.proc.exitCode}:\n${child.log.join('\n')}`);
    view = lagView(await scrapeAll(processors));
    if (view.complete && initialMaxLag === undefined) initialMaxLag = { ...view.maxLag };
    firstRecordsIn ??= view.recordsIn;
    const now = performance.now();
    if (isDrained(view) && (stableSince === undefined || (view.recordsIn === stableRecordsIn && lagSignature(view) === stableLags))) {
      if (stableSince === undefined) {
        stableSince = now;
        stableRecordsIn = view.recordsIn;
        stableLags = lagSignature(view);
      } else if (now - stableSince >= settings.settleSeconds * 1000) {
        return {
          seconds: (stableSince - started) / 1000,
          drained: true,
          initialMaxLag: initialMaxLag ?? view.maxLag,
          residualMaxLag: view.maxLag,
          recordsProcessed: view.recordsIn - firstRecordsIn,
        };
      }
    } else {
      stableSince = undefined;
    }
    if (now - lastReport > 10_000) {
      lastReport = now;
      log(`draining: max lag ${JSON.stringify(view.maxLag)}, ${fmt(view.recordsIn - firstRecordsIn)} input messages processed so far`);
    }
    await sleep(500);
  }
  log(`the backlog did not drain within ${timeoutSeconds} s (max lag ${JSON.stringify(view?.maxLag)}); measuring anyway`);
  return {
    seconds: (performance.now() - started) / 1000,
    drained: false,
    initialMaxLag: initialMaxLag ?? { split: Number.NaN, extract: Number.NaN, validate: Number.NaN, load: Number.NaN },
    residualMaxLag: view?.maxLag ?? { split: Number.NaN, extract: Number.NaN, validate: Number.NaN, load: Number.NaN },
    recordsProcessed: (view?.recordsIn ?? 0) - (firstRecordsIn ?? 0),
  };
}

/** The partition count of each stage's input topic as the cluster reports it (a grown topic has more than configured). */
async function inputPartitions(s3: ReturnType<typeof createS3>): Promise<Record<Stage, number>> {
  const inputOf = new Map(etlTopology({ s3 }).stages.map((stage) => [stage.name, stage.input]));
  const admin = createKafka(config.kafka, { clientId: 'bench-pipeline' }).admin();
  await admin.connect();
  try {
    const countOf = await partitionCountsOf(
      admin,
      stageList.map((stage) => inputOf.get(stage)!),
    );
    return Object.fromEntries(stageList.map((stage) => [stage, countOf(inputOf.get(stage)!)])) as Record<Stage, number>;
  } finally {
    await admin.disconnect();
  }
}

/**
 * Other people's processors (integration tests) join the same consumer groups (etl-extract,
 * etl-validate, etl-load) and take partitions away. Waits until this run's processors own every
 * partition (`owned`: each stage's count) of every stage and no other processor process runs on
 * the machine, for 3 s.
 */
async function waitForSoleOwnership(
  processors: Child[],
  mine: () => Set<number>,
  owned: Record<Stage, number>,
  timeoutSeconds: number,
): Promise<{ seconds: number; sole: boolean }> {
  const started = performance.now();
  let since: number | undefined;
  let lastReport = 0;
  while (performance.now() - started < timeoutSeconds * 1000) {
    const view = lagView(await scrapeAll(processors));
    const others = findPids(mine()).otherProcessors;
    const now = performance.now();
    if (stageList.every((stage) => view.assigned[stage] === owned[stage]) && others.length === 0) {
      since ??= now;
      if (now - since >= 3000) return { seconds: (since - started) / 1000, sole: true };
    } else {
      since = undefined;
      if (now - lastReport > 10_000) {
        lastReport = now;
        log(`waiting for the consumer groups to be ours alone: assigned ${JSON.stringify(view.assigned)}, other processor pids ${others.join(', ') || 'none'}`);
      }
    }
    await sleep(500);
  }
  log(`other processors still share the consumer groups after ${timeoutSeconds} s; measuring anyway`);
  return { seconds: (performance.now() - started) / 1000, sole: false };
}

type Offsets = Map<number, bigint>;

async function endOffsets(topic: string): Promise<Offsets> {
  const admin = createKafka(config.kafka, { clientId: 'bench-pipeline' }).admin();
  await admin.connect();
  try {
    // The last stable offsets: the end a read_committed consumer reads to.
    return new Map((await admin.fetchTopicOffsets(topic, { isolationLevel: readCommitted })).map((entry) => [entry.partition, BigInt(entry.high)]));
  } finally {
    await admin.disconnect();
  }
}

/**
 * Committed messages (read_committed) of `topic` between two sets of end offsets whose
 * request_id header is `requestId`: what the stages really wrote for this import, duplicates
 * included — the processor's own counters only count what its runner believes it committed.
 */
async function countCommitted(topic: string, from: Offsets, to: Offsets, requestId: string): Promise<{ messages: number; distinct: number }> {
  let messages = 0;
  const seen = new Set<string>();
  // Only what follows `from` is fetched (read_committed) and streamed: the shared topics hold
  // every earlier run's events too. What lies past `to` came after the measured work.
  const reader = new TopicReader(config.kafka, topic, { from, groupId: `bench-reader-${process.pid}-${topic}` });
  try {
    await reader.readToEnd(300_000, (message) => {
      if (BigInt(message.offset) >= (to.get(message.partition) ?? 0n)) return;
      if (message.headers.request_id !== requestId) return;
      messages++;
      seen.add(
        createHash('sha1')
          .update(message.value ?? Buffer.alloc(0))
          .digest('hex'),
      );
    });
  } finally {
    await reader.close();
  }
  return { messages, distinct: seen.size };
}

// ---------------------------------------------------------------------------------------------
// Records as the load stage hands them to the sink

/** One valid record as the pipeline would store it: its normalised document and where it came from. */
interface ValidRecord {
  index: number;
  permalink: string;
  /** JSON text of the normalised document (what RecordExtracted carries). */
  json: string;
}

interface Source {
  requestId: string;
  bucket: string;
  key: string;
  acceptedAt: number;
}

/** A record as the load sink's toSinkRecord makes it: the document parsed from RecordValidated's JSON text. */
function sinkRecord(tenant: string, record: ValidRecord, source: Source, offset: string): SinkRecord {
  return {
    tenant,
    permalink: record.permalink,
    document: JSON.parse(record.json) as Record<string, unknown>,
    documentJson: record.json,
    source: { requestId: source.requestId, bucket: source.bucket, key: source.key, recordIndex: record.index, acceptedAt: source.acceptedAt },
    offset,
  };
}

// ---------------------------------------------------------------------------------------------
// The generated file, read back the way the pipeline reads it

interface Prepared {
  /** Every valid record in file order (duplicates included): what the load stage receives. */
  valid: ValidRecord[];
  /** Valid records, duplicates collapsed last-wins: the rows. */
  rows: ValidRecord[];
  invalid: number;
  seconds: { parse: number; normalize: number; validate: number; stringify: number; total: number };
}

async function prepareRecords(file: string): Promise<Prepared> {
  const started = performance.now();
  const seconds = { parse: 0, normalize: 0, validate: 0, stringify: 0, total: 0 };
  const valid: ValidRecord[] = [];
  const last = new Map<string, ValidRecord>();
  let invalid = 0;
  let index = 0;
  const lines = createInterface({ input: createReadStream(file, { highWaterMark: MiB }), crlfDelay: Infinity });
  for await (const line of lines) {
    if (line === '') continue;
    let t = performance.now();
    const raw: unknown = JSON.parse(line);
    seconds.parse += performance.now() - t;
    t = performance.now();
    const document = normalizeRecord(raw);
    seconds.normalize += performance.now() - t;
    t = performance.now();
    const json = JSON.stringify(document);
    seconds.stringify += performance.now() - t;
    t = performance.now();
    // As the validate stage does: it parses RecordExtracted's JSON text, then validates.
    const result = validateRecord(JSON.parse(json));
    seconds.validate += performance.now() - t;
    if (result.valid) {
      const record: ValidRecord = { index, permalink: String((document as Record<string, unknown>).permalink), json };
      valid.push(record);
      last.set(record.permalink, record);
    } else {
      invalid++;
    }
    index++;
  }
  seconds.parse /= 1000;
  seconds.normalize /= 1000;
  seconds.validate /= 1000;
  seconds.stringify /= 1000;
  seconds.total = (performance.now() - started) / 1000;
  return { valid, rows: [...last.values()], invalid, seconds };
}

// ---------------------------------------------------------------------------------------------
// Ceilings

interface CopyResult {
  tenant: string;
  companies: number;
  offices: number;
  rounds: number;
  seconds: number;
  rowsPerSecond: number;
  cpu: CpuReport;
}

async function copyCeiling(tenant: string, rows: ValidRecord[], source: Source, groups: () => Record<string, number[]>): Promise<CopyResult> {
  const client = new pg.Client({
    host: config.postgres.host,
    port: config.postgres.port,
    database: config.postgres.database,
    user: config.postgres.user,
    password: config.postgres.password,
    application_name: 'bench-pipeline-copy',
  });
  await client.connect();
  try {
    await client.query('BEGIN');
    const stop = cpuMeter(groups(), () => ({ postgres: findPids(new Set()).postgres }));
    const started = performance.now();
    // The sink's own mapping and COPY text, so the ceiling cannot drift from what the sink writes.
    const mapped = rows.map((record) => {
      const prepared = companyRows(sinkRecord(tenant, record, source, '0'));
      if (typeof prepared === 'string') throw new Error(`the sink refuses ${record.permalink}: ${prepared}`);
      return prepared;
    });
    const offices = mapped.flatMap((item) => item.offices);
    const rounds = mapped.flatMap((item) => item.rounds);
    await copyRows(
      client,
      'companies',
      companyColumnNames,
      mapped.map((item) => item.company),
    );
    await copyRows(client, 'company_offices', officeColumnNames, offices);
    await copyRows(client, 'company_funding_rounds', roundColumnNames, rounds);
    await client.query('COMMIT');
    const companies = mapped.length;
    const officeRows = offices.length;
    const roundRows = rounds.length;
    const seconds = (performance.now() - started) / 1000;
    const cpu = stop();
    return { tenant, companies, offices: officeRows, rounds: roundRows, seconds, rowsPerSecond: companies / seconds, cpu };
  } catch (error) {
    await client.query('ROLLBACK').catch(() => undefined);
    throw error;
  } finally {
    await client.end();
  }
}

interface WriterResult {
  /** Absent in results of runs before the `copy` way existed: those used `insert`. */
  method?: WriteMethod;
  tenant: string;
  records: number;
  rows: number;
  batches: number;
  seconds: number;
  rowsPerSecond: number;
  recordsPerSecond: number;
  inserted: number;
  updated: number;
  collapsed: number;
  rejected: number;
  cpu: CpuReport;
}

async function writerCeiling(
  tenant: string,
  group: string,
  method: WriteMethod,
  valid: ValidRecord[],
  source: Source,
  groups: () => Record<string, number[]>,
): Promise<WriterResult> {
  const postgres = createPostgres(config.postgres, { applicationName: 'bench-pipeline-writer' });
  try {
    const writer = createCompanyWriter(postgres, { method });
    const result = { inserted: 0, updated: 0, collapsed: 0, rejected: 0, batches: 0 };
    let seconds = 0;
    const stop = cpuMeter(groups(), () => ({ postgres: findPids(new Set()).postgres }));
    for (let start = 0; start < valid.length; start += settings.writerBatch) {
      const slice = valid.slice(start, start + settings.writerBatch);
      const records = slice.map((record, i) => sinkRecord(tenant, record, source, String(start + i)));
      const began = performance.now();
      const written = await writer.writeBatch({
        consumerGroup: group,
        topic: 'bench-pipeline',
        partition: 0,
        records,
        nextOffset: String(start + slice.length),
      });
      seconds += (performance.now() - began) / 1000;
      result.inserted += written.inserted;
      result.updated += written.updated;
      result.collapsed += written.collapsed;
      result.rejected += written.rejected.length;
      result.batches++;
    }
    const cpu = stop();
    const rows = (await postgres.db.one<{ n: number }>('SELECT count(*)::int AS n FROM companies WHERE tenant = $1', [tenant])).n;
    return { method, tenant, records: valid.length, rows, seconds, rowsPerSecond: rows / seconds, recordsPerSecond: valid.length / seconds, cpu, ...result };
  } finally {
    await postgres.close();
  }
}

/** Groups under 0.5% of a core are left out of the line. */
const cpuText = (cpu: CpuReport, cores: number) => cpuLine(cpu, cores, 0.5);

// ---------------------------------------------------------------------------------------------
// The run

interface StageWindow {
  recordsIn: number;
  batches: number;
  batchSecondsSum: number;
  batchMeanMs: number;
  /** Seconds after t0 when the stage's input counter first moved / reached its target (metrics polls, ±0.5 s). */
  firstAt: number;
  doneAt: number;
}

interface PhaseCpu {
  name: string;
  from: number;
  to: number;
  /** % of one core, summed over this run's processors. */
  processor: number;
  machine: number;
  postgres: number;
}

interface PipelineRun {
  requestId: string;
  key: string;
  bucket: string;
  status: number;
  answerRecords: number;
  seconds: number;
  bodySentSeconds: number;
  answeredSeconds: number;
  firstRowSeconds: number;
  lastRowLoadedAtSeconds: number;
  rows: number;
  timedOut: boolean;
  recordsPerSecond: number;
  rowsPerSecond: number;
  validationErrors: number;
  extractOutputs: number;
  /** Records each replica's extract stage produced, and the pieces the file was extracted in. */
  extractShares: number[];
  pieces: number;
  stages: Record<Stage, StageWindow>;
  phases: PhaseCpu[];
  cpu: CpuReport;
  idleRssMiB: number[];
  peakRssMiB: number[];
  peakRssHwmMiB: number[];
  /** When (s after t0) the sampled peak was seen, per replica. */
  peakRssAtSeconds: number[];
  drainPeakRssMiB: number[];
  ingressPeakRssMiB: number;
  eventLoopLagP99MaxMs: number;
  gcSeconds: number;
  processCpuSeconds: number;
  heapUsedMaxMiB: number;
  /** Largest V8 heap size (committed) and external (Buffer) memory seen in the polls, any replica. */
  heapTotalMaxMiB?: number;
  externalMaxMiB?: number;
  minAssigned: Record<Stage, number>;
  /** Partitions of each stage's input topic: what minAssigned is out of (absent from results saved before it was recorded, when every input had 3). */
  inputPartitions?: Record<Stage, number>;
  otherProcessorPids: number[];
  /** Another processor took partitions of this run's stages, or other people's imports flowed through this run's processors in bulk: the numbers are not this file's alone. */
  contaminated: boolean;
  /** Input messages beyond what this file gives, per stage: other people's imports that arrived meanwhile, or duplicates (see `committed`). */
  foreign: Record<Stage, number>;
  /** Committed messages for this import read back from Kafka (read_committed); distinct = distinct message values. */
  committed?: { recordValidated: number; recordValidatedDistinct: number; validationError: number };
  /** processor_retries_total per stage over the run (transient failures retried from the same position). */
  retries?: Record<Stage, number>;
  attempt: number;
  ownershipWaitSeconds: number;
  tenant: string;
}

interface Results {
  date: string;
  machine: Machine;
  settings: typeof settings;
  /** How the services ran: compiled (`node dist/…`) or, in older results (absent), `node --import tsx`. */
  servicesRun?: 'compiled';
  /** The processor's settings that shape the run (absent in older results). */
  processorSettings?: { extractRecordsPerTransaction: number; loadBatchMaxRecords: number; loadBatchLingerMs: number };
  file: { bytes: number; records: number; valid: number; invalid: number; duplicates: number; distinctValidPermalinks: number; generateSeconds: number };
  prepare: Prepared['seconds'] & { validRecords: number; rows: number };
  drain: DrainReport & { recheckSeconds: number; recheckDrained: boolean };
  /** The unmeasured import that warms every process up first (absent in older results). */
  warmup?: { records: number; rows: number; seconds: number };
  copy: CopyResult[];
  writer: WriterResult[];
  run: PipelineRun;
  /** Attempts thrown away because another processor shared the consumer groups. */
  discarded: Array<{
    attempt: number;
    tenant: string;
    seconds: number;
    recordsPerSecond: number;
    minAssigned: Record<Stage, number>;
    otherProcessorPids: number[];
    foreign?: Record<Stage, number>;
  }>;
  cleanup: { companies: number; sinkOffsets: number; objects: number; processorExit: Array<number | null>; ingressExit: number | null };
}

const warmupTenant = `${tenants.pipeline}-warmup`;

/** Imports a small file (another seed, its own tenant) and waits for all of its rows. */
async function warmUp(ingress: Child, db: ReturnType<typeof createPostgres>): Promise<{ records: number; rows: number; seconds: number }> {
  const file = join(tmpDir, `pipeline-warmup-${stamp}.ndjson`);
  try {
    const summary = await writeCompanies(file, {
      count: settings.warmupCount,
      seed: settings.seed + 1,
      invalidEvery: settings.invalidEvery,
      duplicateEvery: settings.duplicateEvery,
      tenant: warmupTenant,
    });
    const started = performance.now();
    const response = await request(`${ingress.url}/import/${warmupTenant}`, {
      method: 'POST',
      body: createReadStream(file, { highWaterMark: MiB }),
      headers: { 'content-type': 'application/x-ndjson', 'content-length': String(statSync(file).size), 'x-filename': 'bench-warmup.ndjson' },
      headersTimeout: 600_000,
      bodyTimeout: 600_000,
    });
    const answer = await response.body.text();
    if (response.statusCode !== 202) throw new Error(`the warm-up import was answered ${response.statusCode}: ${answer}`);
    const deadline = started + settings.runTimeoutSeconds * 1000;
    for (;;) {
      const { n } = await db.db.one<{ n: number }>('SELECT count(*)::int AS n FROM companies WHERE tenant = $1', [warmupTenant]);
      if (n >= summary.distinctValidPermalinks) {
        return { records: summary.total, rows: n, seconds: (performance.now() - started) / 1000 };
      }
      if (performance.now() > deadline)
        throw new Error(`the warm-up import loaded ${n} of ${summary.distinctValidPermalinks} rows in ${settings.runTimeoutSeconds} s`);
      await sleep(settings.countPollMs);
    }
  } finally {
    rmSync(file, { force: true });
  }
}

async function main(): Promise<void> {
  mkdirSync(tmpDir, { recursive: true });
  if (settings.cpuProf) mkdirSync(profDir, { recursive: true });
  log('building dist/ (the services run compiled, as in their images)');
  execFileSync('npm', ['run', '--silent', 'build'], { cwd: root, stdio: ['ignore', process.stderr, process.stderr] });
  const file = join(tmpDir, `pipeline-${settings.count}-${stamp}.ndjson`);
  const s3 = createS3(config.s3);
  const db = createPostgres(config.postgres, { applicationName: 'bench-pipeline' });
  const results: Partial<Results> = {
    date: new Date().toISOString(),
    machine: machineInfo(),
    settings,
    servicesRun: 'compiled',
    processorSettings: (({ extractRecordsPerTransaction, loadBatchMaxRecords, loadBatchLingerMs }) => ({
      extractRecordsPerTransaction,
      loadBatchMaxRecords,
      loadBatchLingerMs,
    }))(loadProcessorConfig(process.env).processor),
  };
  let ingress: Child | undefined;
  const processors: Child[] = [];
  const importKeys: string[] = [];
  const pipelineTenants: string[] = [];
  try {
    // 1. The file.
    log(`generating ${fmt(settings.count)} companies (seed ${settings.seed}) into ${file}`);
    const t = performance.now();
    const summary = await writeCompanies(file, {
      count: settings.count,
      seed: settings.seed,
      invalidEvery: settings.invalidEvery,
      duplicateEvery: settings.duplicateEvery,
      tenant: tenants.pipeline,
    });
    const bytes = statSync(file).size;
    results.file = {
      bytes,
      records: summary.total,
      valid: summary.valid,
      invalid: summary.invalid,
      duplicates: summary.duplicates,
      distinctValidPermalinks: summary.distinctValidPermalinks,
      generateSeconds: (performance.now() - t) / 1000,
    };
    log(`generated ${fmt(bytes / 1e6, 1)} MB: ${JSON.stringify(summary)}`);

    // 2. The ceilings' rows, from the same file, through the pipeline's own normalise/validate code.
    const prepared = await prepareRecords(file);
    if (prepared.rows.length !== summary.distinctValidPermalinks || prepared.invalid !== summary.invalid) {
      throw new Error(
        `the file read back gives ${prepared.rows.length} rows / ${prepared.invalid} invalid, the generator said ${summary.distinctValidPermalinks} / ${summary.invalid}`,
      );
    }
    results.prepare = { ...prepared.seconds, validRecords: prepared.valid.length, rows: prepared.rows.length };
    log(`prepared ${prepared.rows.length} rows in ${fmt(prepared.seconds.total, 2)} s (${JSON.stringify(prepared.seconds)})`);

    // 3. The servers under test.
    ingress = await startIngress();
    for (let i = 0; i < settings.replicas; i++) processors.push(await startProcessor(i));
    const mine = () => new Set([process.pid, ...processors.map((child) => child.pid), ...(ingress === undefined ? [] : [ingress.pid])]);
    const rss = sampleRssPeaks(() => [...processors, ...(ingress === undefined ? [] : [ingress])].map((child) => child.pid), settings.rssSampleMs);
    try {
      for (const child of processors) await waitForHttp(child, '/readiness', 120_000);
      log(`ingress pid ${ingress.pid} at ${ingress.url}; processor pid(s) ${processors.map((child) => `${child.pid} at ${child.url}`).join(', ')}`);

      // 4. Drain the backlog the shared topics hold.
      const firstDrain = await drain(processors, settings.drainTimeoutSeconds);
      const drainPeakRssMiB = processors.map((child) => rss.peak(child.pid) / MiB);
      log(
        `drain: ${firstDrain.drained ? 'drained' : 'NOT drained'} after ${fmt(firstDrain.seconds, 1)} s, ${fmt(firstDrain.recordsProcessed)} input messages, initial max lag ${JSON.stringify(firstDrain.initialMaxLag)}`,
      );

      // 4b. Warm-up, not measured: a small import through the whole stack first. On a freshly
      // started stack the brokers' JIT is cold and costs them far more CPU per record than later
      // runs; every process should be measured warm.
      pipelineTenants.push(warmupTenant);
      results.warmup = await warmUp(ingress, db);
      log(`warm-up: ${fmt(results.warmup.records)} records → ${fmt(results.warmup.rows)} rows in ${fmt(results.warmup.seconds, 1)} s (not measured)`);

      const source: Source = {
        requestId: `bench-ceiling-${stamp}`,
        bucket: config.s3.bucket,
        key: `${tenants.pipeline}/bench-ceiling.json`,
        acceptedAt: Date.now(),
      };
      const groups = () => {
        const found = findPids(mine());
        return {
          bench: [process.pid],
          processor: processors.map((child) => child.pid),
          postgres: found.postgres,
          kafka: found.kafka,
          minio: found.minio,
          otherProcessors: found.otherProcessors,
        };
      };

      // 5. Ceilings, before.
      results.copy = [];
      results.writer = [];
      const runCopy = async (i: number) => {
        const tenant = tenants.copy[i]!;
        const copy = await copyCeiling(tenant, prepared.rows, source, groups);
        results.copy?.push(copy);
        log(
          `COPY ${i + 1}: ${fmt(copy.companies)} companies + ${fmt(copy.offices)} offices + ${fmt(copy.rounds)} rounds in ${fmt(copy.seconds, 2)} s = ${fmt(copy.rowsPerSecond)} rows/s; CPU ${cpuText(copy.cpu, os.availableParallelism())}`,
        );
      };
      const runWriter = async (i: number, method: WriteMethod) => {
        const writer = await writerCeiling(tenants.writer[i]!, writerGroups[i]!, method, prepared.valid, source, groups);
        results.writer?.push(writer);
        log(
          `writer ${i + 1} (${method}): ${fmt(writer.records)} records → ${fmt(writer.rows)} rows in ${writer.batches} batches, ${fmt(writer.seconds, 2)} s = ${fmt(writer.rowsPerSecond)} rows/s; CPU ${cpuText(writer.cpu, os.availableParallelism())}`,
        );
      };
      await runCopy(0);
      await runWriter(0, 'copy');
      await runWriter(1, 'insert');

      // Anything that arrived meanwhile (other people's tests) is drained again.
      const recheck = await drain(processors, settings.drainTimeoutSeconds);
      results.drain = { ...firstDrain, recheckSeconds: recheck.seconds, recheckDrained: recheck.drained };

      // 6. Idle RSS, then the measured run; again if another processor shared the groups meanwhile.
      results.discarded = [];
      const owned = await inputPartitions(s3);
      for (let attempt = 1; ; attempt++) {
        const tenant = attempt === 1 ? tenants.pipeline : `${tenants.pipeline}-${attempt}`;
        pipelineTenants.push(tenant);
        let ownership = await waitForSoleOwnership(processors, mine, owned, settings.ownershipTimeoutSeconds);
        // Quiet first (nothing of anyone's in flight for BENCH_PIPELINE_SETTLE_S), then ownership checked once more.
        await drain(processors, settings.drainTimeoutSeconds);
        const again = await waitForSoleOwnership(processors, mine, owned, settings.ownershipTimeoutSeconds);
        ownership = { seconds: ownership.seconds + again.seconds, sole: again.sole };
        await sleep(1000);
        const idleRss = (
          await medianRss(
            processors.map((child) => child.pid),
            20,
          )
        ).map((bytes) => bytes / MiB);
        const hwmReset = processors.map((child) => resetHwm(child.pid));
        rss.reset();

        const outputsFrom = { valid: await endOffsets(topics.recordValidated.name), invalid: await endOffsets(topics.validationError.name) };
        const before = await scrapeAll(processors);
        const startGroups = groups();
        const stopCpu = cpuMeter({ ...startGroups, ingress: [ingress.pid] }, () => ({ postgres: findPids(mine()).postgres }));
        const expected = summary.distinctValidPermalinks;
        const minAssigned = { ...owned };
        const otherProcessorPids = new Set<number>(startGroups.otherProcessors);
        let eventLoopLagP99MaxMs = 0;
        let heapUsedMax = 0;
        let heapTotalMax = 0;
        let externalMax = 0;
        const timeline: Array<{ at: number; scrapes: Sample[][]; processorTicks: number; machine: { busy: number; total: number }; postgresTicks: number }> =
          [];
        const processorTicks = () => processors.reduce((sum, child) => sum + processTicks(child.pid), 0);
        const postgresTicks = () => findPids(mine()).postgres.reduce((sum, pid) => sum + processTicks(pid), 0);

        const t0 = performance.now();
        const wall0 = Date.now();
        const since = () => (performance.now() - t0) / 1000;
        timeline.push({ at: 0, scrapes: before, processorTicks: processorTicks(), machine: machineTicks(), postgresTicks: postgresTicks() });
        let done = false;
        let firstRow = Number.NaN;
        let lastCount = 0;
        let t1 = Number.NaN;
        let answered = Number.NaN;
        let bodySent = Number.NaN;
        const deadline = t0 + settings.runTimeoutSeconds * 1000;

        const countPoller = (async () => {
          while (!done && performance.now() < deadline) {
            const n = (await db.db.one<{ n: number }>('SELECT count(*)::int AS n FROM companies WHERE tenant = $1', [tenant])).n;
            lastCount = n;
            if (n > 0 && Number.isNaN(firstRow)) firstRow = since();
            if (n >= expected) {
              t1 = since();
              return;
            }
            await sleep(settings.countPollMs);
          }
        })();
        const metricsPoller = (async () => {
          while (!done && performance.now() < deadline) {
            await sleep(settings.metricsPollMs);
            try {
              const scrapes = await scrapeAll(processors);
              timeline.push({ at: since(), scrapes, processorTicks: processorTicks(), machine: machineTicks(), postgresTicks: postgresTicks() });
              const view = lagView(scrapes);
              for (const stage of stageList) minAssigned[stage] = Math.min(minAssigned[stage], view.assigned[stage]);
              for (const samples of scrapes) {
                eventLoopLagP99MaxMs = Math.max(eventLoopLagP99MaxMs, metric(samples, 'nodejs_eventloop_lag_p99_seconds') * 1000);
                heapUsedMax = Math.max(heapUsedMax, metric(samples, 'nodejs_heap_size_used_bytes'));
                heapTotalMax = Math.max(heapTotalMax, metric(samples, 'nodejs_heap_size_total_bytes'));
                externalMax = Math.max(externalMax, metric(samples, 'nodejs_external_memory_bytes'));
              }
              for (const pid of findPids(mine()).otherProcessors) otherProcessorPids.add(pid);
            } catch (error) {
              log(`metrics poll failed: ${String(error)}`);
            }
          }
        })();

        log(`attempt ${attempt}: POST ${fmt(bytes / 1e6, 1)} MB as ${tenant}; waiting for ${fmt(expected)} rows`);
        const stream = createReadStream(file, { highWaterMark: MiB });
        stream.once('end', () => (bodySent = since()));
        const response = await request(`${ingress.url}/import/${tenant}`, {
          method: 'POST',
          body: stream,
          headers: { 'content-type': 'application/x-ndjson', 'content-length': String(bytes), 'x-filename': 'bench-pipeline.ndjson' },
          headersTimeout: 600_000,
          bodyTimeout: 600_000,
        });
        answered = since();
        const answer = JSON.parse(await response.body.text()) as Record<string, unknown>;
        log(`ingress answered ${response.statusCode} after ${fmt(answered, 2)} s: ${JSON.stringify(answer)}`);
        if (response.statusCode !== 202) {
          done = true;
          throw new Error(`the ingress answered ${response.statusCode}: ${JSON.stringify(answer)}`);
        }
        const importKey = String(answer.key);
        importKeys.push(importKey);
        await countPoller;
        const timedOut = Number.isNaN(t1);
        const cpu = stopCpu();
        // A last look at the counters once the rows are in (the validate stage finished earlier).
        const after = await scrapeAll(processors);
        timeline.push({ at: since(), scrapes: after, processorTicks: processorTicks(), machine: machineTicks(), postgresTicks: postgresTicks() });
        done = true;
        await metricsPoller;
        await sleep(1000);
        const peakRssMiB = processors.map((child) => rss.peak(child.pid) / MiB);
        const peakRssAtSeconds = processors.map((child) => (rss.at(child.pid) - t0) / 1000);
        const peakRssHwmMiB = processors.map((child, i) => (hwmReset[i] ? vm(child.pid, 'VmHWM') / MiB : Number.NaN));
        const ingressPeakRssMiB = rss.peak(ingress.pid) / MiB;
        const loadedAt = await db.db.one<{ first: Date | null; last: Date | null }>(
          'SELECT min(loaded_at) AS first, max(loaded_at) AS last FROM companies WHERE tenant = $1',
          [tenant],
        );

        // What validate really committed for this import (read back from Kafka, outside the timing).
        const outputsTo = { valid: await endOffsets(topics.recordValidated.name), invalid: await endOffsets(topics.validationError.name) };
        const committedValid = await countCommitted(topics.recordValidated.name, outputsFrom.valid, outputsTo.valid, String(answer.request_id));
        const committedInvalid = await countCommitted(topics.validationError.name, outputsFrom.invalid, outputsTo.invalid, String(answer.request_id));
        log(
          `committed for this import: RecordValidated ${committedValid.messages} (${committedValid.distinct} distinct; file: ${summary.valid} valid), ValidationError ${committedInvalid.messages} (file: ${summary.invalid} invalid)`,
        );

        // Per stage: when its input counter moved and when it reached its work (from the polls).
        // extract's input is the file's pieces, however many: it is done when its records are out.
        const targetsByStage: Record<Stage, number> = { split: 1, extract: summary.total, validate: summary.total, load: summary.valid };
        const progressOf = (stage: Stage, scrapes: Sample[][]) =>
          stage === 'extract'
            ? deltaAll(before, scrapes, 'processor_records_out_total', { stage, topic: topics.recordExtracted.name })
            : deltaAll(before, scrapes, 'processor_records_in_total', { stage });
        const stages = {} as Record<Stage, StageWindow>;
        for (const stage of stageList) {
          let firstAt = Number.NaN;
          let doneAt = Number.NaN;
          for (const point of timeline) {
            const moved = progressOf(stage, point.scrapes);
            if (moved > 0 && Number.isNaN(firstAt)) firstAt = point.at;
            if (moved >= targetsByStage[stage] && Number.isNaN(doneAt)) doneAt = point.at;
          }
          const batches = deltaAll(before, after, 'processor_batch_duration_seconds_count', { stage });
          const batchSecondsSum = deltaAll(before, after, 'processor_batch_duration_seconds_sum', { stage });
          stages[stage] = {
            recordsIn: deltaAll(before, after, 'processor_records_in_total', { stage }),
            batches,
            batchSecondsSum,
            batchMeanMs: batches === 0 ? Number.NaN : (batchSecondsSum / batches) * 1000,
            firstAt,
            doneAt,
          };
        }
        // CPU per phase of the run, from the timeline's tick samples.
        const phaseBounds: Array<[string, number, number]> = [
          ['upload (t0 → 202)', 0, answered],
          ['extract (202 → extract committed)', answered, stages.extract.doneAt],
          ...(Number.isFinite(stages.validate.doneAt)
            ? ([
                ['validate + load (extract committed → validate done)', stages.extract.doneAt, stages.validate.doneAt],
                ['load tail (validate done → t1)', stages.validate.doneAt, timedOut ? since() : t1],
              ] as Array<[string, number, number]>)
            : ([['validate + load (extract committed → t1)', stages.extract.doneAt, timedOut ? since() : t1]] as Array<[string, number, number]>)),
        ];
        const nearest = (at: number) => timeline.reduce((best, point) => (Math.abs(point.at - at) < Math.abs(best.at - at) ? point : best), timeline[0]!);
        const phases: PhaseCpu[] = [];
        for (const [name, from, to] of phaseBounds) {
          if (!Number.isFinite(from) || !Number.isFinite(to) || to <= from) continue;
          const a = nearest(from);
          const b = nearest(to);
          const seconds = b.at - a.at;
          if (seconds <= 0) continue;
          const pct = (ticks: number) => (ticks / clockTicks / seconds) * 100;
          phases.push({
            name,
            from: a.at,
            to: b.at,
            processor: pct(b.processorTicks - a.processorTicks),
            machine: pct(b.machine.busy - a.machine.busy),
            postgres: pct(b.postgresTicks - a.postgresTicks),
          });
        }
        const seconds = timedOut ? since() : t1;
        results.run = {
          requestId: String(answer.request_id),
          key: importKey,
          bucket: String(answer.bucket),
          status: response.statusCode,
          answerRecords: Number(answer.records),
          seconds,
          bodySentSeconds: bodySent,
          answeredSeconds: answered,
          firstRowSeconds: firstRow,
          lastRowLoadedAtSeconds: loadedAt.last === null ? Number.NaN : (loadedAt.last.getTime() - wall0) / 1000,
          rows: timedOut ? lastCount : expected,
          timedOut,
          recordsPerSecond: timedOut ? Number.NaN : summary.total / seconds,
          rowsPerSecond: timedOut ? Number.NaN : expected / seconds,
          validationErrors: deltaAll(before, after, 'processor_records_out_total', { stage: 'validate', topic: 'ValidationError' }),
          extractOutputs: deltaAll(before, after, 'processor_records_out_total', { stage: 'extract', topic: 'RecordExtracted' }),
          // Each replica's share of the extract work: the records its extract stage produced.
          extractShares: after.map(
            (samples, i) =>
              metric(samples, 'processor_records_out_total', { stage: 'extract', topic: 'RecordExtracted' }) -
              metric(before[i] ?? [], 'processor_records_out_total', { stage: 'extract', topic: 'RecordExtracted' }),
          ),
          pieces: stages.extract.recordsIn,
          stages,
          phases,
          cpu,
          idleRssMiB: idleRss,
          peakRssMiB,
          peakRssHwmMiB,
          peakRssAtSeconds,
          drainPeakRssMiB,
          ingressPeakRssMiB,
          eventLoopLagP99MaxMs,
          gcSeconds: deltaAll(before, after, 'nodejs_gc_duration_seconds_sum'),
          processCpuSeconds: deltaAll(before, after, 'process_cpu_seconds_total'),
          heapUsedMaxMiB: heapUsedMax / MiB,
          heapTotalMaxMiB: heapTotalMax / MiB,
          externalMaxMiB: externalMax / MiB,
          minAssigned,
          inputPartitions: owned,
          otherProcessorPids: [...otherProcessorPids],
          committed: {
            recordValidated: committedValid.messages,
            recordValidatedDistinct: committedValid.distinct,
            validationError: committedInvalid.messages,
          },
          retries: Object.fromEntries(stageList.map((stage) => [stage, deltaAll(before, after, 'processor_retries_total', { stage })])) as Record<
            Stage,
            number
          >,
          foreign: {
            split: Math.max(0, stages.split.recordsIn - 1),
            extract: Math.max(0, deltaAll(before, after, 'processor_records_out_total', { stage: 'extract', topic: 'RecordExtracted' }) - summary.total),
            validate: Math.max(0, stages.validate.recordsIn - summary.total),
            load: Math.max(0, stages.load.recordsIn - summary.valid),
          },
          contaminated:
            stageList.some((stage) => minAssigned[stage] < owned[stage]) ||
            otherProcessorPids.size > 0 ||
            !ownership.sole ||
            stages.split.recordsIn - 1 > MAX_FOREIGN_FILES ||
            stages.validate.recordsIn - summary.total > summary.total * MAX_FOREIGN_SHARE ||
            stages.load.recordsIn - summary.valid > summary.total * MAX_FOREIGN_SHARE,
          attempt,
          ownershipWaitSeconds: ownership.seconds,
          tenant,
        };
        const run = results.run;
        log(
          `pipeline: ${timedOut ? `TIMED OUT with ${fmt(lastCount)} of ${fmt(expected)} rows` : `${fmt(expected)} rows after ${fmt(seconds, 2)} s`} ` +
            `(202 at ${fmt(answered, 2)} s, first row ${fmt(firstRow, 2)} s): ${fmt(run.recordsPerSecond)} records/s, ${fmt(run.rowsPerSecond)} rows/s; ` +
            `processor RSS idle ${idleRss.map((v) => fmt(v, 1)).join('/')} MiB, peak ${peakRssMiB.map((v) => fmt(v, 1)).join('/')} MiB; CPU ${cpuText(cpu, os.availableParallelism())}`,
        );
        log(`stages: ${JSON.stringify(stages)}`);
        log(`phases: ${JSON.stringify(phases)}`);
        log(
          `ValidationError ${run.validationErrors} (expected ${summary.invalid}); assigned partitions (min over the run) ${JSON.stringify(minAssigned)}; other processors seen: ${run.otherProcessorPids.join(', ') || 'none'}; foreign input ${JSON.stringify(run.foreign)}`,
        );
        if (!run.contaminated || attempt >= settings.attempts) break;
        results.discarded.push({
          attempt,
          tenant,
          seconds: run.seconds,
          recordsPerSecond: run.recordsPerSecond,
          minAssigned,
          otherProcessorPids: run.otherProcessorPids,
          foreign: run.foreign,
        });
        log(
          `attempt ${attempt} shared its processors or consumer groups with other people's work: discarded, trying again (${settings.attempts - attempt} left)`,
        );
        await db.db.none('DELETE FROM companies WHERE tenant = $1', [tenant]);
        await drain(processors, settings.drainTimeoutSeconds);
      }

      // 7. Ceilings, after.
      await runWriter(2, 'insert');
      await runWriter(3, 'copy');
      await runCopy(1);
    } finally {
      rss.stop();
    }
  } finally {
    results.machine!.loadavgAfter = os.loadavg();
    const processorExit: Array<number | null> = [];
    for (const child of processors) {
      processorExit.push(await stopChild(child));
      const problems = child.log.filter((line) => /"level":"(warn|error|fatal)"|"level":[456]0/.test(line) && !line.includes('The group is rebalancing'));
      for (const line of problems.slice(-8)) log(`${child.name} said: ${line.slice(0, 600)}`);
    }
    const ingressExit = ingress === undefined ? null : await stopChild(ingress);
    const cleanup = { companies: 0, sinkOffsets: 0, objects: 0, processorExit, ingressExit };
    try {
      const all = [tenants.pipeline, ...pipelineTenants, ...tenants.copy, ...tenants.writer];
      cleanup.companies = (await db.db.result('DELETE FROM companies WHERE tenant = ANY($1)', [all])).rowCount;
      cleanup.sinkOffsets = (await db.db.result('DELETE FROM sink_offsets WHERE consumer_group = ANY($1)', [writerGroups])).rowCount;
    } catch (error) {
      log(`cleanup of the rows failed: ${String(error)}`);
    }
    try {
      // The import's object (and anything else under the run's tenant prefix).
      // Prefix `benchp-<stamp>` covers the retries' tenants `benchp-<stamp>-<n>` too.
      const listed = await s3.send(new ListObjectsV2Command({ Bucket: config.s3.bucket, Prefix: tenants.pipeline }));
      const keys = (listed.Contents ?? []).flatMap((object) => (object.Key === undefined ? [] : [{ Key: object.Key }]));
      for (const importKey of importKeys) if (!keys.some((entry) => entry.Key === importKey)) keys.push({ Key: importKey });
      if (keys.length > 0) {
        const deleted = await s3.send(new DeleteObjectsCommand({ Bucket: config.s3.bucket, Delete: { Objects: keys, Quiet: true } }));
        cleanup.objects = keys.length - (deleted.Errors ?? []).length;
      }
    } catch (error) {
      log(`cleanup of s3://${config.s3.bucket}/${tenants.pipeline}/ failed: ${String(error)}`);
    }
    rmSync(file, { force: true });
    results.cleanup = cleanup;
    log(
      `cleanup: ${cleanup.companies} company rows (children cascade), ${cleanup.sinkOffsets} sink_offsets rows, ${cleanup.objects} S3 objects deleted; exits: processors ${processorExit.join(',')}, ingress ${ingressExit}`,
    );
    s3.destroy();
    await db.close();
  }

  const complete = results as Results;
  const name = settings.cpuProf ? 'pipeline-last-prof.json' : `pipeline-last-r${settings.replicas}.json`;
  writeFileSync(join(tmpDir, name), `${JSON.stringify(complete, null, 2)}\n`);
  process.stdout.write(`${renderRun(complete)}\n`);
  if (settings.cpuProf) {
    log(`CPU profile(s) in ${profDir} (summary: tsx bench/cpuprofile-top.ts <file>); results.md left unchanged`);
  } else if (settings.count !== 20_000) {
    log(`BENCH_PIPELINE_COUNT=${settings.count} is not the issue's 20,000: ${resultsFile} left unchanged (numbers in bench/tmp/${name})`);
  } else {
    writeSection(resultsFile, '## bench:pipeline', renderSection());
    log(`wrote the "## bench:pipeline" section of ${resultsFile}`);
  }
}

// ---------------------------------------------------------------------------------------------
// bench/results.md

function loadRuns(): Results[] {
  const runs: Results[] = [];
  for (const replicas of [1, 2, 3]) {
    const path = join(tmpDir, `pipeline-last-r${replicas}.json`);
    if (!existsSync(path)) continue;
    const run = JSON.parse(readFileSync(path, 'utf8')) as Results;
    if (run.settings.count === 20_000) runs.push(run);
  }
  return runs;
}

function renderSection(): string {
  const runs = loadRuns();
  const lines: string[] = ['## bench:pipeline', ''];
  const first = runs[0];
  if (first === undefined) return lines.join('\n');
  const cores = first.machine.nproc;
  lines.push(
    `What: one ${fmt(first.file.bytes / 1e6, 1)} MB NDJSON file of ${fmt(first.file.records)} generated companies (\`examples/generate/companies.ts\`, seed ${first.settings.seed}, every ${first.settings.invalidEvery}th invalid, every ${first.settings.duplicateEvery}th a duplicate: ` +
      `${fmt(first.file.valid)} valid records, ${fmt(first.file.invalid)} invalid, ${fmt(first.file.distinctValidPermalinks)} distinct rows) POSTed to a real ingress and carried through the processor (split → extract → validate → load) into PostgreSQL, ` +
      `against the database's own ceiling in the same run: COPY FROM STDIN of the same rows into the same three tables (one connection, one transaction), and the sink's company writer alone (batches of ${first.settings.writerBatch}, no Kafka). ` +
      `Every service in a child process (${first.servicesRun === 'compiled' ? "`node dist/…`, compiled by `npm run build`, with the image's `MALLOC_MMAP_THRESHOLD_` (deployments/docker/Dockerfile): as the images run them" : '`node --import tsx`'}); the stack (3 Kafka brokers, registry, MinIO, PostgreSQL) and other people's tests share the ${cores} cores, so absolute numbers move between runs; the ratios are measured in the same run.`,
    '',
  );
  lines.push(
    `Method: t0 = just before the POST starts streaming the file from disk (undici, ReadStream body, \`application/x-ndjson\`); t1 = when \`SELECT count(*) FROM companies WHERE tenant = $1\` (polled every ${first.settings.countPollMs} ms) reaches the distinct valid permalinks. ` +
      `End-to-end records/s = records in the file ÷ (t1 − t0); rows/s = rows ÷ (t1 − t0). COPY and writer rate = company rows ÷ (first COPY / first batch → COMMIT / last batch); each ceiling ran once before and once after the pipeline and the ratio uses their mean. ` +
      `Processor RSS: VmRSS from /proc every ${first.settings.rssSampleMs} ms (and VmHWM after resetting it via clear_refs). Per-stage timings from the processor's /metrics polled every ${first.settings.metricsPollMs} ms (±0.5 s). ` +
      `Before measuring, the processor drains the backlog that the shared topics hold (reported, not counted): every FileExtractSuccess partition at lag 0 (processor_consumer_lag), and no input message processed and no lag changed for ${first.settings.settleSeconds} s. ` +
      `RecordExtracted/RecordValidated never reach a literal 0: they are written by transactional producers, so a partition can end in control records (the last commit marker, abort markers) that a read_committed consumer never receives and so never commits past; a residual lag of up to ${MAX_MARKER_LAG} per partition that does not move is taken as drained (the residue is reported). ` +
      `CPU is % of one core over the window, from /proc (utime+stime): processor = this run's processor(s), postgres = every postgres process, others = the rest of the machine.`,
    '',
  );
  for (const run of runs) lines.push(...renderRun(run).split('\n'), '');
  lines.push('### What limits it', '');
  for (const paragraph of diagnosis(runs)) lines.push(paragraph, '');
  return lines.join('\n').trimEnd();
}

function renderRun(r: Results): string {
  const lines: string[] = [];
  const cores = r.machine.nproc;
  const run = r.run;
  const replicas = r.settings.replicas;
  const copyRate = mean(r.copy.map((copy) => copy.rowsPerSecond));
  const writerRate = mean(loadWayWriters(r).map((writer) => writer.rowsPerSecond));
  lines.push(`### ${replicas} processor replica${replicas === 1 ? '' : 's'}`, '');
  lines.push(`Date: ${r.date}  `);
  lines.push(`${machineLine(r.machine)}  `);
  lines.push(
    `Command: \`BENCH_PIPELINE_COUNT=${r.settings.count} BENCH_PIPELINE_REPLICAS=${replicas} npm run bench:pipeline\`${replicas === 1 && r.settings.count === 20_000 ? ' (the defaults)' : ''}`,
    '',
  );
  lines.push('```', '$ free -g', r.machine.free, '```', '');
  const drainText = r.drain.drained
    ? `${fmt(r.drain.seconds, 1)} s (${fmt(r.drain.recordsProcessed)} input messages processed; max lag per stage at start ${JSON.stringify(r.drain.initialMaxLag)}, residue of transaction markers ${JSON.stringify(r.drain.residualMaxLag)})`
    : `**did not drain** within ${fmt(r.drain.seconds, 0)} s — measured anyway`;
  lines.push(
    `${r.warmup === undefined ? '' : `Warm-up before the ceilings (not counted): one import of ${fmt(r.warmup.records)} records (another seed, its own tenant) through the whole stack, ${fmt(r.warmup.rows)} rows in ${fmt(r.warmup.seconds, 1)} s, so that the brokers, PostgreSQL and the services are measured warm. `}` +
      `Backlog drain before measuring (not counted): ${drainText}; re-check after the first ceilings: ${r.drain.recheckDrained ? `${fmt(r.drain.recheckSeconds, 1)} s` : '**not drained**'}.` +
      ` Partitions owned by this run's processor(s) during the run (minimum, of each stage's input partitions): ${stageList.map((stage) => `${stage} ${run.minAssigned[stage]} of ${run.inputPartitions?.[stage] ?? 3}`).join(', ')}` +
      `${run.otherProcessorPids.length > 0 ? `; other people's processor processes were running (pids ${run.otherProcessorPids.join(', ')})` : ''}. ` +
      `Other people's integration tests run processors that join the same consumer groups; the run waited ${fmt(run.ownershipWaitSeconds, 1)} s for the groups to be its own, and this is attempt ${run.attempt}` +
      `${(r.discarded ?? []).length > 0 ? ` (discarded because another processor took partitions or other people's imports went through these processors mid-run: ${(r.discarded ?? []).map((d) => `attempt ${d.attempt}, ${fmt(d.recordsPerSecond)} records/s, owned ${JSON.stringify(d.minAssigned)}, foreign input ${JSON.stringify(d.foreign ?? {})}`).join('; ')})` : ''}.` +
      ` Input messages beyond what this file gives (other people's imports that went through this run's processors, or duplicates — see "committed" below): ${stageList.map((stage) => `${stage} ${fmt(run.foreign?.[stage] ?? Number.NaN)}`).join(', ')} (tolerated: ≤ ${MAX_FOREIGN_FILES} files, ≤ ${MAX_FOREIGN_SHARE * 100}% of the records).` +
      `${run.contaminated ? " **This run shared its processors or consumer groups with other people's work beyond that: its numbers are not this file's alone.**" : ''}`,
    '',
  );

  lines.push('| measure | value |');
  lines.push('| --- | --- |');
  lines.push(
    `| file | ${fmt(r.file.bytes / 1e6, 1)} MB, ${fmt(r.file.records)} records (${fmt(r.file.invalid)} invalid, ${fmt(r.file.duplicates)} duplicates) → ${fmt(r.file.distinctValidPermalinks)} rows |`,
  );
  lines.push(
    `| **end to end** (t0 → t1) | ${run.timedOut ? `**timed out** after ${fmt(run.seconds, 1)} s with ${fmt(run.rows)} rows` : `${fmt(run.seconds, 2)} s: **${fmt(run.recordsPerSecond)} records/s**, ${fmt(run.rowsPerSecond)} rows/s`} |`,
  );
  if (run.extractShares !== undefined) {
    const shares = run.extractShares.map((share) => `${fmt(share)} (${fmt((100 * share) / Math.max(1, run.extractOutputs), 0)}%)`);
    lines.push(`| extract work per replica (records out) | ${shares.join(' / ')} of ${fmt(run.extractOutputs)}, in ${fmt(run.pieces)} pieces |`);
  }
  lines.push(
    `| timeline (s after t0) | body read from disk ${fmt(run.bodySentSeconds, 2)}; 202 ${fmt(run.answeredSeconds, 2)}; extract committed ${fmt(run.stages.extract.doneAt, 1)}; first row ${fmt(run.firstRowSeconds, 2)}; validate done ${fmt(run.stages.validate.doneAt, 1)}; last load transaction began ${fmt(run.lastRowLoadedAtSeconds, 2)}; all rows seen ${fmt(run.seconds, 2)} |`,
  );
  lines.push(
    `| 202 answer | ${run.status}, ${fmt(run.answerRecords)} records counted; ValidationError produced during the run ${fmt(run.validationErrors)} (expected ${fmt(r.file.invalid)}) |`,
  );
  lines.push(
    `| processor RSS | idle ${run.idleRssMiB.map((v) => fmt(v, 1)).join(' / ')} MiB; **peak ${run.peakRssMiB.map((v) => fmt(v, 1)).join(' / ')} MiB** at ${(run.peakRssAtSeconds ?? []).map((v) => fmt(v, 1)).join(' / ')} s after t0 (VmHWM ${run.peakRssHwmMiB.map((v) => fmt(v, 1)).join(' / ')} MiB); during the backlog drain ${run.drainPeakRssMiB.map((v) => fmt(v, 1)).join(' / ')} MiB; JS heap used max ${fmt(run.heapUsedMaxMiB, 1)} MiB |`,
  );
  if (run.committed !== undefined) {
    lines.push(
      `| committed for this import, read back from Kafka (read_committed, request_id header) | RecordValidated ${fmt(run.committed.recordValidated)} (${fmt(run.committed.recordValidatedDistinct)} distinct values; the file has ${fmt(r.file.valid)} valid records), ValidationError ${fmt(run.committed.validationError)} (file: ${fmt(r.file.invalid)}); ` +
        `processor_retries_total ${stageList.map((stage) => `${stage} ${fmt(run.retries?.[stage] ?? Number.NaN)}`).join(', ')} |`,
    );
  }
  lines.push(`| ingress RSS peak | ${fmt(run.ingressPeakRssMiB, 1)} MiB |`);
  lines.push(`| CPU over t0 → t1 | ${cpuText(run.cpu, cores)} |`);
  lines.push(
    `| processor | ${fmt(run.processCpuSeconds, 1)} s of CPU (its own process_cpu_seconds_total), of which GC ${fmt(run.gcSeconds, 1)} s; event-loop delay p99 up to ${fmt(run.eventLoopLagP99MaxMs, 0)} ms |`,
  );
  for (const stage of stageList) {
    const s = run.stages[stage];
    lines.push(
      `| stage ${stage} | ${fmt(s.recordsIn)} input messages in ${fmt(s.batches)} committed batches, mean ${fmt(s.batchMeanMs, 0)} ms per batch (sum ${fmt(s.batchSecondsSum, 1)} s); active ${fmt(s.firstAt, 1)} → ${fmt(s.doneAt, 1)} s |`,
    );
  }
  for (const phase of run.phases) {
    lines.push(
      `| phase: ${phase.name}, ${fmt(phase.from, 1)} → ${fmt(phase.to, 1)} s | processor ${fmt(phase.processor)}%, postgres ${fmt(phase.postgres)}%, machine ${fmt(phase.machine)}% of ${cores * 100}% |`,
    );
  }
  r.copy.forEach((copy, i) => {
    lines.push(
      `| COPY ceiling ${i === 0 ? 'before' : 'after'} | ${fmt(copy.companies)} companies + ${fmt(copy.offices)} offices + ${fmt(copy.rounds)} funding rounds in ${fmt(copy.seconds, 2)} s: **${fmt(copy.rowsPerSecond)} rows/s**; CPU ${cpuText(copy.cpu, cores)} |`,
    );
  });
  r.writer.forEach((writer, i) => {
    // Newer runs measure both ways before and after (copy, insert | insert, copy); older ones insert once each.
    lines.push(
      `| company writer, ${writer.method ?? 'insert'} way, ${i < r.writer.length / 2 ? 'before' : 'after'} | ${fmt(writer.records)} records → ${fmt(writer.rows)} rows in ${writer.batches} batches, ${fmt(writer.seconds, 2)} s: **${fmt(writer.rowsPerSecond)} rows/s** (${fmt(writer.recordsPerSecond)} records/s); CPU ${cpuText(writer.cpu, cores)} |`,
    );
  });
  lines.push(
    `| parse + normalise + validate in one process (the bench, outside any timing) | ${fmt(r.prepare.total, 2)} s for ${fmt(r.file.records)} records: JSON.parse ${fmt(r.prepare.parse, 2)} s, normalizeRecord ${fmt(r.prepare.normalize, 2)} s, JSON.stringify ${fmt(r.prepare.stringify, 2)} s, JSON.parse + validateRecord ${fmt(r.prepare.validate, 2)} s |`,
  );
  lines.push('');
  lines.push('| ratio | value | target | verdict |');
  lines.push('| --- | --- | --- | --- |');
  const e2eOverCopy = run.recordsPerSecond / copyRate;
  lines.push(
    `| end-to-end records/s ÷ COPY rows/s (mean of before/after) | ${fmt(run.recordsPerSecond)} ÷ ${fmt(copyRate)} = **${fmt(e2eOverCopy, 3)}** (vs before ${fmt(run.recordsPerSecond / (r.copy[0]?.rowsPerSecond ?? Number.NaN), 3)}, vs after ${fmt(run.recordsPerSecond / (r.copy[1]?.rowsPerSecond ?? Number.NaN), 3)}) | ≥ ${targets.e2eOverCopy.toFixed(2)} | ${verdict(e2eOverCopy >= targets.e2eOverCopy)} |`,
  );
  const peak = Math.max(...run.peakRssMiB, ...run.peakRssHwmMiB.filter(Number.isFinite));
  lines.push(`| processor peak RSS (largest replica, sampled or VmHWM) | ${fmt(peak, 1)} MiB | ≤ ${targets.rssMiB} MiB | ${verdict(peak <= targets.rssMiB)} |`);
  lines.push(`| end-to-end rows/s ÷ COPY rows/s | ${fmt(run.rowsPerSecond / copyRate, 3)} | — (information) | — |`);
  lines.push(
    `| end-to-end rows/s ÷ company-writer rows/s (mean) | ${fmt(run.rowsPerSecond)} ÷ ${fmt(writerRate)} = ${fmt(run.rowsPerSecond / writerRate, 3)} | — (information) | — |`,
  );
  lines.push(
    `| company-writer rows/s ÷ COPY rows/s (${loadWayWriters(r)[0]?.method ?? 'insert'} way, the load stage's) | ${fmt(writerRate / copyRate, 3)} | — (information) | — |`,
  );
  if (loadWayWriters(r) !== r.writer && insertWayWriters(r).length > 0) {
    const insertRate = mean(insertWayWriters(r).map((writer) => writer.rowsPerSecond));
    lines.push(`| company writer, insert way ÷ COPY rows/s | ${fmt(insertRate / copyRate, 3)} | — (information) | — |`);
    lines.push(
      `| company writer, copy way ÷ insert way | ${fmt(writerRate)} ÷ ${fmt(insertRate)} = ${fmt(writerRate / insertRate, 2)} | — (information) | — |`,
    );
  }
  lines.push(
    `| the run had the pipeline to itself (every partition of every stage, no other processor, little foreign input) | ${run.contaminated ? 'no' : 'yes'} | yes | ${verdict(!run.contaminated)} |`,
  );
  lines.push(
    `| every row loaded, every invalid record reported | ${run.timedOut ? 'no' : 'rows yes'}; ValidationError ${fmt(run.validationErrors)} of ${fmt(r.file.invalid)} | all | ${verdict(!run.timedOut && run.validationErrors === r.file.invalid)} |`,
  );
  return lines.join('\n');
}

/** The writer measurements of the way the load stage uses (`copy`); older runs only measured `insert`. */
function loadWayWriters(r: Results): WriterResult[] {
  const copy = r.writer.filter((writer) => writer.method === 'copy');
  return copy.length > 0 ? copy : r.writer;
}

function insertWayWriters(r: Results): WriterResult[] {
  return r.writer.filter((writer) => (writer.method ?? 'insert') === 'insert');
}

/** CPU-seconds a window cost the named groups (from % of one core × window seconds). */
function cpuSeconds(cpu: CpuReport, names: string[]): number {
  return names.reduce((sum, name) => sum + ((cpu.groups[name] ?? 0) / 100) * cpu.seconds, 0);
}

/** The phase of the run a moment (s after t0) falls in. */
function phaseAt(run: PipelineRun, at: number): string {
  if (!Number.isFinite(at)) return 'at an unknown moment';
  if (at <= run.answeredSeconds) return 'during the upload';
  if (Number.isFinite(run.stages.extract.doneAt) && at <= run.stages.extract.doneAt + 0.5) return 'during the extract transaction';
  if (at <= run.seconds) return 'during validate + load';
  return 'just after the last row landed';
}

/** Paragraphs built from what the runs observed, plus findings measured once (bench/findings.md). */
function diagnosis(runs: Results[]): string[] {
  const out: string[] = [];
  const pipelineGroups = ['processor', 'kafka', 'postgres', 'minio', 'ingress'];
  for (const r of runs) {
    const run = r.run;
    const cores = r.machine.nproc;
    const replicas = r.settings.replicas;
    const label = `${replicas} replica${replicas === 1 ? '' : 's'}`;
    const total = run.seconds;
    const share = (seconds: number) => `${fmt((seconds / total) * 100)}%`;
    const extractSeconds = run.stages.extract.doneAt - run.answeredSeconds;
    const afterExtract = total - run.stages.extract.doneAt;
    const copyRate = mean(r.copy.map((copy) => copy.rowsPerSecond));
    const writerRate = mean(loadWayWriters(r).map((writer) => writer.rowsPerSecond));
    const loadPerBatch = run.stages.load.recordsIn / run.stages.load.batches;
    const validatePerBatch = run.stages.validate.recordsIn / run.stages.validate.batches;
    const phaseText = run.phases
      .map(
        (phase) =>
          `${phase.name} ${fmt(phase.to - phase.from, 1)} s at processor ${fmt(phase.processor)}% / postgres ${fmt(phase.postgres)}% / machine ${fmt(phase.machine)}%`,
      )
      .join('; ');
    out.push(
      `**${label}: where the ${fmt(total, 1)} s go.** Upload until the 202: ${fmt(run.answeredSeconds, 1)} s (${share(run.answeredSeconds)}). ` +
        (r.processorSettings === undefined
          ? `Extract: ${fmt(extractSeconds, 1)} s (${share(extractSeconds)}), a barrier — the whole file is ONE FileExtractSuccess message, and the extract stage writes all ${fmt(run.extractOutputs)} RecordExtracted events of one input message in ONE Kafka transaction ` +
            `(maxOutputsPerTransaction is only checked between input messages), so validate (read_committed) sees nothing until that commit; the ${fmt(run.stages.extract.batchMeanMs / 1000, 1)} s transaction runs on one partition, in one event loop, with the other two stages idle. `
          : `Extract: ${fmt(extractSeconds, 1)} s after the 202 (${share(extractSeconds)}) in ${fmt(run.pieces ?? 1)} piece${(run.pieces ?? 1) === 1 ? '' : 's'} spread over the partitions (split stage, FilePiece), committed in transactions of ${fmt(r.processorSettings.extractRecordsPerTransaction)} records (EXTRACT_RECORDS_PER_TRANSACTION), ` +
            `so validate and load start on the first of them (first row at ${fmt(run.firstRowSeconds, 1)} s) and run beside the rest of the extract, in the same event loop. `) +
        `Validate + load after the extract commit: ${fmt(afterExtract, 1)} s (${share(afterExtract)}): validate committed ${fmt(run.stages.validate.batches)} transactions of ${fmt(validatePerBatch)} records (mean ${fmt(run.stages.validate.batchMeanMs, 0)} ms each), ` +
        `and load wrote ${fmt(run.stages.load.batches)} Postgres batches of only ${fmt(loadPerBatch)} records on average (mean ${fmt(run.stages.load.batchMeanMs, 0)} ms each; the writer ceiling uses 1,000): the load consumer takes whatever validate has committed (LOAD_BATCH_LINGER_MS, 200 ms by default), so it follows validate's small transactions; ` +
        `the sums of batch durations (validate ${fmt(run.stages.validate.batchSecondsSum, 1)} s, load ${fmt(run.stages.load.batchSecondsSum, 1)} s over ${fmt(afterExtract, 1)} s) show about ${fmt(run.stages.validate.batchSecondsSum / afterExtract, 1)} and ${fmt(run.stages.load.batchSecondsSum / afterExtract, 1)} batches in flight at any time, i.e. all three partitions of both stages busy in the same event loop. ` +
        `Per phase: ${phaseText}.` +
        (run.stages.load.recordsIn > r.file.valid
          ? ` (The load stage took ${fmt(run.stages.load.recordsIn)} input messages for the file's ${fmt(r.file.valid)} valid records` +
            (run.committed !== undefined
              ? `; RecordValidated holds ${fmt(run.committed.recordValidated)} committed messages for this import, ${fmt(run.committed.recordValidated - run.committed.recordValidatedDistinct)} of them byte-identical copies — see "Duplicates" below.)`
              : '.)')
          : ''),
    );
    const pipelineCpu = cpuSeconds(run.cpu, pipelineGroups);
    const copyCpu = mean(r.copy.map((copy) => cpuSeconds(copy.cpu, ['bench', 'postgres']) / copy.companies));
    const writerCpu = mean(loadWayWriters(r).map((writer) => cpuSeconds(writer.cpu, ['bench', 'postgres']) / writer.rows));
    const perRecord = pipelineCpu / r.file.records;
    const serverPerRecord = cpuSeconds(run.cpu, ['kafka', 'postgres']) / r.file.records;
    const othersShare = run.cpu.others + (run.cpu.groups.otherProcessors ?? 0) + (run.cpu.groups.bench ?? 0);
    out.push(
      `**${label}: the scarce resource is CPU per record.** Over t0 → t1 the machine was at ${fmt(run.cpu.machine)}% of ${cores * 100}%: processor${replicas === 1 ? '' : 's'} ${fmt(run.cpu.groups.processor ?? 0)}%, Kafka ${fmt(run.cpu.groups.kafka ?? 0)}%, PostgreSQL ${fmt(run.cpu.groups.postgres ?? 0)}%, ingress ${fmt(run.cpu.groups.ingress ?? 0)}%, MinIO ${fmt(run.cpu.groups.minio ?? 0)}%, ` +
        `and ${fmt(othersShare)}% for everything else (the registry, the bench, other people's tests). The pipeline's own processes spent ${fmt(pipelineCpu, 1)} CPU-seconds = ${fmt(perRecord * 1000, 2)} ms per record ` +
        `(processor ${fmt((cpuSeconds(run.cpu, ['processor']) / r.file.records) * 1000, 2)} ms, Kafka brokers ${fmt((cpuSeconds(run.cpu, ['kafka']) / r.file.records) * 1000, 2)} ms, PostgreSQL ${fmt((cpuSeconds(run.cpu, ['postgres']) / r.file.records) * 1000, 2)} ms); ` +
        `COPY costs ${fmt(copyCpu * 1000, 2)} ms per row (client + PostgreSQL) and the company writer ${fmt(writerCpu * 1000, 2)} ms: per record the pipeline burns ${fmt(perRecord / copyCpu, 1)}× the CPU of COPY. ` +
        `At that cost, even ${cores} cores kept 100% busy by the pipeline alone would give at most ${cores} ÷ ${fmt(perRecord * 1000, 2)} ms = ${fmt(cores / perRecord)} records/s = ${fmt(cores / perRecord / copyRate, 2)} of COPY; ` +
        `0.50 of COPY (${fmt(copyRate / 2)} records/s) needs at most ${fmt((cores / (copyRate / 2)) * 1000, 2)} ms of CPU per record on ${cores} cores, i.e. the target is out of reach on this machine without cutting the pipeline's CPU per record by ${fmt(perRecord / (cores / (copyRate / 2)), 1)}×. ` +
        `Of that budget, the Kafka brokers (replication factor 3: every byte written by three brokers on the same ${cores} cores) and PostgreSQL alone spent ${fmt(serverPerRecord * 1000, 2)} ms per record (${fmt((serverPerRecord / (cores / (copyRate / 2))) * 100)}%), leaving ${fmt(Math.max(0, cores / (copyRate / 2) - serverPerRecord) * 1000, 2)} ms for the processor, the ingress and MinIO, which spent ${fmt((cpuSeconds(run.cpu, ['processor', 'ingress', 'minio']) / r.file.records) * 1000, 2)} ms. The processor alone spent ${fmt(run.processCpuSeconds, 1)} s of CPU (${fmt(run.gcSeconds, 1)} s of it in GC), ` +
        `${fmt(run.processCpuSeconds / r.prepare.total, 1)}× what the bare parse + normalise + stringify + parse + validate of the same records took in the bench (${fmt(r.prepare.total, 1)} s); event-loop delay p99 reached ${fmt(run.eventLoopLagP99MaxMs, 0)} ms, so every Kafka/Postgres round trip of every stage waits behind the others' CPU work.`,
    );
    out.push(
      `**${label}: the sink vs the rest.** The company writer alone (${loadWayWriters(r)[0]?.method ?? 'insert'} way, batches of 1,000, no Kafka) loads ${fmt(writerRate)} rows/s, ${fmt(writerRate / copyRate, 3)} of COPY's ${fmt(copyRate)}` +
        (writerRate / copyRate < targets.e2eOverCopy
          ? ` — already below the 0.50 target on its own, so the target cannot be met with this sink even if extract, validate and Kafka cost nothing. `
          : ` — the sink alone clears the 0.50 target, so what holds the pipeline below it is upstream of the database: Kafka and the processor's event loop. `) +
        (insertWayWriters(r).length > 0 && loadWayWriters(r) !== r.writer
          ? `The insert way (multi-row INSERT … ON CONFLICT text built by pg-promise's formatter and parsed again by PostgreSQL) loads ${fmt(mean(insertWayWriters(r).map((writer) => writer.rowsPerSecond)))} rows/s in the same run: the copy way is ${fmt(writerRate / mean(insertWayWriters(r).map((writer) => writer.rowsPerSecond)), 2)}× it. `
          : `(Its multi-row INSERT … ON CONFLICT text is built by pg-promise's formatter and parsed again by PostgreSQL, plus the child-row DELETEs and INSERTs.) `) +
        `End to end reaches ${fmt(run.rowsPerSecond)} rows/s, ${fmt(run.rowsPerSecond / writerRate, 2)} of the writer: the rest of the gap (${fmt(r.file.distinctValidPermalinks / writerRate, 1)} s of writer time vs ${fmt(total, 1)} s end to end) is the upload, the extract barrier and validate, ` +
        `which run before or in the same event loop as the load, on the same ${cores} cores.`,
    );
    const peakAt = run.peakRssAtSeconds ?? [];
    out.push(
      `**${label}: memory.** Processor RSS ${run.idleRssMiB.map((v) => fmt(v, 0)).join(' / ')} MiB idle → ${run.peakRssMiB.map((v) => fmt(v, 0)).join(' / ')} MiB peak` +
        (peakAt.length > 0 ? `, reached ${peakAt.map((at) => `${phaseAt(run, at)} (${fmt(at, 1)} s)`).join(' / ')}` : '') +
        `; the JS heap in use peaked at ${fmt(run.heapUsedMaxMiB, 0)} MiB (largest replica, /metrics every ${r.settings.metricsPollMs} ms)` +
        (run.heapTotalMaxMiB !== undefined && run.externalMaxMiB !== undefined
          ? `, the V8 heap's committed size at ${fmt(run.heapTotalMaxMiB, 0)} MiB and external (Buffer) memory at ${fmt(run.externalMaxMiB, 0)} MiB; the rest of the RSS is code, the runtime and allocator slack.`
          : `; the rest of the RSS lies outside the used JS heap (V8's committed-but-free heap, off-heap Buffers such as fetched Kafka batches and the encoded batches of open transactions) — these runs did not break it down further.`),
    );
  }
  const withCommitted = runs.filter((r) => r.run.committed !== undefined);
  if (withCommitted.length > 0) {
    const facts = withCommitted.map((r) => {
      const c = r.run.committed!;
      return (
        `${r.settings.replicas} replica${r.settings.replicas === 1 ? '' : 's'}: RecordValidated ${fmt(c.recordValidated)} committed messages for this import against ${fmt(r.file.valid)} valid records (${fmt(c.recordValidated - c.recordValidatedDistinct)} byte-identical copies), ` +
        `ValidationError ${fmt(c.validationError)} against ${fmt(r.file.invalid)}, while the processor's own counters say validate read ${fmt(r.run.stages.validate.recordsIn)} and wrote ${fmt(r.run.validationErrors)} ValidationErrors; ` +
        `processor_retries_total: ${stageList.map((stage) => `${stage} ${fmt(r.run.retries?.[stage] ?? Number.NaN)}`).join(', ')}`
      );
    });
    const anyDuplicates = withCommitted.some((r) => r.run.committed!.recordValidated > r.file.valid || r.run.committed!.validationError > r.file.invalid);
    out.push(
      `**Duplicates (a correctness finding, not a speed one).** ${facts.join('; ')}. ` +
        (anyDuplicates
          ? `So the validate stage's transactions committed some outputs twice — exactly-once between validate and load does not hold under this load. The copies are byte-identical (same record_index, same document), ` +
            `so they come from the same input message being written in two committed transactions (or the same produce request being written twice), not from the file. The rows are right (the upsert collapses them), but the load stage writes them again and RecordsLoaded over-counts. ` +
            `This bench does not find the cause; it is worth its own issue (the runner retrying a transaction whose commit the broker had in fact applied would fit the numbers when retries > 0).`
          : 'No duplicates in these runs.'),
    );
  }
  if (withCommitted.length === 0 && runs.some((r) => r.run.stages.load.recordsIn > r.file.valid)) {
    out.push(
      `**Duplicates (a correctness finding, not a speed one; checked by hand, not by these runs).** In both runs above the load stage took more input messages than the file has valid records while validate read exactly ${fmt(runs[0]?.file.records ?? 20_000)}. ` +
        finding('pipeline-duplicates-by-hand'),
    );
  }
  const one = runs.find((run) => run.settings.replicas === 1);
  const two = runs.find((run) => run.settings.replicas === 2);
  if (one !== undefined && two !== undefined) {
    out.push(
      `**1 vs 2 replicas.** End to end ${fmt(one.run.recordsPerSecond)} → ${fmt(two.run.recordsPerSecond)} records/s (×${fmt(two.run.recordsPerSecond / one.run.recordsPerSecond, 2)}); ` +
        `ratio to COPY ${fmt(one.run.recordsPerSecond / mean(one.copy.map((copy) => copy.rowsPerSecond)), 3)} → ${fmt(two.run.recordsPerSecond / mean(two.copy.map((copy) => copy.rowsPerSecond)), 3)}. ` +
        `The file's extract is shared by its pieces (extract work per replica: ${(two.run.extractShares ?? []).map((share) => fmt((100 * share) / Math.max(1, two.run.extractOutputs))).join('% / ')}%, by the partitions each replica owns), and ` +
        `each run's ratio to the COPY ceiling measured in the same run is what compares runs made minutes apart on a machine whose speed moves (COPY itself: ${fmt(mean(one.copy.map((copy) => copy.rowsPerSecond)))} and ${fmt(mean(two.copy.map((copy) => copy.rowsPerSecond)))} rows/s); ` +
        `on ${one.machine.nproc} cores that were already at ${fmt(one.run.cpu.machine)}% (1 replica) and ${fmt(two.run.cpu.machine)}% (2) it competes for the same CPU with Kafka and PostgreSQL. Either way the ratio stays far below the target: replicas scale the stages out only where there are cores to scale onto.`,
    );
  }
  if (one !== undefined) {
    const normalised = (run: Results) => run.run.recordsPerSecond / mean(run.copy.map((copy) => copy.rowsPerSecond));
    const others = runs.filter((run) => run.settings.replicas > 1);
    if (others.length > 0) {
      out.push(
        `**Replicas against 1, each normalised by its own run's COPY ceiling.** ` +
          others
            .map(
              (run) =>
                `${run.settings.replicas} replicas: ×${fmt(run.run.recordsPerSecond / one.run.recordsPerSecond, 2)} raw, ×${fmt(normalised(run) / normalised(one), 2)} normalised, machine at ${fmt(run.run.cpu.machine)}% of ${run.machine.nproc * 100}%`,
            )
            .join('; ') +
          ` (1 replica: ${fmt(one.run.recordsPerSecond)} records/s with the machine at ${fmt(one.run.cpu.machine)}%). On ${one.machine.nproc} cores the CPU left idle by one replica bounds what more replicas can add.`,
      );
    }
  }
  out.push(finding('pipeline-cpu-profile'));

  if (one !== undefined) {
    const validateLoad = one.run.phases.find((phase) => phase.name.startsWith('validate + load'));
    const extractPhase = one.run.phases.find((phase) => phase.name.startsWith('extract'));
    const copyRate = mean(one.copy.map((copy) => copy.rowsPerSecond));
    const writerRate = mean(loadWayWriters(one).map((writer) => writer.rowsPerSecond));
    if (one.processorSettings === undefined) {
      out.push(
        `**Bottleneck, in short (1 replica).** The processor's single event loop. First alone: the extract stage turns the one 80 MB file into ${fmt(one.run.extractOutputs)} events inside ONE Kafka transaction, ` +
          `${fmt(one.run.stages.extract.doneAt - one.run.answeredSeconds, 1)} s (${fmt(((one.run.stages.extract.doneAt - one.run.answeredSeconds) / one.run.seconds) * 100)}% of the run) with the processor at ${fmt(extractPhase?.processor ?? Number.NaN)}% of a core (its GC and I/O threads included) and validate/load unable to start (read_committed). ` +
          `Then shared: validate and load run their 3 partitions each in the same event loop for ${fmt((validateLoad?.to ?? Number.NaN) - (validateLoad?.from ?? Number.NaN), 1)} s with the processor at ${fmt(validateLoad?.processor ?? Number.NaN)}%, PostgreSQL at ${fmt(validateLoad?.postgres ?? Number.NaN)}% and the machine at ${fmt(validateLoad?.machine ?? Number.NaN)}% of ${one.machine.nproc * 100}%, ` +
          `every batch a chain of round trips (Kafka transaction: produce, AddOffsetsToTxn, TxnOffsetCommit, EndTxn, all acks=all to 3 brokers; Postgres: BEGIN … COMMIT plus a RecordsLoaded produce) that waits behind the other stage's CPU work. ` +
          `Underneath both: ${fmt((cpuSeconds(one.run.cpu, pipelineGroups) / one.file.records) * 1000, 2)} ms of CPU per record across processor, Kafka and PostgreSQL, which caps this ${one.machine.nproc}-core machine at about ${fmt(one.machine.nproc / (cpuSeconds(one.run.cpu, pipelineGroups) / one.file.records))} records/s whatever the scheduling. ` +
          `The sink by itself is not enough either: the company writer reaches only ${fmt(writerRate / copyRate, 2)} of COPY with 1,000-record batches, and the pipeline gives it ~${fmt(one.run.stages.load.recordsIn / one.run.stages.load.batches)}-record batches. ` +
          `Levers, by size: let a big file's extract commit every N outputs so validate/load start within a second instead of after ${fmt(one.run.stages.extract.doneAt, 0)} s; load through COPY into a temporary table + one INSERT … SELECT … ON CONFLICT (or unnest of arrays) instead of pg-promise-formatted VALUES text; ` +
          `give load bigger batches (validate's transactions carry ~${fmt(one.run.stages.validate.recordsIn / one.run.stages.validate.batches)} records); and stop re-serialising each ~4 KB document in every stage (JSON ↔ object ↔ Avro several times).`,
      );
    } else {
      const pipelineCpuPerRecord = cpuSeconds(one.run.cpu, pipelineGroups) / one.file.records;
      const kafkaShare = cpuSeconds(one.run.cpu, ['kafka']) / cpuSeconds(one.run.cpu, pipelineGroups);
      out.push(
        `**Bottleneck, in short (1 replica).** CPU per record, shared by three kinds of process on ${one.machine.nproc} cores: ${fmt(pipelineCpuPerRecord * 1000, 2)} ms of CPU per record across processor, Kafka and PostgreSQL ` +
          `(Kafka's three brokers ${fmt(kafkaShare * 100)}% of it), which caps this machine at about ${fmt(one.machine.nproc / pipelineCpuPerRecord)} records/s whatever the scheduling; the run reached ${fmt(one.run.recordsPerSecond)}. ` +
          `Within that, the run lasts as long as the extract of its one file: ${fmt(((one.run.stages.extract.doneAt - one.run.answeredSeconds) / one.run.seconds) * 100)}% of it, in ${fmt(one.run.pieces ?? 1)} pieces that one replica extracts one after the other, in the event loop that validate and load share. ` +
          `The sink alone (company writer, ${loadWayWriters(one)[0]?.method ?? 'insert'} way) reaches ${fmt(writerRate / copyRate, 2)} of COPY${writerRate / copyRate >= targets.e2eOverCopy ? ', above the target: the gap is upstream of it' : ', itself below the target'}. ` +
          `Every record crosses Kafka twice (RecordExtracted, RecordValidated), each time written to 3 replicas, read by the followers and by the next stage, inside transactions (produce, AddPartitionsToTxn, AddOffsetsToTxn, TxnOffsetCommit, EndTxn with its markers), ` +
          `and the processor re-serialises each ~4 KB document several times (JSON text → object → Avro → object → COPY text). ` +
          `${finding('pipeline-compression-levers')} ` +
          `More replicas sharing a big file's pieces can only use the CPU left idle (the machine was at ${fmt(one.run.cpu.machine)}% of ${one.machine.nproc * 100}% with one, so at most ${fmt((one.machine.nproc * 100) / one.run.cpu.machine, 2)}× on this machine). Fusing validate into extract would save one Kafka crossing, but the stages are separate consumer groups by design. ${finding('pipeline-own-code-share')} ` +
          `None of these brings the pipeline near the CPU per record that 0.50 of COPY allows here, since the Kafka brokers and PostgreSQL alone spend nearly all of it (above): the target needs more cores than this machine has (brokers and PostgreSQL on their own hosts, as in production), where the stages scale out by partition.`,
      );
    }
  }
  return out;
}

stopOnInterrupt(
  log,
  () =>
    `rows of ${tenants.pipeline}, ${tenants.copy.join(', ')}, ${tenants.writer.join(', ')} and objects under ${tenants.pipeline}/ may remain; temp files in ${tmpDir}`,
);

await runMain(log, async () => {
  if (process.argv.includes('--render-only')) {
    writeSection(resultsFile, '## bench:pipeline', renderSection());
    log(`re-rendered the "## bench:pipeline" section of ${resultsFile} from bench/tmp/pipeline-last-r*.json`);
  } else {
    await main();
  }
});
