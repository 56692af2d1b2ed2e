/** What one bench:pipeline run records (bench/tmp/pipeline-last-r<replicas>.json), and reading it back. */
import { type CpuReport } from '../lib/proc.js';
import { type Machine } from '../lib/report.js';
import { type CopyResult, type Prepared, type WriterResult } from './ceilings.js';
import { type DrainReport } from './lag.js';
import { settings, type Stage } from './settings.js';

export interface StageWindow {
  recordsIn: number;
  batches: number;
  batchSecondsSum: number;
  batchMeanMs: number;
  /** Seconds after t0 when the stage's input counter first moved / reached its target (metrics polls, ±0.5 s). */
  firstAt: number;
  doneAt: number;
}

export interface PhaseCpu {
  name: string;
  from: number;
  to: number;
  /** % of one core, summed over this run's processors. */
  processor: number;
  machine: number;
  postgres: number;
}

export interface PipelineRun {
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

export interface Results {
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

/** The writer measurements of the way the load stage uses (`copy`); older runs only measured `insert`. */
export function loadWayWriters(r: Results): WriterResult[] {
  const copy = r.writer.filter((writer) => writer.method === 'copy');
  return copy.length > 0 ? copy : r.writer;
}

export function insertWayWriters(r: Results): WriterResult[] {
  return r.writer.filter((writer) => (writer.method ?? 'insert') === 'insert');
}

/** CPU-seconds a window cost the named groups (from % of one core × window seconds). */
export function cpuSeconds(cpu: CpuReport, names: string[]): number {
  return names.reduce((sum, name) => sum + ((cpu.groups[name] ?? 0) / 100) * cpu.seconds, 0);
}

/** The phase of the run a moment (s after t0) falls in. */
export function phaseAt(run: PipelineRun, at: number): string {
  if (!Number.isFinite(at)) return 'at an unknown moment';
  if (at <= run.answeredSeconds) return 'during the upload';
  if (Number.isFinite(run.stages.extract.doneAt) && at <= run.stages.extract.doneAt + 0.5) return 'during the extract transaction';
  if (at <= run.seconds) return 'during validate + load';
  return 'just after the last row landed';
}
