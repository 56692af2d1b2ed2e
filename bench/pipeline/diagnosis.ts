/** "What limits it": paragraphs built from what the runs observed, plus findings measured once. */
import { finding } from '../lib/findings.js';
import { fmt, mean } from '../lib/report.js';
import { cpuSeconds, insertWayWriters, loadWayWriters, phaseAt, type Results } from './results.js';
import { targets, stageList } from './settings.js';

/** Paragraphs built from what the runs observed, plus findings measured once (bench/findings.md). */
export function diagnosis(runs: Results[]): string[] {
  const out: string[] = [];
  const pipelineGroups = ['processor', 'kafka', 'postgres', 'minio', 'ingress'];
  for (const r of runs) {
    const run = r.run;
    const cores = r.machine.nproc;
    const replicas = r.settings.replicas;
    const label = `${replicas} replica${replicas === 1 ? '' : 's'}`;
    const total = run.seconds;
    const share = (seconds: number) => `${fmt((seconds / total) * 100)}%`;
    const extractSeconds = run.stages.extract.doneAt - run.answeredSeconds;
    const afterExtract = total - run.stages.extract.doneAt;
    const copyRate = mean(r.copy.map((copy) => copy.rowsPerSecond));
    const writerRate = mean(loadWayWriters(r).map((writer) => writer.rowsPerSecond));
    const loadPerBatch = run.stages.load.recordsIn / run.stages.load.batches;
    const validatePerBatch = run.stages.validate.recordsIn / run.stages.validate.batches;
    const phaseText = run.phases
      .map(
        (phase) =>
          `${phase.name} ${fmt(phase.to - phase.from, 1)} s at processor ${fmt(phase.processor)}% / postgres ${fmt(phase.postgres)}% / machine ${fmt(phase.machine)}%`,
      )
      .join('; ');
    out.push(
      `**${label}: where the ${fmt(total, 1)} s go.** Upload until the 202: ${fmt(run.answeredSeconds, 1)} s (${share(run.answeredSeconds)}). ` +
        (r.processorSettings === undefined
          ? `Extract: ${fmt(extractSeconds, 1)} s (${share(extractSeconds)}), a barrier — the whole file is ONE FileExtractSuccess message, and the extract stage writes all ${fmt(run.extractOutputs)} RecordExtracted events of one input message in ONE Kafka transaction ` +
            `(maxOutputsPerTransaction is only checked between input messages), so validate (read_committed) sees nothing until that commit; the ${fmt(run.stages.extract.batchMeanMs / 1000, 1)} s transaction runs on one partition, in one event loop, with the other two stages idle. `
          : `Extract: ${fmt(extractSeconds, 1)} s after the 202 (${share(extractSeconds)}) in ${fmt(run.pieces ?? 1)} piece${(run.pieces ?? 1) === 1 ? '' : 's'} spread over the partitions (split stage, FilePiece), committed in transactions of ${fmt(r.processorSettings.extractRecordsPerTransaction)} records (EXTRACT_RECORDS_PER_TRANSACTION), ` +
            `so validate and load start on the first of them (first row at ${fmt(run.firstRowSeconds, 1)} s) and run beside the rest of the extract, in the same event loop. `) +
        `Validate + load after the extract commit: ${fmt(afterExtract, 1)} s (${share(afterExtract)}): validate committed ${fmt(run.stages.validate.batches)} transactions of ${fmt(validatePerBatch)} records (mean ${fmt(run.stages.validate.batchMeanMs, 0)} ms each), ` +
        `and load wrote ${fmt(run.stages.load.batches)} Postgres batches of only ${fmt(loadPerBatch)} records on average (mean ${fmt(run.stages.load.batchMeanMs, 0)} ms each; the writer ceiling uses 1,000): the load consumer takes whatever validate has committed (LOAD_BATCH_LINGER_MS, 200 ms by default), so it follows validate's small transactions; ` +
        `the sums of batch durations (validate ${fmt(run.stages.validate.batchSecondsSum, 1)} s, load ${fmt(run.stages.load.batchSecondsSum, 1)} s over ${fmt(afterExtract, 1)} s) show about ${fmt(run.stages.validate.batchSecondsSum / afterExtract, 1)} and ${fmt(run.stages.load.batchSecondsSum / afterExtract, 1)} batches in flight at any time, i.e. all three partitions of both stages busy in the same event loop. ` +
        `Per phase: ${phaseText}.` +
        (run.stages.load.recordsIn > r.file.valid
          ? ` (The load stage took ${fmt(run.stages.load.recordsIn)} input messages for the file's ${fmt(r.file.valid)} valid records` +
            (run.committed !== undefined
              ? `; RecordValidated holds ${fmt(run.committed.recordValidated)} committed messages for this import, ${fmt(run.committed.recordValidated - run.committed.recordValidatedDistinct)} of them byte-identical copies — see "Duplicates" below.)`
              : '.)')
          : ''),
    );
    const pipelineCpu = cpuSeconds(run.cpu, pipelineGroups);
    const copyCpu = mean(r.copy.map((copy) => cpuSeconds(copy.cpu, ['bench', 'postgres']) / copy.companies));
    const writerCpu = mean(loadWayWriters(r).map((writer) => cpuSeconds(writer.cpu, ['bench', 'postgres']) / writer.rows));
    const perRecord = pipelineCpu / r.file.records;
    const serverPerRecord = cpuSeconds(run.cpu, ['kafka', 'postgres']) / r.file.records;
    const othersShare = run.cpu.others + (run.cpu.groups.otherProcessors ?? 0) + (run.cpu.groups.bench ?? 0);
    out.push(
      `**${label}: the scarce resource is CPU per record.** Over t0 → t1 the machine was at ${fmt(run.cpu.machine)}% of ${cores * 100}%: processor${replicas === 1 ? '' : 's'} ${fmt(run.cpu.groups.processor ?? 0)}%, Kafka ${fmt(run.cpu.groups.kafka ?? 0)}%, PostgreSQL ${fmt(run.cpu.groups.postgres ?? 0)}%, ingress ${fmt(run.cpu.groups.ingress ?? 0)}%, MinIO ${fmt(run.cpu.groups.minio ?? 0)}%, ` +
        `and ${fmt(othersShare)}% for everything else (the registry, the bench, other people's tests). The pipeline's own processes spent ${fmt(pipelineCpu, 1)} CPU-seconds = ${fmt(perRecord * 1000, 2)} ms per record ` +
        `(processor ${fmt((cpuSeconds(run.cpu, ['processor']) / r.file.records) * 1000, 2)} ms, Kafka brokers ${fmt((cpuSeconds(run.cpu, ['kafka']) / r.file.records) * 1000, 2)} ms, PostgreSQL ${fmt((cpuSeconds(run.cpu, ['postgres']) / r.file.records) * 1000, 2)} ms); ` +
        `COPY costs ${fmt(copyCpu * 1000, 2)} ms per row (client + PostgreSQL) and the company writer ${fmt(writerCpu * 1000, 2)} ms: per record the pipeline burns ${fmt(perRecord / copyCpu, 1)}× the CPU of COPY. ` +
        `At that cost, even ${cores} cores kept 100% busy by the pipeline alone would give at most ${cores} ÷ ${fmt(perRecord * 1000, 2)} ms = ${fmt(cores / perRecord)} records/s = ${fmt(cores / perRecord / copyRate, 2)} of COPY; ` +
        `0.50 of COPY (${fmt(copyRate / 2)} records/s) needs at most ${fmt((cores / (copyRate / 2)) * 1000, 2)} ms of CPU per record on ${cores} cores, i.e. the target is out of reach on this machine without cutting the pipeline's CPU per record by ${fmt(perRecord / (cores / (copyRate / 2)), 1)}×. ` +
        `Of that budget, the Kafka brokers (replication factor 3: every byte written by three brokers on the same ${cores} cores) and PostgreSQL alone spent ${fmt(serverPerRecord * 1000, 2)} ms per record (${fmt((serverPerRecord / (cores / (copyRate / 2))) * 100)}%), leaving ${fmt(Math.max(0, cores / (copyRate / 2) - serverPerRecord) * 1000, 2)} ms for the processor, the ingress and MinIO, which spent ${fmt((cpuSeconds(run.cpu, ['processor', 'ingress', 'minio']) / r.file.records) * 1000, 2)} ms. The processor alone spent ${fmt(run.processCpuSeconds, 1)} s of CPU (${fmt(run.gcSeconds, 1)} s of it in GC), ` +
        `${fmt(run.processCpuSeconds / r.prepare.total, 1)}× what the bare parse + normalise + stringify + parse + validate of the same records took in the bench (${fmt(r.prepare.total, 1)} s); event-loop delay p99 reached ${fmt(run.eventLoopLagP99MaxMs, 0)} ms, so every Kafka/Postgres round trip of every stage waits behind the others' CPU work.`,
    );
    out.push(
      `**${label}: the sink vs the rest.** The company writer alone (${loadWayWriters(r)[0]?.method ?? 'insert'} way, batches of 1,000, no Kafka) loads ${fmt(writerRate)} rows/s, ${fmt(writerRate / copyRate, 3)} of COPY's ${fmt(copyRate)}` +
        (writerRate / copyRate < targets.e2eOverCopy
          ? ` — already below the 0.50 target on its own, so the target cannot be met with this sink even if extract, validate and Kafka cost nothing. `
          : ` — the sink alone clears the 0.50 target, so what holds the pipeline below it is upstream of the database: Kafka and the processor's event loop. `) +
        (insertWayWriters(r).length > 0 && loadWayWriters(r) !== r.writer
          ? `The insert way (multi-row INSERT … ON CONFLICT text built by pg-promise's formatter and parsed again by PostgreSQL) loads ${fmt(mean(insertWayWriters(r).map((writer) => writer.rowsPerSecond)))} rows/s in the same run: the copy way is ${fmt(writerRate / mean(insertWayWriters(r).map((writer) => writer.rowsPerSecond)), 2)}× it. `
          : `(Its multi-row INSERT … ON CONFLICT text is built by pg-promise's formatter and parsed again by PostgreSQL, plus the child-row DELETEs and INSERTs.) `) +
        `End to end reaches ${fmt(run.rowsPerSecond)} rows/s, ${fmt(run.rowsPerSecond / writerRate, 2)} of the writer: the rest of the gap (${fmt(r.file.distinctValidPermalinks / writerRate, 1)} s of writer time vs ${fmt(total, 1)} s end to end) is the upload, the extract barrier and validate, ` +
        `which run before or in the same event loop as the load, on the same ${cores} cores.`,
    );
    const peakAt = run.peakRssAtSeconds ?? [];
    out.push(
      `**${label}: memory.** Processor RSS ${run.idleRssMiB.map((v) => fmt(v, 0)).join(' / ')} MiB idle → ${run.peakRssMiB.map((v) => fmt(v, 0)).join(' / ')} MiB peak` +
        (peakAt.length > 0 ? `, reached ${peakAt.map((at) => `${phaseAt(run, at)} (${fmt(at, 1)} s)`).join(' / ')}` : '') +
        `; the JS heap in use peaked at ${fmt(run.heapUsedMaxMiB, 0)} MiB (largest replica, /metrics every ${r.settings.metricsPollMs} ms)` +
        (run.heapTotalMaxMiB !== undefined && run.externalMaxMiB !== undefined
          ? `, the V8 heap's committed size at ${fmt(run.heapTotalMaxMiB, 0)} MiB and external (Buffer) memory at ${fmt(run.externalMaxMiB, 0)} MiB; the rest of the RSS is code, the runtime and allocator slack.`
          : `; the rest of the RSS lies outside the used JS heap (V8's committed-but-free heap, off-heap Buffers such as fetched Kafka batches and the encoded batches of open transactions) — these runs did not break it down further.`),
    );
  }
  const withCommitted = runs.filter((r) => r.run.committed !== undefined);
  if (withCommitted.length > 0) {
    const facts = withCommitted.map((r) => {
      const c = r.run.committed!;
      return (
        `${r.settings.replicas} replica${r.settings.replicas === 1 ? '' : 's'}: RecordValidated ${fmt(c.recordValidated)} committed messages for this import against ${fmt(r.file.valid)} valid records (${fmt(c.recordValidated - c.recordValidatedDistinct)} byte-identical copies), ` +
        `ValidationError ${fmt(c.validationError)} against ${fmt(r.file.invalid)}, while the processor's own counters say validate read ${fmt(r.run.stages.validate.recordsIn)} and wrote ${fmt(r.run.validationErrors)} ValidationErrors; ` +
        `processor_retries_total: ${stageList.map((stage) => `${stage} ${fmt(r.run.retries?.[stage] ?? Number.NaN)}`).join(', ')}`
      );
    });
    const anyDuplicates = withCommitted.some((r) => r.run.committed!.recordValidated > r.file.valid || r.run.committed!.validationError > r.file.invalid);
    out.push(
      `**Duplicates (a correctness finding, not a speed one).** ${facts.join('; ')}. ` +
        (anyDuplicates
          ? `So the validate stage's transactions committed some outputs twice — exactly-once between validate and load does not hold under this load. The copies are byte-identical (same record_index, same document), ` +
            `so they come from the same input message being written in two committed transactions (or the same produce request being written twice), not from the file. The rows are right (the upsert collapses them), but the load stage writes them again and RecordsLoaded over-counts. ` +
            `This bench does not find the cause; it is worth its own issue (the runner retrying a transaction whose commit the broker had in fact applied would fit the numbers when retries > 0).`
          : 'No duplicates in these runs.'),
    );
  }
  if (withCommitted.length === 0 && runs.some((r) => r.run.stages.load.recordsIn > r.file.valid)) {
    out.push(
      `**Duplicates (a correctness finding, not a speed one; checked by hand, not by these runs).** In both runs above the load stage took more input messages than the file has valid records while validate read exactly ${fmt(runs[0]?.file.records ?? 20_000)}. ` +
        finding('pipeline-duplicates-by-hand'),
    );
  }
  const one = runs.find((run) => run.settings.replicas === 1);
  const two = runs.find((run) => run.settings.replicas === 2);
  if (one !== undefined && two !== undefined) {
    out.push(
      `**1 vs 2 replicas.** End to end ${fmt(one.run.recordsPerSecond)} → ${fmt(two.run.recordsPerSecond)} records/s (×${fmt(two.run.recordsPerSecond / one.run.recordsPerSecond, 2)}); ` +
        `ratio to COPY ${fmt(one.run.recordsPerSecond / mean(one.copy.map((copy) => copy.rowsPerSecond)), 3)} → ${fmt(two.run.recordsPerSecond / mean(two.copy.map((copy) => copy.rowsPerSecond)), 3)}. ` +
        `The file's extract is shared by its pieces (extract work per replica: ${(two.run.extractShares ?? []).map((share) => fmt((100 * share) / Math.max(1, two.run.extractOutputs))).join('% / ')}%, by the partitions each replica owns), and ` +
        `each run's ratio to the COPY ceiling measured in the same run is what compares runs made minutes apart on a machine whose speed moves (COPY itself: ${fmt(mean(one.copy.map((copy) => copy.rowsPerSecond)))} and ${fmt(mean(two.copy.map((copy) => copy.rowsPerSecond)))} rows/s); ` +
        `on ${one.machine.nproc} cores that were already at ${fmt(one.run.cpu.machine)}% (1 replica) and ${fmt(two.run.cpu.machine)}% (2) it competes for the same CPU with Kafka and PostgreSQL. Either way the ratio stays far below the target: replicas scale the stages out only where there are cores to scale onto.`,
    );
  }
  if (one !== undefined) {
    const normalised = (run: Results) => run.run.recordsPerSecond / mean(run.copy.map((copy) => copy.rowsPerSecond));
    const others = runs.filter((run) => run.settings.replicas > 1);
    if (others.length > 0) {
      out.push(
        `**Replicas against 1, each normalised by its own run's COPY ceiling.** ` +
          others
            .map(
              (run) =>
                `${run.settings.replicas} replicas: ×${fmt(run.run.recordsPerSecond / one.run.recordsPerSecond, 2)} raw, ×${fmt(normalised(run) / normalised(one), 2)} normalised, machine at ${fmt(run.run.cpu.machine)}% of ${run.machine.nproc * 100}%`,
            )
            .join('; ') +
          ` (1 replica: ${fmt(one.run.recordsPerSecond)} records/s with the machine at ${fmt(one.run.cpu.machine)}%). On ${one.machine.nproc} cores the CPU left idle by one replica bounds what more replicas can add.`,
      );
    }
  }
  out.push(finding('pipeline-cpu-profile'));

  if (one !== undefined) {
    const validateLoad = one.run.phases.find((phase) => phase.name.startsWith('validate + load'));
    const extractPhase = one.run.phases.find((phase) => phase.name.startsWith('extract'));
    const copyRate = mean(one.copy.map((copy) => copy.rowsPerSecond));
    const writerRate = mean(loadWayWriters(one).map((writer) => writer.rowsPerSecond));
    if (one.processorSettings === undefined) {
      out.push(
        `**Bottleneck, in short (1 replica).** The processor's single event loop. First alone: the extract stage turns the one 80 MB file into ${fmt(one.run.extractOutputs)} events inside ONE Kafka transaction, ` +
          `${fmt(one.run.stages.extract.doneAt - one.run.answeredSeconds, 1)} s (${fmt(((one.run.stages.extract.doneAt - one.run.answeredSeconds) / one.run.seconds) * 100)}% of the run) with the processor at ${fmt(extractPhase?.processor ?? Number.NaN)}% of a core (its GC and I/O threads included) and validate/load unable to start (read_committed). ` +
          `Then shared: validate and load run their 3 partitions each in the same event loop for ${fmt((validateLoad?.to ?? Number.NaN) - (validateLoad?.from ?? Number.NaN), 1)} s with the processor at ${fmt(validateLoad?.processor ?? Number.NaN)}%, PostgreSQL at ${fmt(validateLoad?.postgres ?? Number.NaN)}% and the machine at ${fmt(validateLoad?.machine ?? Number.NaN)}% of ${one.machine.nproc * 100}%, ` +
          `every batch a chain of round trips (Kafka transaction: produce, AddOffsetsToTxn, TxnOffsetCommit, EndTxn, all acks=all to 3 brokers; Postgres: BEGIN … COMMIT plus a RecordsLoaded produce) that waits behind the other stage's CPU work. ` +
          `Underneath both: ${fmt((cpuSeconds(one.run.cpu, pipelineGroups) / one.file.records) * 1000, 2)} ms of CPU per record across processor, Kafka and PostgreSQL, which caps this ${one.machine.nproc}-core machine at about ${fmt(one.machine.nproc / (cpuSeconds(one.run.cpu, pipelineGroups) / one.file.records))} records/s whatever the scheduling. ` +
          `The sink by itself is not enough either: the company writer reaches only ${fmt(writerRate / copyRate, 2)} of COPY with 1,000-record batches, and the pipeline gives it ~${fmt(one.run.stages.load.recordsIn / one.run.stages.load.batches)}-record batches. ` +
          `Levers, by size: let a big file's extract commit every N outputs so validate/load start within a second instead of after ${fmt(one.run.stages.extract.doneAt, 0)} s; load through COPY into a temporary table + one INSERT … SELECT … ON CONFLICT (or unnest of arrays) instead of pg-promise-formatted VALUES text; ` +
          `give load bigger batches (validate's transactions carry ~${fmt(one.run.stages.validate.recordsIn / one.run.stages.validate.batches)} records); and stop re-serialising each ~4 KB document in every stage (JSON ↔ object ↔ Avro several times).`,
      );
    } else {
      const pipelineCpuPerRecord = cpuSeconds(one.run.cpu, pipelineGroups) / one.file.records;
      const kafkaShare = cpuSeconds(one.run.cpu, ['kafka']) / cpuSeconds(one.run.cpu, pipelineGroups);
      out.push(
        `**Bottleneck, in short (1 replica).** CPU per record, shared by three kinds of process on ${one.machine.nproc} cores: ${fmt(pipelineCpuPerRecord * 1000, 2)} ms of CPU per record across processor, Kafka and PostgreSQL ` +
          `(Kafka's three brokers ${fmt(kafkaShare * 100)}% of it), which caps this machine at about ${fmt(one.machine.nproc / pipelineCpuPerRecord)} records/s whatever the scheduling; the run reached ${fmt(one.run.recordsPerSecond)}. ` +
          `Within that, the run lasts as long as the extract of its one file: ${fmt(((one.run.stages.extract.doneAt - one.run.answeredSeconds) / one.run.seconds) * 100)}% of it, in ${fmt(one.run.pieces ?? 1)} pieces that one replica extracts one after the other, in the event loop that validate and load share. ` +
          `The sink alone (company writer, ${loadWayWriters(one)[0]?.method ?? 'insert'} way) reaches ${fmt(writerRate / copyRate, 2)} of COPY${writerRate / copyRate >= targets.e2eOverCopy ? ', above the target: the gap is upstream of it' : ', itself below the target'}. ` +
          `Every record crosses Kafka twice (RecordExtracted, RecordValidated), each time written to 3 replicas, read by the followers and by the next stage, inside transactions (produce, AddPartitionsToTxn, AddOffsetsToTxn, TxnOffsetCommit, EndTxn with its markers), ` +
          `and the processor re-serialises each ~4 KB document several times (JSON text → object → Avro → object → COPY text). ` +
          `${finding('pipeline-compression-levers')} ` +
          `More replicas sharing a big file's pieces can only use the CPU left idle (the machine was at ${fmt(one.run.cpu.machine)}% of ${one.machine.nproc * 100}% with one, so at most ${fmt((one.machine.nproc * 100) / one.run.cpu.machine, 2)}× on this machine). Fusing validate into extract would save one Kafka crossing, but the stages are separate consumer groups by design. ${finding('pipeline-own-code-share')} ` +
          `None of these brings the pipeline near the CPU per record that 0.50 of COPY allows here, since the Kafka brokers and PostgreSQL alone spend nearly all of it (above): the target needs more cores than this machine has (brokers and PostgreSQL on their own hosts, as in production), where the stages scale out by partition.`,
      );
    }
  }
  return out;
}
