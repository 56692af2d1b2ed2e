/**
 * bench:ingest — how close the ingress gets to the machine's own ceilings, measured in ONE run
 * so that the ratios hold even on a noisy shared machine:
 *
 *   (a)  hello-world uWebSockets.js (GET / → "ok"), 64 connections: the HTTP ceiling
 *   (b)  POST /import/<tenant> of ~5 KB NDJSON files, 64 connections, against a real ingress in
 *        a child process (node --import tsx ingress/main.ts): req/s, p50/p99, every answer 202?
 *   (b⁰) the same against an ingress with INGRESS_DURABLE_CLAIMS=false: what the durable
 *        request-id claim (ingress/import-claims.ts: two conditional S3 writes) costs per import
 *   (c)  raw S3 PutObject (@aws-sdk/client-s3) of the same bytes, 64 in flight: the storage ceiling
 *   (c′) the same PUTs through the ingress's own lean PUT (ingress/s3-put.ts: SigV4 by hand over an
 *        undici Pool): how much of (c) is the SDK's CPU
 *   (d)  one 200 MiB NDJSON upload streamed from disk: MB/s and the ingress's RSS growth
 * plus, for the published figures in /work/shared/FIELD-NOTES.md: uWS vs node:http with
 * `-c100 -p10`, MinIO 4 KiB PUTs with 1 and 2 in flight, and an undici Pool client on (a) to show
 * which client costs less.
 *
 * Load generator: autocannon's programmatic API (raw sockets, pre-encoded requests, per-response
 * latency in ms from hrtime), in this process; every server runs in a child process. (b), (c) and
 * (c′) run in interleaved rounds so that a change in the machine's load reaches all three.
 * Results go to stdout, bench/tmp/ingest-last.json and the `## bench:ingest` section of
 * bench/results.md (`tsx bench/ingest.ts --render-only` re-renders it from the JSON). Everything
 * the run writes to S3 is under `bench-<timestamp>/` and is deleted at the end, as is the temp
 * file. The ingress's FileExtractSuccess events stay in Kafka (they cannot be deleted).
 *
 * Environment: BENCH_SECONDS (10) measured seconds per phase, BENCH_WARMUP_SECONDS (3),
 * BENCH_ROUNDS (2), BENCH_CONNECTIONS (64), BENCH_FILE_BYTES (5000), BENCH_BIG_MIB (200),
 * BENCH_PHASES (a,b,c,d,pub; a subset leaves results.md alone), BENCH_CPU_PROF=1 (the ingress of
 * (b) runs with --cpu-prof into bench/tmp/prof; summarise with bench/cpuprofile-top.ts), plus the
 * usual S3_* / KAFKA_* / SCHEMA_REGISTRY_URL.
 */
import { createReadStream, mkdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { AbortMultipartUploadCommand, DeleteObjectsCommand, ListMultipartUploadsCommand, ListObjectsV2Command, S3Client } from '@aws-sdk/client-s3';
import { Pool, request } from 'undici';
import { generateCompanies, writeCompanies } from '../examples/generate/companies.js';
import { createLeanS3Put } from '../ingress/s3-put.js';
import { type MetricsWindow, breakdown } from './ingest/ingress-metrics.js';
import { cpuText, renderSection } from './ingest/render.js';
import { type Results } from './ingest/results.js';
import {
  type Measured,
  type Runner,
  benchS3,
  cannonRunner,
  is2xx,
  leanPutRunner,
  measure,
  phase,
  sdkPutRunner,
  summarise,
  undiciGetRunner,
} from './ingest/runners.js';
import { allPhases, bucket, tenant, MiB, config, log, resultsFile, settings, tmpDir } from './ingest/settings.js';
import { type Child, spawnSource, stopChild, waitForHttp, freePort } from './lib/children.js';
import { scrape } from './lib/metrics.js';
import { cpuMeter, findPids, medianRss, resetHwm, sampleRssPeaks, vm } from './lib/proc.js';
import { fmt, machineInfo, writeSection } from './lib/report.js';
import { runMain, stopOnInterrupt } from './lib/run.js';
import { spawnIngress } from './lib/services.js';
// ---------------------------------------------------------------------------------------------
// Child processes (servers under test); only the ones this run started are ever signalled

// The servers under test run from their TypeScript source (`node --import tsx`), as results.md says.

async function startHello(kind: 'uws' | 'node'): Promise<Child> {
  const port = await freePort();
  const child = spawnSource(`hello-${kind}`, 'bench/hello-server.ts', [kind, String(port)], process.env, `http://127.0.0.1:${port}`);
  await waitForHttp(child, '/', 30_000);
  return child;
}

async function startIngressChild(name: string, nodeArgs: string[] = [], env: NodeJS.ProcessEnv = {}): Promise<Child> {
  const child = await spawnIngress({ name, nodeArgs, env, fromSource: true });
  await waitForHttp(child, '/readiness', 120_000);
  return child;
}

// ---------------------------------------------------------------------------------------------
// Test data

/** A few company-like NDJSON lines, about `bytes` long in total. */
function smallNdjson(bytes: number): Buffer {
  let text = '';
  for (const record of generateCompanies({ count: 1000, seed: 7, bytesPerRecord: Math.round(bytes / 4) })) {
    const line = `${record.line}\n`;
    if (text !== '' && Buffer.byteLength(text + line) > bytes * 1.1) continue;
    text += line;
    if (Buffer.byteLength(text) >= bytes * 0.95) break;
  }
  return Buffer.from(text);
}

async function deleteTenantPrefix(s3: S3Client): Promise<{ deletedObjects: number; abortedUploads: number }> {
  let deletedObjects = 0;
  let abortedUploads = 0;
  // The files, then the request-id claims (ingress/import-claims.ts keeps them under _claims/).
  for (const prefix of [`${tenant}/`, `_claims/${tenant}/`]) {
    let token: string | undefined;
    do {
      const listed = await s3.send(new ListObjectsV2Command({ Bucket: bucket, Prefix: prefix, ContinuationToken: token }));
      const keys = (listed.Contents ?? []).flatMap((object) => (object.Key === undefined ? [] : [{ Key: object.Key }]));
      if (keys.length > 0) {
        const deleted = await s3.send(new DeleteObjectsCommand({ Bucket: bucket, Delete: { Objects: keys, Quiet: true } }));
        if ((deleted.Errors ?? []).length > 0) log(`cleanup: ${deleted.Errors?.length} objects not deleted`);
        deletedObjects += keys.length - (deleted.Errors ?? []).length;
      }
      token = listed.IsTruncated ? listed.NextContinuationToken : undefined;
    } while (token !== undefined);
  }
  const uploads = await s3.send(new ListMultipartUploadsCommand({ Bucket: bucket, Prefix: `${tenant}/` }));
  for (const upload of uploads.Uploads ?? []) {
    if (upload.Key === undefined || upload.UploadId === undefined) continue;
    await s3.send(new AbortMultipartUploadCommand({ Bucket: bucket, Key: upload.Key, UploadId: upload.UploadId }));
    abortedUploads++;
  }
  return { deletedObjects, abortedUploads };
}

async function post(url: string, body: Buffer): Promise<{ status: number; json: Record<string, unknown> }> {
  const response = await request(url, { method: 'POST', body, headers: { 'content-type': 'application/x-ndjson' } });
  const text = await response.body.text();
  return { status: response.statusCode, json: JSON.parse(text) as Record<string, unknown> };
}

async function main(): Promise<void> {
  mkdirSync(tmpDir, { recursive: true });
  const stack = findPids(new Set());
  const body = smallNdjson(settings.fileBytes);
  const body4k = body.subarray(0, 4096);
  const s3 = benchS3(config.s3, Math.max(settings.connections, 2));
  const results: Results = {
    date: new Date().toISOString(),
    machine: machineInfo(),
    settings: {
      ...settings,
      phases: [...settings.phases],
      fileBytesActual: body.length,
      fileRecords: body
        .toString('utf8')
        .split('\n')
        .filter((line) => line !== '').length,
    },
  };
  log(`tenant ${tenant}; ${settings.connections} connections; ${settings.seconds} s per phase; body ${body.length} bytes`);
  log(`stack pids: minio ${stack.minio.join(',') || '?'}, kafka ${stack.kafka.join(',') || '?'}, registry ${stack.registry.join(',') || '?'}`);
  const stackGroups = { minio: stack.minio, kafka: stack.kafka };
  const bigFile = join(tmpDir, `ingest-${settings.bigMiB}MiB.ndjson`);

  try {
    // (a) the HTTP ceiling, plus the client check and the published-figure configuration
    if (settings.phases.has('a') || settings.phases.has('pub')) {
      const hello = await startHello('uws');
      const groups = { loadgen: [process.pid], server: [hello.pid] };
      const url = `${hello.url}/`;
      try {
        if (settings.phases.has('a')) {
          results.a = await phase('(a) uWS hello-world, autocannon', cannonRunner({ url, connections: settings.connections }), groups, 'req/s');
          const pool = new Pool(hello.url, { connections: settings.connections, pipelining: 1 });
          try {
            results.aUndici = await phase('(a′) uWS hello-world, undici Pool', undiciGetRunner(pool, settings.connections), groups, 'req/s');
          } finally {
            await pool.close();
          }
        }
        if (settings.phases.has('pub')) {
          results.pubUws = await phase('(pub) uWS hello-world -c100 -p10', cannonRunner({ url, connections: 100, pipelining: 10 }), groups, 'req/s');
        }
      } finally {
        await stopChild(hello);
      }
      if (settings.phases.has('pub')) {
        const node = await startHello('node');
        try {
          results.pubNode = await phase(
            '(pub) node:http hello-world -c100 -p10',
            cannonRunner({ url: `${node.url}/`, connections: 100, pipelining: 10 }),
            { loadgen: [process.pid], server: [node.pid] },
            'req/s',
          );
        } finally {
          await stopChild(node);
        }
      }
    }

    // (b) the real ingress in a child process, (c) the same PUTs with the SDK, (c′) without it:
    // measured in interleaved rounds (b c c′, then c′ c b, ...) so that a change in the machine's
    // load while the run goes on reaches all three alike.
    if (settings.phases.has('b') || settings.phases.has('c')) {
      const profDir = join(tmpDir, 'prof');
      const ingress = settings.phases.has('b')
        ? await startIngressChild('ingress-b', settings.cpuProf ? ['--cpu-prof', `--cpu-prof-dir=${profDir}`] : [])
        : undefined;
      const unclaimed = settings.phases.has('b') ? await startIngressChild('ingress-b0', [], { INGRESS_DURABLE_CLAIMS: 'false' }) : undefined;
      const leanPut = settings.phases.has('c') ? createLeanS3Put(config.s3, { connections: settings.connections }) : undefined;
      const cGroups = { loadgen: [process.pid], ...stackGroups };
      try {
        interface Contestant {
          key: 'b' | 'bNoClaims' | 'c' | 'cMinimal';
          label: string;
          runner: Runner;
          groups: Record<string, number[]>;
          slices: Measured[];
          windows: MetricsWindow[];
        }
        const contestants: Contestant[] = [];
        if (ingress !== undefined) {
          const first = await post(`${ingress.url}/import/${tenant}`, body);
          if (first.status !== 202) throw new Error(`the ingress answered ${first.status}: ${JSON.stringify(first.json)}`);
          log(`(b) sanity check: 202, ${String(first.json.records)} records, key ${String(first.json.key)}`);
          contestants.push({
            key: 'b',
            label: '(b) ingress POST /import',
            runner: cannonRunner({
              url: ingress.url,
              connections: settings.connections,
              requests: [{ method: 'POST', path: `/import/${tenant}`, headers: { 'content-type': 'application/x-ndjson' }, body }],
            }),
            groups: { loadgen: [process.pid], server: [ingress.pid], ...stackGroups },
            slices: [],
            windows: [],
          });
        }
        if (unclaimed !== undefined) {
          contestants.push({
            key: 'bNoClaims',
            label: '(b⁰) ingress POST /import, no durable claims',
            runner: cannonRunner({
              url: unclaimed.url,
              connections: settings.connections,
              requests: [{ method: 'POST', path: `/import/${tenant}`, headers: { 'content-type': 'application/x-ndjson' }, body }],
            }),
            groups: { loadgen: [process.pid], server: [unclaimed.pid], ...stackGroups },
            slices: [],
            windows: [],
          });
        }
        if (leanPut !== undefined) {
          contestants.push(
            { key: 'c', label: '(c) S3 PutObject, SDK', runner: sdkPutRunner(s3, body, settings.connections, 'c'), groups: cGroups, slices: [], windows: [] },
            {
              key: 'cMinimal',
              label: '(c′) S3 PUT, no SDK',
              runner: leanPutRunner(leanPut, body, settings.connections, 'c-minimal'),
              groups: cGroups,
              slices: [],
              windows: [],
            },
          );
        }
        for (const contestant of contestants) {
          log(`${contestant.label}: warm-up ${settings.warmupSeconds} s`);
          await contestant.runner(settings.warmupSeconds);
        }
        const sliceSeconds = settings.seconds / settings.rounds;
        for (let round = 0; round < settings.rounds; round++) {
          for (const contestant of round % 2 === 0 ? contestants : [...contestants].reverse()) {
            // Requests cut off at the end of the previous slice finish in the background; let them.
            await sleep(1000);
            log(`${contestant.label}: round ${round + 1}/${settings.rounds}, ${fmt(sliceSeconds, 1)} s`);
            if (contestant.key === 'b' && ingress !== undefined) {
              const before = await scrape(ingress.url);
              const started = performance.now();
              contestant.slices.push(await measure(contestant.runner, sliceSeconds, contestant.groups));
              contestant.windows.push({ before, after: await scrape(ingress.url), seconds: (performance.now() - started) / 1000 });
            } else {
              contestant.slices.push(await measure(contestant.runner, sliceSeconds, contestant.groups));
            }
          }
        }
        for (const contestant of contestants) {
          if (contestant.key === 'b' && ingress !== undefined) {
            results.b = {
              ...summarise(contestant.label, contestant.slices, (status) => status === 202, 'req/s (202)'),
              ingress: breakdown(contestant.windows),
              rssAfterMiB: vm(ingress.pid, 'VmRSS') / MiB,
            };
            log(`(b) ingress metrics: ${JSON.stringify(results.b.ingress)}`);
          } else if (contestant.key === 'bNoClaims') {
            results.bNoClaims = summarise(contestant.label, contestant.slices, (status) => status === 202, 'req/s (202)');
          } else if (contestant.key === 'c') {
            results.c = summarise(contestant.label, contestant.slices, is2xx, 'obj/s');
          } else if (contestant.key === 'cMinimal') {
            results.cMinimal = summarise(contestant.label, contestant.slices, is2xx, 'obj/s');
          }
        }
      } finally {
        if (ingress !== undefined) {
          await stopChild(ingress);
          // autocannon cuts off the requests in flight when a run ends; the ingress logs each as 'client went away'.
          const warnings = ingress.log.filter(
            (line) => (line.includes('"level":"warn"') || line.includes('"level":"error"')) && !line.includes('client went away'),
          );
          for (const warning of warnings.slice(-5)) log(`(b) ingress said: ${warning}`);
          if (settings.cpuProf) log(`(b) CPU profile in ${profDir} (summary: tsx bench/cpuprofile-top.ts <file>)`);
        }
        if (unclaimed !== undefined) await stopChild(unclaimed);
        await leanPut?.close();
      }
      if (settings.phases.has('c')) {
        const short = Math.max(1, settings.seconds / 2);
        results.c1 = await phase('(c1) S3 PutObject 4 KiB, 1 in flight', sdkPutRunner(s3, body4k, 1, 'c1'), cGroups, 'obj/s', short);
        results.c2 = await phase('(c2) S3 PutObject 4 KiB, 2 in flight', sdkPutRunner(s3, body4k, 2, 'c2'), cGroups, 'obj/s', short);
      }
    }

    // (d) one big upload, streamed from disk, against a fresh ingress
    if (settings.phases.has('d')) {
      const count = Math.ceil((settings.bigMiB * MiB) / 4001);
      log(`(d) generating ${settings.bigMiB} MiB (${count} records) into ${bigFile}`);
      const generated = performance.now();
      const written = await writeCompanies(bigFile, { count, seed: 2024, bytesPerRecord: 4000 });
      const generateSeconds = (performance.now() - generated) / 1000;
      const bytes = statSync(bigFile).size;
      log(`(d) generated ${fmt(bytes / MiB, 1)} MiB in ${fmt(generateSeconds, 1)} s`);
      const ingress = await startIngressChild('ingress-d');
      try {
        const warm = await post(`${ingress.url}/import/${tenant}`, body);
        if (warm.status !== 202) throw new Error(`the ingress answered ${warm.status}: ${JSON.stringify(warm.json)}`);
        await sleep(2000);
        const [idleRss = Number.NaN] = await medianRss([ingress.pid], 10);
        // Without the reset VmHWM is the peak since start; the 50 ms samples still give the peak.
        const hwmReset = resetHwm(ingress.pid);
        const sampler = sampleRssPeaks(() => [ingress.pid], 50);
        const before = await scrape(ingress.url);
        const stop = cpuMeter({ loadgen: [process.pid], server: [ingress.pid], ...stackGroups });
        const started = performance.now();
        let bodySent = Number.NaN;
        const stream = createReadStream(bigFile, { highWaterMark: MiB });
        stream.once('end', () => (bodySent = performance.now()));
        log(`(d) uploading ${fmt(bytes / MiB, 1)} MiB`);
        let status: number;
        let answer: Record<string, unknown>;
        try {
          const response = await request(`${ingress.url}/import/${tenant}`, {
            method: 'POST',
            body: stream,
            headers: { 'content-type': 'application/x-ndjson', 'content-length': String(bytes), 'x-filename': 'bench-big.ndjson' },
            headersTimeout: 600_000,
            bodyTimeout: 600_000,
          });
          status = response.statusCode;
          answer = JSON.parse(await response.body.text()) as Record<string, unknown>;
        } finally {
          sampler.stop();
        }
        const sampled = sampler.peak(ingress.pid);
        const peakRssSampled = Number.isNaN(sampled) ? idleRss : Math.max(idleRss, sampled);
        const seconds = (performance.now() - started) / 1000;
        const cpu = stop();
        const after = await scrape(ingress.url);
        const peakRssHwm = vm(ingress.pid, 'VmHWM');
        const peak = Math.max(peakRssSampled, hwmReset ? peakRssHwm : 0);
        results.d = {
          bytes,
          records: written.total,
          generateSeconds,
          seconds,
          bodySentSeconds: (bodySent - started) / 1000,
          mbPerSecond: bytes / 1e6 / seconds,
          status,
          answer,
          idleRss,
          peakRssSampled,
          peakRssHwm,
          hwmReset,
          peakMinusIdle: peak - idleRss,
          cpu,
          ingress: breakdown([{ before, after, seconds }]),
        };
        const d = results.d;
        log(
          `(d) ${status} in ${fmt(seconds, 2)} s (body sent after ${fmt(d.bodySentSeconds, 2)} s): ${fmt(d.mbPerSecond, 1)} MB/s; ` +
            `RSS idle ${fmt(idleRss / MiB, 1)} MiB, peak ${fmt(peak / MiB, 1)} MiB (sampled ${fmt(peakRssSampled / MiB, 1)}, VmHWM ${fmt(peakRssHwm / MiB, 1)}${hwmReset ? ', reset' : ''}), ` +
            `records ${String(answer.records)}/${written.total}, CPU ${cpuText(cpu)}`,
        );
        log(`(d) S3 operations: ${JSON.stringify(d.ingress.s3Operations)}`);
      } finally {
        await stopChild(ingress);
      }
    }
  } finally {
    results.machine.loadavgAfter = os.loadavg();
    try {
      results.cleanup = await deleteTenantPrefix(s3);
      log(`cleanup: deleted ${results.cleanup.deletedObjects} objects under ${tenant}/, aborted ${results.cleanup.abortedUploads} uploads`);
    } catch (error) {
      log(`cleanup of ${tenant}/ failed: ${String(error)}`);
    }
    rmSync(bigFile, { force: true });
    s3.destroy();
  }

  // Only a complete run replaces the numbers that --render-only reads.
  writeFileSync(join(tmpDir, allPhases ? 'ingest-last.json' : 'ingest-last-partial.json'), `${JSON.stringify(results, null, 2)}\n`);
  const section = renderSection(results);
  process.stdout.write(`${section}\n`);
  if (allPhases) {
    writeSection(resultsFile, '## bench:ingest', section);
    log(`wrote the "## bench:ingest" section of ${resultsFile}`);
  } else {
    log(`BENCH_PHASES is a subset: ${resultsFile} left unchanged`);
  }
}

stopOnInterrupt(log, () => {
  rmSync(join(tmpDir, `ingest-${settings.bigMiB}MiB.ndjson`), { force: true });
  return `objects under ${bucket}/${tenant}/ may remain`;
});

await runMain(log, async () => {
  if (process.argv.includes('--render-only')) {
    // Re-renders the section from the last run's numbers (bench/tmp/ingest-last.json) without measuring.
    const last = JSON.parse(readFileSync(join(tmpDir, 'ingest-last.json'), 'utf8')) as Results;
    writeSection(resultsFile, '## bench:ingest', renderSection(last));
    log(`re-rendered the "## bench:ingest" section of ${resultsFile} from bench/tmp/ingest-last.json (${last.date})`);
  } else {
    await main();
  }
});
