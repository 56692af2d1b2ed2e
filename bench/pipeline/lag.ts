/**
 * The processors' view of the shared topics, from their /metrics: lag per stage, partitions
 * owned, and waiting until the backlog is drained and the consumer groups are this run's alone.
 */
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import { createKafka, partitionCountsOf } from '../../core/kafka.js';
import { createS3 } from '../../core/s3.js';
import { etlTopology } from '../../topology/etl/topology.js';
import { type Child } from '../lib/children.js';
import { metric, scrape, type Sample } from '../lib/metrics.js';
import { findPids } from '../lib/proc.js';
import { fmt } from '../lib/report.js';
import { config, log, settings, stageList, type Stage } from './settings.js';

// ---------------------------------------------------------------------------------------------
// Prometheus text from /metrics

export async function scrapeAll(processors: Child[]): Promise<Sample[][]> {
  return Promise.all(processors.map((child) => scrape(child.url, 10_000)));
}

/** Sum over replicas of a metric's change between two scrapes of all of them. */
export function deltaAll(before: Sample[][], after: Sample[][], name: string, labels: Record<string, string> = {}): number {
  return after.reduce((sum, samples, i) => sum + metric(samples, name, labels) - metric(before[i] ?? [], name, labels), 0);
}

// ---------------------------------------------------------------------------------------------
// Draining the shared topics' backlog before measuring

export interface LagView {
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

export function lagView(scrapes: Sample[][]): LagView {
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
export const MAX_FOREIGN_FILES = 10;
export const MAX_FOREIGN_SHARE = 0.05;

/** Most control records (transaction markers) a drained partition may still show as lag. */
export const MAX_MARKER_LAG = 10;

/**
 * A candidate for "drained": every FileExtractSuccess partition at lag 0, and every
 * FilePiece / RecordExtracted / RecordValidated partition at a small lag. Those topics are written by
 * transactional producers, so a partition can end in control records (the commit marker of the
 * last transaction, abort markers of transactions aborted after they added the partition) that
 * a read_committed consumer never receives and so never commits past: the committed offset stays
 * a few short of the end offset for good. drain() also requires that nothing moves meanwhile.
 */
export function isDrained(view: LagView): boolean {
  return (
    view.complete &&
    view.maxLag.split === 0 &&
    view.maxLag.extract <= MAX_MARKER_LAG &&
    view.maxLag.validate <= MAX_MARKER_LAG &&
    view.maxLag.load <= MAX_MARKER_LAG
  );
}

export const lagSignature = (view: LagView) => JSON.stringify([...view.lags].sort());

export interface DrainReport {
  seconds: number;
  drained: boolean;
  initialMaxLag: Record<Stage, number>;
  /** Max lag per stage once drained (transaction markers, see isDrained). */
  residualMaxLag: Record<Stage, number>;
  recordsProcessed: number;
}

export async function drain(processors: Child[], timeoutSeconds: number): Promise<DrainReport> {
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
export async function inputPartitions(s3: ReturnType<typeof createS3>): Promise<Record<Stage, number>> {
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
export async function waitForSoleOwnership(
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
