/** The `## bench:ingest` section of bench/results.md and its "What limits it" paragraphs. */
import os from 'node:os';
import { finding } from '../lib/findings.js';
import { type CpuReport } from '../lib/proc.js';
import { published } from '../lib/published.js';
import { cpuText as cpuLine } from '../lib/report.js';
import { fmt, machineLine, verdict } from '../lib/report.js';
import { type Results } from './results.js';
import { type LoadResult } from './runners.js';
import { MiB, targets } from './settings.js';

/** CPU on the machine this runs on. */
export const cpuText = (cpu: CpuReport) => cpuLine(cpu, os.availableParallelism());

export function renderSection(r: Results): string {
  const lines: string[] = [];
  const s = r.settings;
  const cores = r.machine.nproc;
  lines.push('## bench:ingest', '');
  lines.push(`Date: ${r.date}  `);
  lines.push(
    `${machineLine(r.machine)} — shared with other people's tests and with the whole local stack (3 Kafka brokers, registry, MinIO, PostgreSQL), so absolute numbers move between runs; the ratios are measured in the same run.`,
  );
  lines.push('', '```', '$ free -g', r.machine.free, '```', '');
  const envText = `BENCH_SECONDS=${s.seconds} BENCH_WARMUP_SECONDS=${s.warmupSeconds} BENCH_ROUNDS=${s.rounds} BENCH_CONNECTIONS=${s.connections} BENCH_FILE_BYTES=${s.fileBytes} BENCH_BIG_MIB=${s.bigMiB}`;
  lines.push(
    `Command: \`${envText} npm run bench:ingest\` (plain \`npm run bench:ingest\` uses the defaults BENCH_SECONDS=10 BENCH_WARMUP_SECONDS=3 BENCH_ROUNDS=2 BENCH_CONNECTIONS=64 BENCH_FILE_BYTES=5000 BENCH_BIG_MIB=200).`,
    '',
  );
  lines.push(
    `Load generator: autocannon (programmatic API) in the bench process; every server in a child process (\`node --import tsx\`). ` +
      `autocannon writes pre-encoded requests on raw sockets and parses answers with a minimal parser, so it costs less CPU per request than an undici Pool loop (row (a′) below) — on ${cores} cores the client's CPU is taken from the server's. ` +
      `Each phase: ${s.warmupSeconds} s warm-up, then ${s.seconds} s measured; (b), (c) and (c′) are measured in ${s.rounds} interleaved rounds of ${fmt(s.seconds / s.rounds, 1)} s (b c c′, then c′ c b, …) so that a change in the machine's load during the run reaches all three; latency per response from hrtime. ` +
      `Body of (b)/(c): ${s.fileBytesActual} bytes, ${s.fileRecords} company records as NDJSON (\`examples/generate/companies.ts\`; its records are 1.8-3 KB each). ` +
      `(c) uses @aws-sdk/client-s3 PutObjectCommand with the same headers/metadata as the ingress's small-file PUT, ${s.connections} sockets. ` +
      `CPU is % of one core over the measured window, from /proc: loadgen = this process, server = the child under test, others = everything else busy on the machine (registry, PostgreSQL, kernel, other people's tests).`,
    '',
  );

  lines.push('### Absolute numbers', '');
  lines.push('| phase | what | throughput | p50 | p99 | answers | CPU (% of one core) |');
  lines.push('| --- | --- | --- | --- | --- | --- | --- |');
  const row = (id: string, what: string, x: LoadResult | undefined, unit: string) => {
    if (x === undefined) return lines.push(`| ${id} | ${what} | not run | | | | |`);
    const answers = Object.entries(x.statuses)
      .map(([code, n]) => `${fmt(n)}× ${code}`)
      .join(', ');
    lines.push(
      `| ${id} | ${what} | ${fmt(x.rate)} ${unit} | ${fmt(x.p50, 2)} ms | ${fmt(x.p99, 2)} ms | ${answers}${x.errors > 0 ? `, ${x.errors} errors` : ''} | ${cpuText(x.cpu)} |`,
    );
  };
  row('(a)', `uWS hello-world GET /, ${s.connections} conn., autocannon`, r.a, 'req/s');
  row('(a′)', `same server, ${s.connections} conn., undici Pool loop (client check)`, r.aUndici, 'req/s');
  row('(b)', `ingress POST /import/<tenant>, ${s.connections} conn.`, r.b, 'req/s');
  row('(b⁰)', `the same, INGRESS_DURABLE_CLAIMS=false, ${s.connections} conn.`, r.bNoClaims, 'req/s');
  row('(c)', `S3 PutObject (@aws-sdk/client-s3), ${s.connections} in flight`, r.c, 'obj/s');
  row('(c′)', `same PUTs, hand-made SigV4 over an undici Pool (no SDK), ${s.connections} in flight`, r.cMinimal, 'obj/s');
  row('(c1)', 'S3 PutObject 4 KiB, 1 in flight', r.c1, 'obj/s');
  row('(c2)', 'S3 PutObject 4 KiB, 2 in flight', r.c2, 'obj/s');
  row('(pub-uws)', 'uWS hello-world, autocannon -c100 -p10', r.pubUws, 'req/s');
  row('(pub-node)', 'node:http hello-world, autocannon -c100 -p10', r.pubNode, 'req/s');
  if (r.d !== undefined) {
    const d = r.d;
    lines.push(
      `| (d) | one ${fmt(d.bytes / MiB, 1)} MiB NDJSON upload (${fmt(d.records)} records), undici stream from disk | ${fmt(d.mbPerSecond, 1)} MB/s (${fmt(d.seconds, 2)} s) | | | ${d.status}${d.answer.records === d.records ? `, ${fmt(d.records)} records counted` : `, records ${String(d.answer.records)} ≠ ${d.records}`} | ${cpuText(d.cpu)} |`,
    );
  } else {
    lines.push('| (d) | 200 MiB upload | not run | | | | |');
  }
  lines.push('');
  if (r.d !== undefined) {
    const d = r.d;
    lines.push(
      `(d) ingress RSS: idle ${fmt(d.idleRss / MiB, 1)} MiB (fresh ingress after one small import), peak ${fmt((d.idleRss + d.peakMinusIdle) / MiB, 1)} MiB ` +
        `(VmRSS sampled every 50 ms: ${fmt(d.peakRssSampled / MiB, 1)} MiB; VmHWM${d.hwmReset ? ' after resetting it via clear_refs' : ' since start'}: ${fmt(d.peakRssHwm / MiB, 1)} MiB). ` +
        `The body was fully read from disk after ${fmt(d.bodySentSeconds, 2)} s; the 202 came ${fmt(d.seconds - d.bodySentSeconds, 2)} s later. ` +
        `MB = 10⁶ bytes.`,
      '',
    );
  }

  lines.push('### Ratios and targets', '');
  lines.push('| measure | value | target | verdict |');
  lines.push('| --- | --- | --- | --- |');
  const b = r.b;
  const c = r.c;
  const a = r.a;
  if (b !== undefined && c !== undefined) {
    const ratio = b.rate / c.rate;
    const perRound = b.slices.map((rate, i) => (rate / (c.slices[i] ?? Number.NaN)).toFixed(2)).join(', ');
    lines.push(
      `| (b)/(c) ingress vs raw S3 PUTs (SDK) | ${ratio.toFixed(2)} (rounds: ${perRound}) | ≥ ${targets.bOverC.toFixed(2)} | ${verdict(ratio >= targets.bOverC)} |`,
    );
    if (r.cMinimal !== undefined)
      lines.push(`| (b)/(c′) ingress vs raw PUTs without the SDK | ${(b.rate / r.cMinimal.rate).toFixed(2)} | — (information) | — |`);
    const perImport = cpuMsPerOp(b, 'server');
    const perPut = cpuMsPerOp(c, 'loadgen');
    lines.push(
      `| CPU per import in the ingress ÷ CPU per SDK PUT in (c) (less sensitive to the machine's load than req/s) | ${fmt(perImport, 2)} ms ÷ ${fmt(perPut, 2)} ms = ${(perImport / perPut).toFixed(2)}` +
        `${r.cMinimal === undefined ? '' : `; a PUT without the SDK: ${fmt(cpuMsPerOp(r.cMinimal, 'loadgen'), 2)} ms`} | — (information) | — |`,
    );
  }
  if (b !== undefined && r.bNoClaims !== undefined) {
    const unclaimed = r.bNoClaims;
    const ratio = b.rate / unclaimed.rate;
    const cpu = cpuMsPerOp(b, 'server') / cpuMsPerOp(unclaimed, 'server');
    // The claim is two more (small, conditional) PUTs per import: MinIO's share says whether they are what limits it.
    const minio = cpuMsPerOp(b, 'minio') / cpuMsPerOp(unclaimed, 'minio');
    lines.push(
      `| (b)/(b⁰) imports/s with the durable request-id claim vs without (its cost: ${((1 - ratio) * 100).toFixed(1)}%; CPU per import: ingress ×${cpu.toFixed(2)}, MinIO ×${minio.toFixed(2)}) | ${ratio.toFixed(2)} | ≥ ${targets.claimRatio.toFixed(2)} | ${verdict(ratio >= targets.claimRatio)} |`,
    );
  }
  if (b !== undefined && a !== undefined) lines.push(`| (b)/(a) ingress vs hello-world | ${(b.rate / a.rate).toFixed(3)} | — (information) | — |`);
  if (b !== undefined) {
    lines.push(`| p99 of (b) | ${fmt(b.p99, 1)} ms | < ${targets.p99Ms} ms | ${verdict(b.p99 < targets.p99Ms)} |`);
    const non202 = Object.entries(b.statuses).filter(([code]) => code !== '202');
    const ok = non202.length === 0 && b.errors === 0;
    lines.push(
      `| every answer of (b) is 202 | ${ok ? `yes (${fmt(b.count)})` : `no: ${non202.map(([code, n]) => `${n}× ${code}`).join(', ')}${b.errors > 0 ? `, ${b.errors} errors` : ''}`} | all 202 | ${verdict(ok)} |`,
    );
  }
  if (r.d !== undefined) {
    const d = r.d;
    lines.push(
      `| (d) peak RSS − idle RSS | ${fmt(d.peakMinusIdle / MiB, 1)} MiB | ≤ ${targets.rssMiB} MiB | ${verdict(d.peakMinusIdle <= targets.rssMiB * MiB)} |`,
    );
    lines.push(
      `| (d) 202 with every record counted | ${d.status}, ${String(d.answer.records)} records | 202, ${d.records} | ${verdict(d.status === 202 && d.answer.records === d.records)} |`,
    );
    lines.push(`| (d) throughput | ${fmt(d.mbPerSecond, 1)} MB/s | — (information) | — |`);
  }
  lines.push('');

  lines.push('### Against the published figures (FIELD-NOTES.md; other hardware, so ratios)', '');
  lines.push('| comparison | published | here | here ÷ published |');
  lines.push('| --- | --- | --- | --- |');
  if (r.pubUws !== undefined && r.pubNode !== undefined) {
    const pubRatio = published.uwsHello / published.nodeHello;
    const ours = r.pubUws.rate / r.pubNode.rate;
    lines.push(
      `| uWS ÷ node:http, hello-world, -c100 -p10 | ${fmt(published.uwsHello)} / ${fmt(published.nodeHello)} = ${pubRatio.toFixed(2)} | ${fmt(r.pubUws.rate)} / ${fmt(r.pubNode.rate)} = ${ours.toFixed(2)} | ${(ours / pubRatio).toFixed(2)} |`,
    );
    const cpuRatio = cpuMsPerOp(r.pubNode, 'server') / cpuMsPerOp(r.pubUws, 'server');
    lines.push(
      `| server CPU per request, node:http ÷ uWS (at saturation this is the req/s ratio) | ${pubRatio.toFixed(2)} | ${cpuRatio.toFixed(2)} | ${(cpuRatio / pubRatio).toFixed(2)} |`,
    );
    lines.push(
      `| uWS hello-world req/s, -c100 -p10 | ${fmt(published.uwsHello)} | ${fmt(r.pubUws.rate)} | ${(r.pubUws.rate / published.uwsHello).toFixed(3)} |`,
    );
  }
  if (b !== undefined && r.pubUws !== undefined) {
    lines.push(
      `| ingress (b) ÷ uWS hello-world (published config) | — | ${fmt(b.rate)} / ${fmt(r.pubUws.rate)} = ${(b.rate / r.pubUws.rate).toFixed(3)} | — |`,
    );
  }
  if (r.c1 !== undefined && r.c2 !== undefined) {
    const pubScaling = published.minio2 / published.minio1;
    const ours = r.c2.rate / r.c1.rate;
    lines.push(`| MinIO 4 KiB PUTs, 1 in flight | ${fmt(published.minio1)}/s | ${fmt(r.c1.rate)}/s | ${(r.c1.rate / published.minio1).toFixed(2)} |`);
    lines.push(`| MinIO 4 KiB PUTs, 2 in flight | ${fmt(published.minio2)}/s | ${fmt(r.c2.rate)}/s | ${(r.c2.rate / published.minio2).toFixed(2)} |`);
    lines.push(`| MinIO scaling 2 ÷ 1 in flight | ${pubScaling.toFixed(2)} | ${ours.toFixed(2)} | ${(ours / pubScaling).toFixed(2)} |`);
    if (c !== undefined) lines.push(`| MinIO scaling ${s.connections} ÷ 1 in flight (~5 KB vs 4 KiB) | — | ${(c.rate / r.c1.rate).toFixed(2)} | — |`);
  }
  if (r.c1 !== undefined)
    lines.push('| note | MinIO figures here include the cost of the @aws-sdk/client-s3 client on the same 2 cores; (c′) shows the same PUTs without it | | |');
  lines.push('');

  lines.push('### What limits it', '');
  for (const paragraph of diagnosis(r)) lines.push(paragraph, '');
  return lines.join('\n');
}

/** CPU milliseconds one operation cost a process group: % of a core ÷ operations per second. */
export function cpuMsPerOp(x: LoadResult, group: string): number {
  return ((x.cpu.groups[group] ?? 0) / 100 / x.rate) * 1000;
}

/** Paragraphs built from what this run observed (CPU per process, the ingress's own metrics). */
export function diagnosis(r: Results): string[] {
  const out: string[] = [];
  const cores = r.machine.nproc;
  const full = cores * 100;
  const connections = r.settings.connections;
  const { a, b, c, cMinimal } = r;
  const saturatedMachine = (x: LoadResult) => x.cpu.machine >= full * 0.9;
  if (a !== undefined && r.aUndici !== undefined) {
    out.push(
      `**(a)** The hello-world phase measures this ${cores}-core machine with this client more than uWS: the load generator used ${fmt(a.cpu.groups.loadgen ?? 0)}% of a core and the server ${fmt(a.cpu.groups.server ?? 0)}% ` +
        `(others ${fmt(a.cpu.others)}%, machine ${fmt(a.cpu.machine)}% of ${full}%). ` +
        `Client CPU per request: autocannon ${fmt(cpuMsPerOp(a, 'loadgen') * 1000, 1)} µs, an undici Pool loop ${fmt(cpuMsPerOp(r.aUndici, 'loadgen') * 1000, 1)} µs ` +
        `(${(a.rate / r.aUndici.rate).toFixed(2)}× the throughput${cpuMsPerOp(a, 'loadgen') < cpuMsPerOp(r.aUndici, 'loadgen') ? '; autocannon is the cheaper client' : '; here autocannon was not cheaper'}).` +
        (b !== undefined
          ? ` (b) runs at ${((b.rate / a.rate) * 100).toFixed(1)}% of (a) with the load generator at ${fmt(b.cpu.groups.loadgen ?? 0)}% of a core: the client and uWS's HTTP layer are not what limits (b).`
          : ''),
    );
  }
  if (r.pubUws !== undefined && r.pubNode !== undefined) {
    const uws = cpuMsPerOp(r.pubUws, 'server') * 1000;
    const node = cpuMsPerOp(r.pubNode, 'server') * 1000;
    out.push(
      `**Published hello-world ratio.** At -c100 -p10 the load generator used ${fmt(r.pubUws.cpu.groups.loadgen ?? 0)}% of a core against uWS, which itself used ${fmt(r.pubUws.cpu.groups.server ?? 0)}%: ` +
        `on ${cores} shared cores the client runs out first, so the req/s ratio uWS ÷ node:http (${(r.pubUws.rate / r.pubNode.rate).toFixed(2)}) moves with the machine's load. ` +
        `Server CPU per request is steadier: uWS ${fmt(uws, 1)} µs, node:http ${fmt(node, 1)} µs, a ratio of ${(node / uws).toFixed(2)} against the published ${(published.uwsHello / published.nodeHello).toFixed(2)}.`,
    );
  }
  if (b !== undefined) {
    const ing = b.ingress;
    const server = b.cpu.groups.server ?? 0;
    let cause: string;
    if (server >= 85) {
      cause = `the ingress's single JS thread was saturated: ${fmt(server)}% of a core, ${fmt(cpuMsPerOp(b, 'server'), 2)} ms of CPU per import, event-loop delay p99 ${fmt(ing.eventLoopLagP99Ms, 0)} ms`;
    } else if (saturatedMachine(b)) {
      cause =
        `the machine was saturated (${fmt(b.cpu.machine)}% of ${full}%) and the ingress got only ${fmt(server)}% of a core (${fmt(cpuMsPerOp(b, 'server'), 2)} ms of CPU per import, event-loop delay p99 ${fmt(ing.eventLoopLagP99Ms, 0)} ms): ` +
        `MinIO ${fmt(b.cpu.groups.minio ?? 0)}%, Kafka ${fmt(b.cpu.groups.kafka ?? 0)}%, load generator ${fmt(b.cpu.groups.loadgen ?? 0)}%, others ${fmt(b.cpu.others)}%`;
    } else {
      cause = `neither the ingress thread (${fmt(server)}%) nor the machine (${fmt(b.cpu.machine)}% of ${full}%) was saturated: requests waited on I/O`;
    }
    out.push(
      `**(b)** During the measured windows ${cause}. ` +
        `Per import (the ingress's own metrics over the same windows): ${fmt(ing.requestMeanMs, 1)} ms mean from first byte to answer, of which the S3 PutObject took ${fmt(ing.s3PutMeanMs, 1)} ms ` +
        `and the Kafka send of its event (acks=all; librdkafka gathers concurrent events for linger.ms into one request per partition) ${fmt(ing.kafkaSendMeanMs, 1)} ms mean over ${fmt(ing.kafkaSends / ing.windowSeconds)} events/s, ` +
        `${fmt(ing.kafkaInFlight, 1)} events awaiting their ack on average (sum of send durations ÷ window), ` +
        `so the linger and the acks=all round trip add latency to each import rather than capping throughput. Both durations include time spent waiting for a busy event loop.`,
    );
    const needed = connections / (targets.p99Ms / 1000);
    out.push(
      `**p99 of (b).** With ${connections} connections in a closed loop, mean latency = ${connections} ÷ throughput (Little's law): ${fmt((connections / b.rate) * 1000, 0)} ms at ${fmt(b.rate)} req/s. ` +
        `Even the mean gets under ${targets.p99Ms} ms only above ${fmt(needed)} req/s` +
        (c !== undefined ? ` — ${(needed / c.rate).toFixed(1)}× the raw S3 PUT rate of (c)` : '') +
        (cMinimal !== undefined ? ` and ${(needed / cMinimal.rate).toFixed(1)}× that of (c′)` : '') +
        (c !== undefined && cMinimal !== undefined
          ? `. Raw PUTs alone at ${connections} in flight had p99 ${fmt(c.p99, 0)} ms (SDK) and ${fmt(cMinimal.p99, 0)} ms (no SDK): at this concurrency, on this machine, storage alone is over the ${targets.p99Ms} ms target before the ingress adds anything.`
          : '.'),
    );
  }
  if (b !== undefined && c !== undefined) {
    const perImport = cpuMsPerOp(b, 'server');
    const perPut = cpuMsPerOp(c, 'loadgen');
    out.push(
      `**(b)/(c).** CPU is the scarce resource on this machine. The ingress got ${fmt(b.cpu.groups.server ?? 0)}% of a core during (b), the client of (c) ${fmt(c.cpu.groups.loadgen ?? 0)}%; ` +
        `per operation the ingress spent ${fmt(perImport, 2)} ms of CPU per import against ${fmt(perPut, 2)} ms for a bare SDK PutObject (×${(perImport / perPut).toFixed(2)}), ` +
        `so with equal CPU shares (b)/(c) cannot exceed about ${(perPut / perImport).toFixed(2)}. Reaching ${targets.bOverC.toFixed(2)} at equal shares needs at most ${fmt(perPut / targets.bOverC, 2)} ms per import. ` +
        `Where the ingress's CPU goes: \`BENCH_PHASES=b BENCH_CPU_PROF=1 npm run bench:ingest\`, then \`npx tsx bench/cpuprofile-top.ts bench/tmp/prof/<main-thread file>.cpuprofile\`. ` +
        finding('ingest-cpu-profile'),
    );
  }
  if (c !== undefined) {
    const sdk = cpuMsPerOp(c, 'loadgen');
    const loadgen = c.cpu.groups.loadgen ?? 0;
    let text =
      `**(c)** The load generator used ${fmt(loadgen)}% of a core for ${fmt(c.rate)} PUTs/s with @aws-sdk/client-s3 (${fmt(sdk, 2)} ms of CPU per PUT), ` +
      `MinIO ${fmt(c.cpu.groups.minio ?? 0)}%, others ${fmt(c.cpu.others)}% (machine ${fmt(c.cpu.machine)}% of ${full}%).`;
    if (cMinimal !== undefined) {
      const minimal = cpuMsPerOp(cMinimal, 'loadgen');
      text +=
        ` Without the SDK (c′) the same PUTs cost ${fmt(minimal, 2)} ms of client CPU each (${(sdk / minimal).toFixed(1)}× less) and reached ${fmt(cMinimal.rate)}/s ` +
        `with MinIO at ${fmt(cMinimal.cpu.groups.minio ?? 0)}% (machine ${fmt(cMinimal.cpu.machine)}% of ${full}%).`;
    }
    if (loadgen >= 85) {
      text += ` So (c) is bounded by the SDK's per-request CPU in one Node process, not by MinIO — and the ingress runs that same SDK code for every file, so (b)/(c) compares like with like.`;
    } else if (saturatedMachine(c)) {
      text += ` The machine was saturated, so (c) is bounded by the CPU left over for the client and MinIO.`;
    } else {
      text += ` Neither the client nor the machine was saturated: MinIO's own latency sets (c).`;
    }
    out.push(text);
  }
  if (r.d !== undefined) {
    const d = r.d;
    const ops = Object.entries(d.ingress.s3Operations)
      .map(([name, op]) => `${name} ${op.count}× ${fmt(op.meanMs, 0)} ms`)
      .join(', ');
    out.push(
      `**(d)** ${fmt(d.mbPerSecond, 1)} MB/s with the ingress at ${fmt(d.cpu.groups.server ?? 0)}% of a core, MinIO at ${fmt(d.cpu.groups.minio ?? 0)}%, others ${fmt(d.cpu.others)}% (machine ${fmt(d.cpu.machine)}% of ${full}%). ` +
        `S3 calls during the upload: ${ops}. Parts go up one at a time and reading pauses while two parts (2 × INGRESS_PART_SIZE_BYTES) are held, so memory stays bounded and the body arrives at the pace of the part PUTs; ` +
        `after the last byte the ingress still ran the final part, CompleteMultipartUpload and a CopyObject of the whole object onto itself (to attach sha256/record-count metadata): ${fmt(d.seconds - d.bodySentSeconds, 2)} s of the ${fmt(d.seconds, 2)} s.`,
    );
  }
  return out;
}
