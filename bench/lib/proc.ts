/**
 * What the benchmarks read from /proc: CPU ticks of processes and of the machine, RSS, and the
 * local stack's servers found by their command lines. Read-only, but for resetting the VmHWM of
 * a process the benchmark started (resetHwm).
 */
import { execFileSync } from 'node:child_process';
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';

export const clockTicks = (() => {
  try {
    return Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
  } catch {
    return 100;
  }
})();

export function processTicks(pid: number): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return Number(fields[11]) + Number(fields[12]);
  } catch {
    return 0;
  }
}

export function machineTicks(): { busy: number; total: number } {
  const line = readFileSync('/proc/stat', 'utf8').split('\n')[0] ?? '';
  const values = line.trim().split(/\s+/).slice(1, 9).map(Number);
  const total = values.reduce((sum, value) => sum + value, 0);
  return { busy: total - (values[3] ?? 0) - (values[4] ?? 0), total };
}

export type StackGroup = 'postgres' | 'kafka' | 'minio' | 'registry' | 'otherProcessors';

/** The stack's servers and other people's processors, found by their command lines. */
export function findPids(mine: Set<number>): Record<StackGroup, number[]> {
  const found: Record<StackGroup, number[]> = { postgres: [], kafka: [], minio: [], registry: [], otherProcessors: [] };
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    const pid = Number(entry);
    if (mine.has(pid)) continue;
    let cmdline: string;
    let comm = '';
    try {
      cmdline = readFileSync(`/proc/${entry}/cmdline`, 'utf8').replaceAll('\0', ' ');
      comm = readFileSync(`/proc/${entry}/comm`, 'utf8').trim();
    } catch {
      continue;
    }
    if (/\bminio[^ ]*\s+server\b/.test(cmdline)) found.minio.push(pid);
    else if (cmdline.includes('kafka.Kafka')) found.kafka.push(pid);
    else if (cmdline.includes('apicurio-registry')) found.registry.push(pid);
    else if (comm === 'postgres' || /^postgres[: ]/.test(cmdline) || /\/postgres\s+-D\b/.test(cmdline)) found.postgres.push(pid);
    else if (cmdline.includes('topology/main.ts') || cmdline.includes('topology/main.js')) found.otherProcessors.push(pid);
  }
  return found;
}

export interface CpuReport {
  /** % of one core per group over the window. */
  groups: Record<string, number>;
  /** Busy cores × 100 for the whole machine. */
  machine: number;
  /** machine − the groups. */
  others: number;
  seconds: number;
}

/**
 * CPU over a window per process group. Postgres backends come and go, so the postgres group is
 * re-discovered at the end too: a backend that exited during the window is lost (undercount).
 */
export function cpuMeter(groups: Record<string, number[]>, rediscover?: () => Record<string, number[]>): () => CpuReport {
  const started = performance.now();
  const before = new Map<number, number>();
  for (const pids of Object.values(groups)) for (const pid of pids) before.set(pid, processTicks(pid));
  const machineBefore = machineTicks();
  return () => {
    const seconds = (performance.now() - started) / 1000;
    const machineAfter = machineTicks();
    const machine = ((machineAfter.busy - machineBefore.busy) / clockTicks / seconds) * 100;
    const report: CpuReport = { groups: {}, machine, others: machine, seconds };
    const current = { ...groups, ...(rediscover?.() ?? {}) };
    for (const [name, pids] of Object.entries(current)) {
      const ticks = [...new Set(pids)].reduce((sum, pid) => sum + Math.max(0, processTicks(pid) - (before.get(pid) ?? 0)), 0);
      const value = (ticks / clockTicks / seconds) * 100;
      report.groups[name] = value;
      report.others -= value;
    }
    report.others = Math.max(0, report.others);
    return report;
  };
}

export function vm(pid: number, field: 'VmRSS' | 'VmHWM'): number {
  try {
    const match = new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return match?.[1] === undefined ? Number.NaN : Number(match[1]) * 1024;
  } catch {
    return Number.NaN;
  }
}

/** Each process's median VmRSS (bytes) over `count` samples 50 ms apart: its resting size. */
export async function medianRss(pids: number[], count: number): Promise<number[]> {
  const samples: number[][] = pids.map(() => []);
  for (let i = 0; i < count; i++) {
    pids.forEach((pid, n) => samples[n]!.push(vm(pid, 'VmRSS')));
    await sleep(50);
  }
  return samples.map((values) => Float64Array.from(values).sort()[Math.floor(count / 2)] ?? Number.NaN);
}

/** Resets a process's VmHWM to its current RSS (clear_refs 5); false where the kernel or permissions refuse. */
export function resetHwm(pid: number): boolean {
  try {
    writeFileSync(`/proc/${pid}/clear_refs`, '5');
    return true;
  } catch {
    return false;
  }
}

export interface RssPeaks {
  /** Largest VmRSS sampled (bytes), NaN before the first sample. */
  peak(pid: number): number;
  /** performance.now() of that sample, NaN before the first. */
  at(pid: number): number;
  /** Forgets the peaks so far. */
  reset(): void;
  stop(): void;
}

/** Samples the VmRSS of `pids()` every `intervalMs`: peaks between samples are missed, VmHWM catches them. */
export function sampleRssPeaks(pids: () => number[], intervalMs: number): RssPeaks {
  const peaks = new Map<number, number>();
  const peakAt = new Map<number, number>();
  const timer = setInterval(() => {
    for (const pid of pids()) {
      const rss = vm(pid, 'VmRSS');
      if (Number.isFinite(rss) && rss > (peaks.get(pid) ?? 0)) {
        peaks.set(pid, rss);
        peakAt.set(pid, performance.now());
      }
    }
  }, intervalMs);
  return {
    peak: (pid) => peaks.get(pid) ?? Number.NaN,
    at: (pid) => peakAt.get(pid) ?? Number.NaN,
    reset() {
      peaks.clear();
      peakAt.clear();
    },
    stop: () => clearInterval(timer),
  };
}
