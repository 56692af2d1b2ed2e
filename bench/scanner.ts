/**
 * bench:scanner — JsonScanner throughput on in-memory bodies, against JSON.parse of the same bytes
 * measured in the same run (this machine's speed moves 2× between days, so only ratios compare).
 *
 * Bodies, each about BENCH_SCANNER_MB (32) MB, built by repeating the company documents of
 * /work/shared/data/companies-sample.ndjson (MongoDB export format):
 *   array    one JSON array of the documents (`[doc,\ndoc,…]`)
 *   ndjson   one document per line
 *   strings  one JSON array of every string value of the documents (HTML, escapes, UTF-8)
 * Each body is fed in chunks of 64 KiB (views, no copy). A round scans every body once with each
 * scanner and parses it once with `Buffer#toString` + `JSON.parse` (NDJSON: of each line); one
 * unmeasured round warms up.
 *
 * `--compare <file.ts>`: also runs the JsonScanner exported by that module (e.g. a copy of an
 * earlier scanner in bench/tmp/) and reports new ÷ old. Rounds interleave the two, alternating
 * which goes first, so that a change in the machine's load reaches both.
 *
 * Environment: BENCH_SCANNER_MB (32), BENCH_SCANNER_ROUNDS (7). MB = 10⁶ bytes; medians of rounds.
 */
import { readFileSync } from 'node:fs';
import os from 'node:os';
import { resolve } from 'node:path';
import { performance } from 'node:perf_hooks';
import { pathToFileURL } from 'node:url';
import { JsonScanner } from '../core/json-stream.js';
import { envInt, envNumber } from './lib/env.js';
import { loadAverages, table } from './lib/report.js';

type Scanner = typeof JsonScanner;

const SAMPLE = '/work/shared/data/companies-sample.ndjson';
const CHUNK_BYTES = 64 * 1024;
const targetBytes = envNumber('BENCH_SCANNER_MB', 32) * 1e6;
const rounds = envInt('BENCH_SCANNER_ROUNDS', 7);

function parseArgs(argv: string[]): { compare: string | undefined } {
  const at = argv.indexOf('--compare');
  if (at < 0) return { compare: undefined };
  const file = argv[at + 1];
  if (file === undefined) throw new Error('--compare needs a module path');
  return { compare: file };
}

function collectStrings(value: unknown, into: string[]): void {
  if (typeof value === 'string') into.push(value);
  else if (Array.isArray(value)) for (const item of value) collectStrings(item, into);
  else if (value !== null && typeof value === 'object') for (const item of Object.values(value)) collectStrings(item, into);
}

/** Repeats `items` (each already JSON text) joined by `separator` until the body reaches targetBytes. */
function repeatBody(open: string, items: readonly string[], separator: string, close: string): Buffer {
  const parts: string[] = [open];
  let length = open.length;
  for (let k = 0; length < targetBytes; k++) {
    if (k > 0) parts.push(separator);
    const item = items[k % items.length]!;
    parts.push(item);
    length += item.length + separator.length;
  }
  parts.push(close);
  return Buffer.from(parts.join(''), 'utf8');
}

function buildBodies(): Array<{ name: string; body: Buffer; lines: boolean }> {
  const lines = readFileSync(SAMPLE, 'utf8')
    .split('\n')
    .filter((line) => line.trim() !== '');
  const strings: string[] = [];
  for (const line of lines) collectStrings(JSON.parse(line), strings);
  const stringItems = strings.filter((s) => s !== '').map((s) => JSON.stringify(s));
  return [
    { name: 'array', body: repeatBody('[', lines, ',\n', ']'), lines: false },
    { name: 'ndjson', body: repeatBody('', lines, '\n', '\n'), lines: true },
    { name: 'strings', body: repeatBody('[', stringItems, ',', ']'), lines: false },
  ];
}

/** Milliseconds to scan `body` in 64 KiB chunks; checks the records so that a broken scanner cannot look fast. */
function timeScan(Impl: Scanner, body: Buffer, expectedRecords: number): number {
  const started = performance.now();
  const scanner = new Impl();
  for (let at = 0; at < body.length; at += CHUNK_BYTES) scanner.write(body.subarray(at, at + CHUNK_BYTES));
  const result = scanner.end();
  const ms = performance.now() - started;
  if (expectedRecords >= 0 && result.records !== expectedRecords) {
    throw new Error(`records ${result.records}, expected ${expectedRecords}`);
  }
  return ms;
}

/** The baseline: decode and JSON.parse the body, or each of its lines for NDJSON (which JSON.parse cannot take whole). */
function timeParse(body: Buffer, lines: boolean): number {
  const started = performance.now();
  const text = body.toString('utf8');
  if (!lines) {
    JSON.parse(text);
  } else {
    for (let from = 0, to = text.indexOf('\n'); to >= 0; from = to + 1, to = text.indexOf('\n', from)) {
      JSON.parse(text.slice(from, to));
    }
  }
  return performance.now() - started;
}

function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

const mbPerS = (bytes: number, ms: number): number => bytes / 1e6 / (ms / 1000);

async function main(): Promise<void> {
  const { compare } = parseArgs(process.argv.slice(2));
  const impls: Array<{ name: string; Impl: Scanner }> = [{ name: 'new', Impl: JsonScanner }];
  if (compare !== undefined) {
    const module = (await import(pathToFileURL(resolve(compare)).href)) as { JsonScanner?: Scanner };
    if (module.JsonScanner === undefined) throw new Error(`${compare} exports no JsonScanner`);
    impls.unshift({ name: 'old', Impl: module.JsonScanner });
  }
  const bodies = buildBodies();
  const records = bodies.map(({ body }) => {
    const scanner = new JsonScanner();
    scanner.write(body);
    return scanner.end().records;
  });

  const loadBefore = os.loadavg();
  // ms[body][impl or 'JSON.parse'] = one entry per measured round
  const ms = bodies.map(() => new Map<string, number[]>());
  for (let round = -1; round < rounds; round++) {
    bodies.forEach(({ body, lines }, b) => {
      const order = round % 2 === 0 ? impls : [...impls].reverse();
      const times: Array<[string, number]> = [['JSON.parse', timeParse(body, lines)]];
      for (const { name, Impl } of order) times.push([name, timeScan(Impl, body, records[b]!)]);
      if (round < 0) return;
      for (const [name, value] of times) {
        const list = ms[b]!.get(name) ?? [];
        list.push(value);
        ms[b]!.set(name, list);
      }
    });
  }
  const loadAfter = os.loadavg();

  const header = ['body', 'MB', 'records', 'JSON.parse MB/s', ...impls.map((i) => `${i.name} MB/s`), ...impls.map((i) => `${i.name} ÷ JSON.parse`)];
  if (compare !== undefined) header.push('new ÷ old (median of per-round ratios)');
  const rows = bodies.map(({ name, body }, b) => {
    const parse = median(ms[b]!.get('JSON.parse')!);
    const speeds = impls.map((i) => mbPerS(body.length, median(ms[b]!.get(i.name)!)));
    const row = [name, (body.length / 1e6).toFixed(1), String(records[b]), mbPerS(body.length, parse).toFixed(0)];
    row.push(...speeds.map((s) => s.toFixed(0)), ...speeds.map((s) => (s / mbPerS(body.length, parse)).toFixed(2)));
    if (compare !== undefined) {
      const oldMs = ms[b]!.get('old')!;
      const newMs = ms[b]!.get('new')!;
      const perRound = oldMs.map((o, r) => o / newMs[r]!);
      row.push(`${median(perRound).toFixed(3)} (rounds: ${perRound.map((r) => r.toFixed(2)).join(', ')})`);
    }
    return row;
  });
  const lines = [
    `Date: ${new Date().toISOString()}; ${os.availableParallelism()} cores (${os.cpus()[0]?.model ?? 'unknown'}), Node ${process.version}, load average before/after ${loadAverages(loadBefore, loadAfter)}`,
    `Chunks of ${CHUNK_BYTES / 1024} KiB, ${rounds} measured rounds after 1 warm-up${compare !== undefined ? `, old = ${compare}` : ''}; medians.`,
    '',
    ...table(header, rows),
  ];
  process.stdout.write(`${lines.join('\n')}\n`);
}

await main();
