/**
 * bench:pipeline — the whole pipeline end to end against its database ceiling, measured in ONE
 * run so that the ratios hold on a noisy shared machine:
 *
 *   (e2e)  one NDJSON file of BENCH_PIPELINE_COUNT (20,000) seeded companies (~80 MB; seed 42,
 *          every 50th invalid, every 100th a duplicate) POSTed to a real ingress (child process),
 *          extracted, validated and loaded by BENCH_PIPELINE_REPLICAS (1) processor child(ren)
 *          (`node dist/topology/main.js run`, all stages: the services run compiled and with the
 *          image's MALLOC_MMAP_THRESHOLD_, as their images run them; the bench runs `npm run build`
 *          first). t0 = just before the POST starts
 *          streaming the file from disk; t1 = when `SELECT count(*) FROM companies WHERE tenant = $1`
 *          (polled every 150 ms) reaches the file's distinct valid permalinks. records/s = records
 *          in the file ÷ (t1 − t0). The processor's VmRSS is sampled every 50 ms.
 *   (copy) the ceiling: the same rows (the documents the pipeline stores: normalizeRecord,
 *          validateRecord, duplicates collapsed last-wins, mapped to the three tables' rows by
 *          the sink's own companyRows) COPY'd FROM STDIN by the sink's own copyRows (text format,
 *          `pg` + `pg-copy-streams`, one connection, one transaction) into the same three tables
 *          under another tenant, with none of the sink's staging, merge or offsets; timed from
 *          the mapping of the first row to COMMIT.
 *   (writer) the sink alone: createCompanyWriter writing the valid records (file order, duplicates
 *          included, as the load stage receives them) in batches of 1000, no Kafka — both of its
 *          ways: `copy` (COPY into staging tables + one merge; what the load stage uses) and
 *          `insert` (pg-promise multi-row INSERT … ON CONFLICT).
 * Both ceilings run once before and once after the pipeline (bracketing it), and their mean is
 * the reference. Before anything is measured the processor drains whatever backlog the shared
 * topics hold (other people's tests and earlier runs); that drain is reported, not counted. Then
 * one small import (BENCH_PIPELINE_WARMUP_COUNT records, another seed, its own tenant) goes
 * through the whole stack unmeasured, so that a freshly started stack (cold JVMs) and a warm
 * one give comparable numbers.
 * After the run, what validate committed for this import (RecordValidated, ValidationError) is
 * read back from Kafka by its request_id header, to show duplicates the counters cannot see.
 *
 * Results go to stdout, bench/tmp/pipeline-last-r<replicas>.json and — for runs of 20,000 records
 * without profiling — the `## bench:pipeline` section of bench/results.md (rendered from the last
 * 1-replica and 2-replica runs found in bench/tmp; `tsx bench/pipeline.ts --render-only`
 * re-renders it without measuring; the other sections are left as they are). Cleanup:
 * the rows of every tenant this run wrote (children cascade), the writer's sink_offsets rows,
 * the imported S3 object, the temp file; the children get SIGTERM. Kafka events stay.
 *
 * Environment: BENCH_PIPELINE_COUNT (20000), BENCH_PIPELINE_REPLICAS (1),
 * BENCH_PIPELINE_DRAIN_TIMEOUT_S (1200), BENCH_PIPELINE_TIMEOUT_S (1800: the measured run),
 * BENCH_PIPELINE_SETTLE_S (5: how long the lag must stay drained), BENCH_PIPELINE_WARMUP_COUNT (2000),
 * BENCH_PIPELINE_ATTEMPTS (3) and
 * BENCH_PIPELINE_OWNERSHIP_TIMEOUT_S (900): other people's integration tests start processors that
 * join the same consumer groups, so the run waits until its processors own every partition, and
 * a run during which another processor took partitions (or other people's imports went through
 * ours in bulk) is discarded and repeated (and flagged if the attempts run out), BENCH_PIPELINE_CPU_PROF=1
 * (processors run with --cpu-prof into bench/tmp/prof-pipeline; results.md left alone), plus the
 * usual S3_* / KAFKA_* / SCHEMA_REGISTRY_URL / PG*.
 */
import { spawnIngress, spawnProcessor } from './lib/services.js';
import { DeleteObjectsCommand, ListObjectsV2Command } from '@aws-sdk/client-s3';
import { execFileSync } from 'node:child_process';
import { mkdirSync, statSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import { createPostgres } from '../core/postgres.js';
import { createS3 } from '../core/s3.js';
import { writeCompanies } from '../examples/generate/companies.js';
import { type WriteMethod } from '../sinks/postgres/index.js';
import { loadProcessorConfig } from '../topology/config.js';
import { type Child, waitForHttp, stopChild } from './lib/children.js';
import { findPids, medianRss, resetHwm, sampleRssPeaks } from './lib/proc.js';
import { fmt, machineInfo, writeSection } from './lib/report.js';
import { runMain, stopOnInterrupt } from './lib/run.js';
import { copyCeiling, prepareRecords, type Source, writerCeiling } from './pipeline/ceilings.js';
import { drain, inputPartitions, waitForSoleOwnership } from './pipeline/lag.js';
import { measureAttempt, warmUp } from './pipeline/measured-run.js';
import { cpuText, renderSection, renderRun } from './pipeline/render.js';
import { type Results } from './pipeline/results.js';
import { MiB, config, log, profDir, resultsFile, root, settings, stamp, tenants, tmpDir, warmupTenant, writerGroups } from './pipeline/settings.js';
async function startIngress(): Promise<Child> {
  const child = await spawnIngress();
  await waitForHttp(child, '/readiness', 120_000);
  return child;
}

function startProcessor(index: number): Promise<Child> {
  const nodeArgs = settings.cpuProf ? ['--cpu-prof', '--cpu-prof-dir', profDir] : [];
  return spawnProcessor(index, { nodeArgs, env: { PROCESSOR_LAG_INTERVAL_MS: '1000' } });
}

async function main(): Promise<void> {
  mkdirSync(tmpDir, { recursive: true });
  if (settings.cpuProf) mkdirSync(profDir, { recursive: true });
  log('building dist/ (the services run compiled, as in their images)');
  execFileSync('npm', ['run', '--silent', 'build'], { cwd: root, stdio: ['ignore', process.stderr, process.stderr] });
  const file = join(tmpDir, `pipeline-${settings.count}-${stamp}.ndjson`);
  const s3 = createS3(config.s3);
  const db = createPostgres(config.postgres, { applicationName: 'bench-pipeline' });
  const results: Partial<Results> = {
    date: new Date().toISOString(),
    machine: machineInfo(),
    settings,
    servicesRun: 'compiled',
    processorSettings: (({ extractRecordsPerTransaction, loadBatchMaxRecords, loadBatchLingerMs }) => ({
      extractRecordsPerTransaction,
      loadBatchMaxRecords,
      loadBatchLingerMs,
    }))(loadProcessorConfig(process.env).processor),
  };
  let ingress: Child | undefined;
  const processors: Child[] = [];
  const importKeys: string[] = [];
  const pipelineTenants: string[] = [];
  try {
    // 1. The file.
    log(`generating ${fmt(settings.count)} companies (seed ${settings.seed}) into ${file}`);
    const t = performance.now();
    const summary = await writeCompanies(file, {
      count: settings.count,
      seed: settings.seed,
      invalidEvery: settings.invalidEvery,
      duplicateEvery: settings.duplicateEvery,
      tenant: tenants.pipeline,
    });
    const bytes = statSync(file).size;
    results.file = {
      bytes,
      records: summary.total,
      valid: summary.valid,
      invalid: summary.invalid,
      duplicates: summary.duplicates,
      distinctValidPermalinks: summary.distinctValidPermalinks,
      generateSeconds: (performance.now() - t) / 1000,
    };
    log(`generated ${fmt(bytes / 1e6, 1)} MB: ${JSON.stringify(summary)}`);

    // 2. The ceilings' rows, from the same file, through the pipeline's own normalise/validate code.
    const prepared = await prepareRecords(file);
    if (prepared.rows.length !== summary.distinctValidPermalinks || prepared.invalid !== summary.invalid) {
      throw new Error(
        `the file read back gives ${prepared.rows.length} rows / ${prepared.invalid} invalid, the generator said ${summary.distinctValidPermalinks} / ${summary.invalid}`,
      );
    }
    results.prepare = { ...prepared.seconds, validRecords: prepared.valid.length, rows: prepared.rows.length };
    log(`prepared ${prepared.rows.length} rows in ${fmt(prepared.seconds.total, 2)} s (${JSON.stringify(prepared.seconds)})`);

    // 3. The servers under test.
    ingress = await startIngress();
    for (let i = 0; i < settings.replicas; i++) processors.push(await startProcessor(i));
    const mine = () => new Set([process.pid, ...processors.map((child) => child.pid), ...(ingress === undefined ? [] : [ingress.pid])]);
    const rss = sampleRssPeaks(() => [...processors, ...(ingress === undefined ? [] : [ingress])].map((child) => child.pid), settings.rssSampleMs);
    try {
      for (const child of processors) await waitForHttp(child, '/readiness', 120_000);
      log(`ingress pid ${ingress.pid} at ${ingress.url}; processor pid(s) ${processors.map((child) => `${child.pid} at ${child.url}`).join(', ')}`);

      // 4. Drain the backlog the shared topics hold.
      const firstDrain = await drain(processors, settings.drainTimeoutSeconds);
      const drainPeakRssMiB = processors.map((child) => rss.peak(child.pid) / MiB);
      log(
        `drain: ${firstDrain.drained ? 'drained' : 'NOT drained'} after ${fmt(firstDrain.seconds, 1)} s, ${fmt(firstDrain.recordsProcessed)} input messages, initial max lag ${JSON.stringify(firstDrain.initialMaxLag)}`,
      );

      // 4b. Warm-up, not measured: a small import through the whole stack first. On a freshly
      // started stack the brokers' JIT is cold and costs them far more CPU per record than later
      // runs; every process should be measured warm.
      pipelineTenants.push(warmupTenant);
      results.warmup = await warmUp(ingress, db);
      log(`warm-up: ${fmt(results.warmup.records)} records → ${fmt(results.warmup.rows)} rows in ${fmt(results.warmup.seconds, 1)} s (not measured)`);

      const source: Source = {
        requestId: `bench-ceiling-${stamp}`,
        bucket: config.s3.bucket,
        key: `${tenants.pipeline}/bench-ceiling.json`,
        acceptedAt: Date.now(),
      };
      const groups = () => {
        const found = findPids(mine());
        return {
          bench: [process.pid],
          processor: processors.map((child) => child.pid),
          postgres: found.postgres,
          kafka: found.kafka,
          minio: found.minio,
          otherProcessors: found.otherProcessors,
        };
      };

      // 5. Ceilings, before.
      results.copy = [];
      results.writer = [];
      const runCopy = async (i: number) => {
        const tenant = tenants.copy[i]!;
        const copy = await copyCeiling(tenant, prepared.rows, source, groups);
        results.copy?.push(copy);
        log(
          `COPY ${i + 1}: ${fmt(copy.companies)} companies + ${fmt(copy.offices)} offices + ${fmt(copy.rounds)} rounds in ${fmt(copy.seconds, 2)} s = ${fmt(copy.rowsPerSecond)} rows/s; CPU ${cpuText(copy.cpu, os.availableParallelism())}`,
        );
      };
      const runWriter = async (i: number, method: WriteMethod) => {
        const writer = await writerCeiling(tenants.writer[i]!, writerGroups[i]!, method, prepared.valid, source, groups);
        results.writer?.push(writer);
        log(
          `writer ${i + 1} (${method}): ${fmt(writer.records)} records → ${fmt(writer.rows)} rows in ${writer.batches} batches, ${fmt(writer.seconds, 2)} s = ${fmt(writer.rowsPerSecond)} rows/s; CPU ${cpuText(writer.cpu, os.availableParallelism())}`,
        );
      };
      await runCopy(0);
      await runWriter(0, 'copy');
      await runWriter(1, 'insert');

      // Anything that arrived meanwhile (other people's tests) is drained again.
      const recheck = await drain(processors, settings.drainTimeoutSeconds);
      results.drain = { ...firstDrain, recheckSeconds: recheck.seconds, recheckDrained: recheck.drained };

      // 6. Idle RSS, then the measured run; again if another processor shared the groups meanwhile.
      results.discarded = [];
      const owned = await inputPartitions(s3);
      for (let attempt = 1; ; attempt++) {
        const tenant = attempt === 1 ? tenants.pipeline : `${tenants.pipeline}-${attempt}`;
        pipelineTenants.push(tenant);
        let ownership = await waitForSoleOwnership(processors, mine, owned, settings.ownershipTimeoutSeconds);
        // Quiet first (nothing of anyone's in flight for BENCH_PIPELINE_SETTLE_S), then ownership checked once more.
        await drain(processors, settings.drainTimeoutSeconds);
        const again = await waitForSoleOwnership(processors, mine, owned, settings.ownershipTimeoutSeconds);
        ownership = { seconds: ownership.seconds + again.seconds, sole: again.sole };
        await sleep(1000);
        const idleRss = (
          await medianRss(
            processors.map((child) => child.pid),
            20,
          )
        ).map((bytes) => bytes / MiB);
        const hwmReset = processors.map((child) => resetHwm(child.pid));
        rss.reset();

        const run = await measureAttempt({
          attempt,
          tenant,
          file,
          bytes,
          summary,
          ingress,
          processors,
          db,
          mine,
          groups,
          rss,
          owned,
          ownership,
          idleRss,
          hwmReset,
          drainPeakRssMiB,
          onImported: (key) => importKeys.push(key),
        });
        results.run = run;
        if (!run.contaminated || attempt >= settings.attempts) break;
        results.discarded.push({
          attempt,
          tenant,
          seconds: run.seconds,
          recordsPerSecond: run.recordsPerSecond,
          minAssigned: run.minAssigned,
          otherProcessorPids: run.otherProcessorPids,
          foreign: run.foreign,
        });
        log(
          `attempt ${attempt} shared its processors or consumer groups with other people's work: discarded, trying again (${settings.attempts - attempt} left)`,
        );
        await db.db.none('DELETE FROM companies WHERE tenant = $1', [tenant]);
        await drain(processors, settings.drainTimeoutSeconds);
      }

      // 7. Ceilings, after.
      await runWriter(2, 'insert');
      await runWriter(3, 'copy');
      await runCopy(1);
    } finally {
      rss.stop();
    }
  } finally {
    results.machine!.loadavgAfter = os.loadavg();
    const processorExit: Array<number | null> = [];
    for (const child of processors) {
      processorExit.push(await stopChild(child));
      const problems = child.log.filter((line) => /"level":"(warn|error|fatal)"|"level":[456]0/.test(line) && !line.includes('The group is rebalancing'));
      for (const line of problems.slice(-8)) log(`${child.name} said: ${line.slice(0, 600)}`);
    }
    const ingressExit = ingress === undefined ? null : await stopChild(ingress);
    const cleanup = { companies: 0, sinkOffsets: 0, objects: 0, processorExit, ingressExit };
    try {
      const all = [tenants.pipeline, ...pipelineTenants, ...tenants.copy, ...tenants.writer];
      cleanup.companies = (await db.db.result('DELETE FROM companies WHERE tenant = ANY($1)', [all])).rowCount;
      cleanup.sinkOffsets = (await db.db.result('DELETE FROM sink_offsets WHERE consumer_group = ANY($1)', [writerGroups])).rowCount;
    } catch (error) {
      log(`cleanup of the rows failed: ${String(error)}`);
    }
    try {
      // The import's object (and anything else under the run's tenant prefix).
      // Prefix `benchp-<stamp>` covers the retries' tenants `benchp-<stamp>-<n>` too.
      const listed = await s3.send(new ListObjectsV2Command({ Bucket: config.s3.bucket, Prefix: tenants.pipeline }));
      const keys = (listed.Contents ?? []).flatMap((object) => (object.Key === undefined ? [] : [{ Key: object.Key }]));
      for (const importKey of importKeys) if (!keys.some((entry) => entry.Key === importKey)) keys.push({ Key: importKey });
      if (keys.length > 0) {
        const deleted = await s3.send(new DeleteObjectsCommand({ Bucket: config.s3.bucket, Delete: { Objects: keys, Quiet: true } }));
        cleanup.objects = keys.length - (deleted.Errors ?? []).length;
      }
    } catch (error) {
      log(`cleanup of s3://${config.s3.bucket}/${tenants.pipeline}/ failed: ${String(error)}`);
    }
    rmSync(file, { force: true });
    results.cleanup = cleanup;
    log(
      `cleanup: ${cleanup.companies} company rows (children cascade), ${cleanup.sinkOffsets} sink_offsets rows, ${cleanup.objects} S3 objects deleted; exits: processors ${processorExit.join(',')}, ingress ${ingressExit}`,
    );
    s3.destroy();
    await db.close();
  }

  const complete = results as Results;
  const name = settings.cpuProf ? 'pipeline-last-prof.json' : `pipeline-last-r${settings.replicas}.json`;
  writeFileSync(join(tmpDir, name), `${JSON.stringify(complete, null, 2)}\n`);
  process.stdout.write(`${renderRun(complete)}\n`);
  if (settings.cpuProf) {
    log(`CPU profile(s) in ${profDir} (summary: tsx bench/cpuprofile-top.ts <file>); results.md left unchanged`);
  } else if (settings.count !== 20_000) {
    log(`BENCH_PIPELINE_COUNT=${settings.count} is not the issue's 20,000: ${resultsFile} left unchanged (numbers in bench/tmp/${name})`);
  } else {
    writeSection(resultsFile, '## bench:pipeline', renderSection());
    log(`wrote the "## bench:pipeline" section of ${resultsFile}`);
  }
}

stopOnInterrupt(
  log,
  () =>
    `rows of ${tenants.pipeline}, ${tenants.copy.join(', ')}, ${tenants.writer.join(', ')} and objects under ${tenants.pipeline}/ may remain; temp files in ${tmpDir}`,
);

await runMain(log, async () => {
  if (process.argv.includes('--render-only')) {
    writeSection(resultsFile, '## bench:pipeline', renderSection());
    log(`re-rendered the "## bench:pipeline" section of ${resultsFile} from bench/tmp/pipeline-last-r*.json`);
  } else {
    await main();
  }
});
