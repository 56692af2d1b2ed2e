/** What one bench:ingest run records (bench/tmp/ingest-last.json). */
import { type CpuReport } from '../lib/proc.js';
import { type Machine } from '../lib/report.js';
import { type IngressBreakdown } from './ingress-metrics.js';
import { type LoadResult } from './runners.js';
import { settings } from './settings.js';

export interface BigUpload {
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

export interface Results {
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
