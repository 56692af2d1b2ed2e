/** bench:ingest's settings (from its environment), paths, tenant, targets and log. */
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadConfig } from '../../core/config.js';
import { envNumber } from '../lib/env.js';
import { createLog } from '../lib/run.js';

export const MiB = 1024 * 1024;
export const settings = {
  seconds: envNumber('BENCH_SECONDS', 10),
  warmupSeconds: envNumber('BENCH_WARMUP_SECONDS', 3),
  connections: Math.round(envNumber('BENCH_CONNECTIONS', 64)),
  fileBytes: Math.round(envNumber('BENCH_FILE_BYTES', 5000)),
  bigMiB: envNumber('BENCH_BIG_MIB', 200),
  rounds: Math.round(envNumber('BENCH_ROUNDS', 2)),
  phases: new Set((process.env.BENCH_PHASES ?? 'a,b,c,d,pub').split(',').map((phase) => phase.trim())),
  cpuProf: process.env.BENCH_CPU_PROF === '1',
};
export const allPhases = ['a', 'b', 'c', 'd', 'pub'].every((phase) => settings.phases.has(phase));

export const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
export const tmpDir = join(root, 'bench', 'tmp');
export const resultsFile = join(root, 'bench', 'results.md');
export const config = loadConfig();
export const bucket = config.s3.bucket;
export const tenant = `bench-${Date.now()}`;
// claimRatio: issue 11's bound on the durable request-id claim (under 10% of imports/s).
export const targets = { bOverC: 0.7, p99Ms: 50, rssMiB: 150, claimRatio: 0.9 };
export const log = createLog('bench:ingest');
