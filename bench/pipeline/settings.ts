/** bench:pipeline's settings (from its environment), paths, tenants and the names every phase shares. */
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadConfig } from '../../core/config.js';
import { envNumber } from '../lib/env.js';
import { createLog } from '../lib/run.js';

export const MiB = 1024 * 1024;
export const settings = {
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

export const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
export const tmpDir = join(root, 'bench', 'tmp');
export const profDir = join(tmpDir, 'prof-pipeline');
export const resultsFile = join(root, 'bench', 'results.md');
export const config = loadConfig();
export const stamp = Date.now();
export const tenants = {
  pipeline: `benchp-${stamp}`,
  copy: [`benchc-${stamp}`, `benchc-${stamp}-2`],
  writer: [1, 2, 3, 4].map((n) => `benchw-${stamp}-${n}`),
};
export const writerGroups = [1, 2, 3, 4].map((n) => `bench-pipeline-writer-${stamp}-${n}`);
export const targets = { e2eOverCopy: 0.5, rssMiB: 300 };
export const stageList = ['split', 'extract', 'validate', 'load'] as const;
export type Stage = (typeof stageList)[number];

export const log = createLog('bench:pipeline');
export const warmupTenant = `${tenants.pipeline}-warmup`;
