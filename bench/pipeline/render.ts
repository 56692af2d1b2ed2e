/** The `## bench:pipeline` section of bench/results.md, rendered from the runs saved in bench/tmp. */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { type CpuReport } from '../lib/proc.js';
import { cpuText as cpuLine, fmt, machineLine, mean, verdict } from '../lib/report.js';
import { diagnosis } from './diagnosis.js';
import { MAX_FOREIGN_FILES, MAX_FOREIGN_SHARE, MAX_MARKER_LAG } from './lag.js';
import { insertWayWriters, loadWayWriters, type Results } from './results.js';
import { stageList, tmpDir, targets } from './settings.js';

/** Groups under 0.5% of a core are left out of the line. */
export const cpuText = (cpu: CpuReport, cores: number) => cpuLine(cpu, cores, 0.5);

export function loadRuns(): Results[] {
  const runs: Results[] = [];
  for (const replicas of [1, 2, 3]) {
    const path = join(tmpDir, `pipeline-last-r${replicas}.json`);
    if (!existsSync(path)) continue;
    const run = JSON.parse(readFileSync(path, 'utf8')) as Results;
    if (run.settings.count === 20_000) runs.push(run);
  }
  return runs;
}

export function renderSection(): string {
  const runs = loadRuns();
  const lines: string[] = ['## bench:pipeline', ''];
  const first = runs[0];
  if (first === undefined) return lines.join('\n');
  const cores = first.machine.nproc;
  lines.push(
    `What: one ${fmt(first.file.bytes / 1e6, 1)} MB NDJSON file of ${fmt(first.file.records)} generated companies (\`examples/generate/companies.ts\`, seed ${first.settings.seed}, every ${first.settings.invalidEvery}th invalid, every ${first.settings.duplicateEvery}th a duplicate: ` +
      `${fmt(first.file.valid)} valid records, ${fmt(first.file.invalid)} invalid, ${fmt(first.file.distinctValidPermalinks)} distinct rows) POSTed to a real ingress and carried through the processor (split → extract → validate → load) into PostgreSQL, ` +
      `against the database's own ceiling in the same run: COPY FROM STDIN of the same rows into the same three tables (one connection, one transaction), and the sink's company writer alone (batches of ${first.settings.writerBatch}, no Kafka). ` +
      `Every service in a child process (${first.servicesRun === 'compiled' ? "`node dist/…`, compiled by `npm run build`, with the image's `MALLOC_MMAP_THRESHOLD_` (deployments/docker/Dockerfile): as the images run them" : '`node --import tsx`'}); the stack (3 Kafka brokers, registry, MinIO, PostgreSQL) and other people's tests share the ${cores} cores, so absolute numbers move between runs; the ratios are measured in the same run.`,
    '',
  );
  lines.push(
    `Method: t0 = just before the POST starts streaming the file from disk (undici, ReadStream body, \`application/x-ndjson\`); t1 = when \`SELECT count(*) FROM companies WHERE tenant = $1\` (polled every ${first.settings.countPollMs} ms) reaches the distinct valid permalinks. ` +
      `End-to-end records/s = records in the file ÷ (t1 − t0); rows/s = rows ÷ (t1 − t0). COPY and writer rate = company rows ÷ (first COPY / first batch → COMMIT / last batch); each ceiling ran once before and once after the pipeline and the ratio uses their mean. ` +
      `Processor RSS: VmRSS from /proc every ${first.settings.rssSampleMs} ms (and VmHWM after resetting it via clear_refs). Per-stage timings from the processor's /metrics polled every ${first.settings.metricsPollMs} ms (±0.5 s). ` +
      `Before measuring, the processor drains the backlog that the shared topics hold (reported, not counted): every FileExtractSuccess partition at lag 0 (processor_consumer_lag), and no input message processed and no lag changed for ${first.settings.settleSeconds} s. ` +
      `RecordExtracted/RecordValidated never reach a literal 0: they are written by transactional producers, so a partition can end in control records (the last commit marker, abort markers) that a read_committed consumer never receives and so never commits past; a residual lag of up to ${MAX_MARKER_LAG} per partition that does not move is taken as drained (the residue is reported). ` +
      `CPU is % of one core over the window, from /proc (utime+stime): processor = this run's processor(s), postgres = every postgres process, others = the rest of the machine.`,
    '',
  );
  for (const run of runs) lines.push(...renderRun(run).split('\n'), '');
  lines.push('### What limits it', '');
  for (const paragraph of diagnosis(runs)) lines.push(paragraph, '');
  return lines.join('\n').trimEnd();
}

export function renderRun(r: Results): string {
  const lines: string[] = [];
  const cores = r.machine.nproc;
  const run = r.run;
  const replicas = r.settings.replicas;
  const copyRate = mean(r.copy.map((copy) => copy.rowsPerSecond));
  const writerRate = mean(loadWayWriters(r).map((writer) => writer.rowsPerSecond));
  lines.push(`### ${replicas} processor replica${replicas === 1 ? '' : 's'}`, '');
  lines.push(`Date: ${r.date}  `);
  lines.push(`${machineLine(r.machine)}  `);
  lines.push(
    `Command: \`BENCH_PIPELINE_COUNT=${r.settings.count} BENCH_PIPELINE_REPLICAS=${replicas} npm run bench:pipeline\`${replicas === 1 && r.settings.count === 20_000 ? ' (the defaults)' : ''}`,
    '',
  );
  lines.push('```', '$ free -g', r.machine.free, '```', '');
  const drainText = r.drain.drained
    ? `${fmt(r.drain.seconds, 1)} s (${fmt(r.drain.recordsProcessed)} input messages processed; max lag per stage at start ${JSON.stringify(r.drain.initialMaxLag)}, residue of transaction markers ${JSON.stringify(r.drain.residualMaxLag)})`
    : `**did not drain** within ${fmt(r.drain.seconds, 0)} s — measured anyway`;
  lines.push(
    `${r.warmup === undefined ? '' : `Warm-up before the ceilings (not counted): one import of ${fmt(r.warmup.records)} records (another seed, its own tenant) through the whole stack, ${fmt(r.warmup.rows)} rows in ${fmt(r.warmup.seconds, 1)} s, so that the brokers, PostgreSQL and the services are measured warm. `}` +
      `Backlog drain before measuring (not counted): ${drainText}; re-check after the first ceilings: ${r.drain.recheckDrained ? `${fmt(r.drain.recheckSeconds, 1)} s` : '**not drained**'}.` +
      ` Partitions owned by this run's processor(s) during the run (minimum, of each stage's input partitions): ${stageList.map((stage) => `${stage} ${run.minAssigned[stage]} of ${run.inputPartitions?.[stage] ?? 3}`).join(', ')}` +
      `${run.otherProcessorPids.length > 0 ? `; other people's processor processes were running (pids ${run.otherProcessorPids.join(', ')})` : ''}. ` +
      `Other people's integration tests run processors that join the same consumer groups; the run waited ${fmt(run.ownershipWaitSeconds, 1)} s for the groups to be its own, and this is attempt ${run.attempt}` +
      `${(r.discarded ?? []).length > 0 ? ` (discarded because another processor took partitions or other people's imports went through these processors mid-run: ${(r.discarded ?? []).map((d) => `attempt ${d.attempt}, ${fmt(d.recordsPerSecond)} records/s, owned ${JSON.stringify(d.minAssigned)}, foreign input ${JSON.stringify(d.foreign ?? {})}`).join('; ')})` : ''}.` +
      ` Input messages beyond what this file gives (other people's imports that went through this run's processors, or duplicates — see "committed" below): ${stageList.map((stage) => `${stage} ${fmt(run.foreign?.[stage] ?? Number.NaN)}`).join(', ')} (tolerated: ≤ ${MAX_FOREIGN_FILES} files, ≤ ${MAX_FOREIGN_SHARE * 100}% of the records).` +
      `${run.contaminated ? " **This run shared its processors or consumer groups with other people's work beyond that: its numbers are not this file's alone.**" : ''}`,
    '',
  );

  lines.push('| measure | value |');
  lines.push('| --- | --- |');
  lines.push(
    `| file | ${fmt(r.file.bytes / 1e6, 1)} MB, ${fmt(r.file.records)} records (${fmt(r.file.invalid)} invalid, ${fmt(r.file.duplicates)} duplicates) → ${fmt(r.file.distinctValidPermalinks)} rows |`,
  );
  lines.push(
    `| **end to end** (t0 → t1) | ${run.timedOut ? `**timed out** after ${fmt(run.seconds, 1)} s with ${fmt(run.rows)} rows` : `${fmt(run.seconds, 2)} s: **${fmt(run.recordsPerSecond)} records/s**, ${fmt(run.rowsPerSecond)} rows/s`} |`,
  );
  if (run.extractShares !== undefined) {
    const shares = run.extractShares.map((share) => `${fmt(share)} (${fmt((100 * share) / Math.max(1, run.extractOutputs), 0)}%)`);
    lines.push(`| extract work per replica (records out) | ${shares.join(' / ')} of ${fmt(run.extractOutputs)}, in ${fmt(run.pieces)} pieces |`);
  }
  lines.push(
    `| timeline (s after t0) | body read from disk ${fmt(run.bodySentSeconds, 2)}; 202 ${fmt(run.answeredSeconds, 2)}; extract committed ${fmt(run.stages.extract.doneAt, 1)}; first row ${fmt(run.firstRowSeconds, 2)}; validate done ${fmt(run.stages.validate.doneAt, 1)}; last load transaction began ${fmt(run.lastRowLoadedAtSeconds, 2)}; all rows seen ${fmt(run.seconds, 2)} |`,
  );
  lines.push(
    `| 202 answer | ${run.status}, ${fmt(run.answerRecords)} records counted; ValidationError produced during the run ${fmt(run.validationErrors)} (expected ${fmt(r.file.invalid)}) |`,
  );
  lines.push(
    `| processor RSS | idle ${run.idleRssMiB.map((v) => fmt(v, 1)).join(' / ')} MiB; **peak ${run.peakRssMiB.map((v) => fmt(v, 1)).join(' / ')} MiB** at ${(run.peakRssAtSeconds ?? []).map((v) => fmt(v, 1)).join(' / ')} s after t0 (VmHWM ${run.peakRssHwmMiB.map((v) => fmt(v, 1)).join(' / ')} MiB); during the backlog drain ${run.drainPeakRssMiB.map((v) => fmt(v, 1)).join(' / ')} MiB; JS heap used max ${fmt(run.heapUsedMaxMiB, 1)} MiB |`,
  );
  if (run.committed !== undefined) {
    lines.push(
      `| committed for this import, read back from Kafka (read_committed, request_id header) | RecordValidated ${fmt(run.committed.recordValidated)} (${fmt(run.committed.recordValidatedDistinct)} distinct values; the file has ${fmt(r.file.valid)} valid records), ValidationError ${fmt(run.committed.validationError)} (file: ${fmt(r.file.invalid)}); ` +
        `processor_retries_total ${stageList.map((stage) => `${stage} ${fmt(run.retries?.[stage] ?? Number.NaN)}`).join(', ')} |`,
    );
  }
  lines.push(`| ingress RSS peak | ${fmt(run.ingressPeakRssMiB, 1)} MiB |`);
  lines.push(`| CPU over t0 → t1 | ${cpuText(run.cpu, cores)} |`);
  lines.push(
    `| processor | ${fmt(run.processCpuSeconds, 1)} s of CPU (its own process_cpu_seconds_total), of which GC ${fmt(run.gcSeconds, 1)} s; event-loop delay p99 up to ${fmt(run.eventLoopLagP99MaxMs, 0)} ms |`,
  );
  for (const stage of stageList) {
    const s = run.stages[stage];
    lines.push(
      `| stage ${stage} | ${fmt(s.recordsIn)} input messages in ${fmt(s.batches)} committed batches, mean ${fmt(s.batchMeanMs, 0)} ms per batch (sum ${fmt(s.batchSecondsSum, 1)} s); active ${fmt(s.firstAt, 1)} → ${fmt(s.doneAt, 1)} s |`,
    );
  }
  for (const phase of run.phases) {
    lines.push(
      `| phase: ${phase.name}, ${fmt(phase.from, 1)} → ${fmt(phase.to, 1)} s | processor ${fmt(phase.processor)}%, postgres ${fmt(phase.postgres)}%, machine ${fmt(phase.machine)}% of ${cores * 100}% |`,
    );
  }
  r.copy.forEach((copy, i) => {
    lines.push(
      `| COPY ceiling ${i === 0 ? 'before' : 'after'} | ${fmt(copy.companies)} companies + ${fmt(copy.offices)} offices + ${fmt(copy.rounds)} funding rounds in ${fmt(copy.seconds, 2)} s: **${fmt(copy.rowsPerSecond)} rows/s**; CPU ${cpuText(copy.cpu, cores)} |`,
    );
  });
  r.writer.forEach((writer, i) => {
    // Newer runs measure both ways before and after (copy, insert | insert, copy); older ones insert once each.
    lines.push(
      `| company writer, ${writer.method ?? 'insert'} way, ${i < r.writer.length / 2 ? 'before' : 'after'} | ${fmt(writer.records)} records → ${fmt(writer.rows)} rows in ${writer.batches} batches, ${fmt(writer.seconds, 2)} s: **${fmt(writer.rowsPerSecond)} rows/s** (${fmt(writer.recordsPerSecond)} records/s); CPU ${cpuText(writer.cpu, cores)} |`,
    );
  });
  lines.push(
    `| parse + normalise + validate in one process (the bench, outside any timing) | ${fmt(r.prepare.total, 2)} s for ${fmt(r.file.records)} records: JSON.parse ${fmt(r.prepare.parse, 2)} s, normalizeRecord ${fmt(r.prepare.normalize, 2)} s, JSON.stringify ${fmt(r.prepare.stringify, 2)} s, JSON.parse + validateRecord ${fmt(r.prepare.validate, 2)} s |`,
  );
  lines.push('');
  lines.push('| ratio | value | target | verdict |');
  lines.push('| --- | --- | --- | --- |');
  const e2eOverCopy = run.recordsPerSecond / copyRate;
  lines.push(
    `| end-to-end records/s ÷ COPY rows/s (mean of before/after) | ${fmt(run.recordsPerSecond)} ÷ ${fmt(copyRate)} = **${fmt(e2eOverCopy, 3)}** (vs before ${fmt(run.recordsPerSecond / (r.copy[0]?.rowsPerSecond ?? Number.NaN), 3)}, vs after ${fmt(run.recordsPerSecond / (r.copy[1]?.rowsPerSecond ?? Number.NaN), 3)}) | ≥ ${targets.e2eOverCopy.toFixed(2)} | ${verdict(e2eOverCopy >= targets.e2eOverCopy)} |`,
  );
  const peak = Math.max(...run.peakRssMiB, ...run.peakRssHwmMiB.filter(Number.isFinite));
  lines.push(`| processor peak RSS (largest replica, sampled or VmHWM) | ${fmt(peak, 1)} MiB | ≤ ${targets.rssMiB} MiB | ${verdict(peak <= targets.rssMiB)} |`);
  lines.push(`| end-to-end rows/s ÷ COPY rows/s | ${fmt(run.rowsPerSecond / copyRate, 3)} | — (information) | — |`);
  lines.push(
    `| end-to-end rows/s ÷ company-writer rows/s (mean) | ${fmt(run.rowsPerSecond)} ÷ ${fmt(writerRate)} = ${fmt(run.rowsPerSecond / writerRate, 3)} | — (information) | — |`,
  );
  lines.push(
    `| company-writer rows/s ÷ COPY rows/s (${loadWayWriters(r)[0]?.method ?? 'insert'} way, the load stage's) | ${fmt(writerRate / copyRate, 3)} | — (information) | — |`,
  );
  if (loadWayWriters(r) !== r.writer && insertWayWriters(r).length > 0) {
    const insertRate = mean(insertWayWriters(r).map((writer) => writer.rowsPerSecond));
    lines.push(`| company writer, insert way ÷ COPY rows/s | ${fmt(insertRate / copyRate, 3)} | — (information) | — |`);
    lines.push(
      `| company writer, copy way ÷ insert way | ${fmt(writerRate)} ÷ ${fmt(insertRate)} = ${fmt(writerRate / insertRate, 2)} | — (information) | — |`,
    );
  }
  lines.push(
    `| the run had the pipeline to itself (every partition of every stage, no other processor, little foreign input) | ${run.contaminated ? 'no' : 'yes'} | yes | ${verdict(!run.contaminated)} |`,
  );
  lines.push(
    `| every row loaded, every invalid record reported | ${run.timedOut ? 'no' : 'rows yes'}; ValidationError ${fmt(run.validationErrors)} of ${fmt(r.file.invalid)} | all | ${verdict(!run.timedOut && run.validationErrors === r.file.invalid)} |`,
  );
  return lines.join('\n');
}
