/** The pipeline measured: the unmeasured warm-up import, then one measured attempt. */
import { createReadStream, rmSync, statSync } from 'node:fs';
import os from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import { request } from 'undici';
import { topics } from '../../core/pipeline.js';
import { createPostgres, type Postgres } from '../../core/postgres.js';
import { type CompaniesSummary, writeCompanies } from '../../examples/generate/companies.js';
import { type Child } from '../lib/children.js';
import { metric, type Sample } from '../lib/metrics.js';
import { clockTicks, cpuMeter, findPids, machineTicks, processTicks, type RssPeaks, vm } from '../lib/proc.js';
import { fmt } from '../lib/report.js';
import { MAX_FOREIGN_FILES, MAX_FOREIGN_SHARE, deltaAll, lagView, scrapeAll } from './lag.js';
import { countCommitted, endOffsets } from './readback.js';
import { cpuText } from './render.js';
import { type PhaseCpu, type PipelineRun, type StageWindow } from './results.js';
import { MiB, log, settings, stageList, stamp, tmpDir, type Stage, warmupTenant } from './settings.js';

/** Imports a small file (another seed, its own tenant) and waits for all of its rows. */
export async function warmUp(ingress: Child, db: ReturnType<typeof createPostgres>): Promise<{ records: number; rows: number; seconds: number }> {
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

/** What the measured attempt needs of the run so far. */
export interface Attempt {
  attempt: number;
  tenant: string;
  file: string;
  bytes: number;
  summary: CompaniesSummary;
  ingress: Child;
  processors: Child[];
  db: Postgres;
  /** This run's own pids (the bench, its ingress and processors). */
  mine: () => Set<number>;
  /** The CPU groups of cpuMeter: bench, processor, the stack's servers, other processors. */
  groups: () => Record<'bench' | 'processor' | 'postgres' | 'kafka' | 'minio' | 'otherProcessors', number[]>;
  rss: RssPeaks;
  /** Partitions of each stage's input topic: all of them are this run's. */
  owned: Record<Stage, number>;
  ownership: { seconds: number; sole: boolean };
  idleRss: number[];
  hwmReset: boolean[];
  drainPeakRssMiB: number[];
  /** The S3 key of the import, once the ingress has answered. */
  onImported: (key: string) => void;
}

/**
 * One measured import: t0 just before the POST streams the file, t1 when the tenant's rows
 * reach the file's distinct valid permalinks; the processors' metrics, CPU and RSS meanwhile,
 * and what validate committed for it read back from Kafka afterwards.
 */
export async function measureAttempt(a: Attempt): Promise<PipelineRun> {
  const { attempt, tenant, file, bytes, summary, ingress, processors, db, mine, groups, rss, owned, ownership, idleRss, hwmReset, drainPeakRssMiB } = a;
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
  const timeline: Array<{ at: number; scrapes: Sample[][]; processorTicks: number; machine: { busy: number; total: number }; postgresTicks: number }> = [];
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
  a.onImported(importKey);
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
  const run: PipelineRun = {
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
    retries: Object.fromEntries(stageList.map((stage) => [stage, deltaAll(before, after, 'processor_retries_total', { stage })])) as Record<Stage, number>,
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
  return run;
}
