/**
 * What the benchmarks' reports share: number formatting, the CPU line, verdicts, the machine
 * they ran on, Markdown tables, and replacing one benchmark's section of bench/results.md.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';

/** en-US grouping with exactly `digits` decimals; `missing` for NaN and ±Infinity. */
export function fmt(value: number, digits = 0, missing = '—'): string {
  if (!Number.isFinite(value)) return missing;
  return value.toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits });
}

export const mean = (values: number[]): number => values.reduce((sum, value) => sum + value, 0) / values.length;

export const verdict = (ok: boolean): string => (ok ? '**PASS**' : '**MISS**');

/** CPU of a window as measured by cpuMeter: % of one core per group (those under `minPercent` left out), the rest, the machine. */
export function cpuText(cpu: { groups: Record<string, number>; machine: number; others: number }, cores: number, minPercent = 0): string {
  const parts = Object.entries(cpu.groups)
    .filter(([, value]) => value >= minPercent)
    .map(([name, value]) => `${name} ${fmt(value)}%`);
  return `${parts.join(', ')}, others ${fmt(cpu.others)}%; machine ${fmt(cpu.machine)}% of ${cores * 100}%`;
}

export interface Machine {
  nproc: number;
  cpuModel: string;
  /** `free -g` as printed. */
  free: string;
  node: string;
  loadavgBefore: number[];
  /** Filled in when the run ends. */
  loadavgAfter: number[];
}

/** The machine at the start of a run. */
export function machineInfo(): Machine {
  return {
    nproc: os.availableParallelism(),
    cpuModel: os.cpus()[0]?.model ?? 'unknown',
    free: execFileSync('free', ['-g'], { encoding: 'utf8' }).trimEnd(),
    node: process.version,
    loadavgBefore: os.loadavg(),
    loadavgAfter: [],
  };
}

/** `1.20 1.50 1.70 / 2.10 1.80 1.75` */
export function loadAverages(before: number[], after: number[]): string {
  const text = (values: number[]) => values.map((value) => value.toFixed(2)).join(' ');
  return `${text(before)} / ${text(after)}`;
}

/** `Machine: <n> cores (<model>), Node <v>, load average before/after …` */
export function machineLine(machine: Machine): string {
  return `Machine: ${machine.nproc} cores (${machine.cpuModel}), Node ${machine.node}, load average before/after ${loadAverages(machine.loadavgBefore, machine.loadavgAfter)}`;
}

/** A Markdown table: the header row, its rule, one line per row. */
export function table(header: string[], rows: string[][]): string[] {
  const line = (cells: string[]) => `| ${cells.join(' | ')} |`;
  return [line(header), line(header.map(() => '---')), ...rows.map(line)];
}

/**
 * `existing` with the section that starts at the line `heading` (up to the next `## ` line)
 * replaced by `section`, or with `section` appended when there is none. Sections stay one blank
 * line apart; the other sections are left as they are.
 */
export function replaceSection(existing: string, heading: string, section: string): string {
  const lines = existing.split('\n');
  const start = lines.findIndex((line) => line.trim() === heading);
  if (start === -1) return `${existing.replace(/\n*$/, '')}\n\n${section.trimEnd()}\n`;
  let end = lines.findIndex((line, index) => index > start && /^## /.test(line));
  if (end === -1) end = lines.length;
  const before = lines.slice(0, start).join('\n').replace(/\n*$/, '');
  const after = lines.slice(end).join('\n').replace(/^\n*/, '');
  const output = `${before === '' ? '' : `${before}\n\n`}${section.trimEnd()}\n${after === '' ? '' : `\n${after}`}`;
  return output.endsWith('\n') ? output : `${output}\n`;
}

/** Replaces (or appends) one benchmark's section of a results file such as bench/results.md. */
export function writeSection(file: string, heading: string, section: string): void {
  const existing = existsSync(file) ? readFileSync(file, 'utf8') : '# Benchmarks\n';
  writeFileSync(file, replaceSection(existing, heading, section));
}
