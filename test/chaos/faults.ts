/**
 * Fault scenarios: each runs a sustained seeded import through a real ingress and processor,
 * breaks one part of the real stack on purpose, lets it recover, and reckons what the pipeline
 * committed against what the accepted files should give — nothing lost, nothing duplicated.
 */
import { Readable } from 'node:stream';
import { ListMultipartUploadsCommand, ListObjectsV2Command } from '@aws-sdk/client-s3';
import { request } from 'undici';
import { ManagedProcess, startServer, stopServer, waitHealthy, type Ports, type ServerName, type StackPaths } from '../../deployments/local/servers.js';
import { createKafka } from '../../core/kafka.js';
import { topics } from '../../core/pipeline.js';
import { generateCompanies } from '../../examples/generate/companies.js';
import { config, eventually, ImportLoad, Ledger, log, reckon, s3, seededRandom, sleep, startService, type Reckoning, type Service } from './harness.js';

export type Profile = 'short' | 'full';

export interface ScenarioContext {
  seed: number;
  profile: Profile;
  paths: StackPaths;
  ports: Ports;
}

export interface ScenarioResult {
  name: string;
  fault: string;
  seed: number;
  /** What the system did, in the order it happened. */
  behaviour: string[];
  reckoning?: Reckoning;
  /** Checks specific to the fault (besides exact counts), with their outcome. */
  checks: Array<{ what: string; ok: boolean }>;
  ok: boolean;
  seconds: number;
  error?: string;
}

interface PipelineRun {
  ingress: Service;
  processors: Service[];
  load: ImportLoad;
  ledger: Ledger;
  behaviour: string[];
  check(what: string, ok: boolean): void;
  random: () => number;
  /** Waits until the load has `count` files accepted. */
  accepted(count: number): Promise<void>;
  /** Registers a service the scenario started, so it is stopped at the end. */
  adopt(service: Service): Service;
  /** 202 answers and other answers since `since` (epoch ms). */
  answersSince(since: number): { accepted: number; refused: Record<string, number> };
}

export interface Scenario {
  name: string;
  fault: string;
  /** Processor replicas to run (default 1). */
  replicas?: number;
  /** In the CI's short profile. */
  short: boolean;
  during(run: PipelineRun, context: ScenarioContext): Promise<void>;
}

const sizes = { short: { files: 8, records: 150 }, full: { files: 24, records: 250 } } as const;

export async function runScenario(scenario: Scenario, context: ScenarioContext): Promise<ScenarioResult> {
  const started = Date.now();
  const tenant = `chaos-${scenario.name}-${Date.now().toString(36)}`.slice(0, 60);
  const behaviour: string[] = [];
  const checks: ScenarioResult['checks'] = [];
  const services: Service[] = [];
  const result: ScenarioResult = { name: scenario.name, fault: scenario.fault, seed: context.seed, behaviour, checks, ok: false, seconds: 0 };
  log(`${scenario.name}: ${scenario.fault} (seed ${context.seed})`);
  let ledger: Ledger | undefined;
  try {
    const ingress = await startService('ingress', { INGRESS_READINESS_CACHE_MS: '0' });
    services.push(ingress);
    const processors: Service[] = [];
    for (let i = 0; i < (scenario.replicas ?? 1); i++) processors.push(await startService('processor'));
    services.push(...processors);
    const prefix = `chaos-${tenant}-`;
    ledger = new Ledger((requestId) => requestId.startsWith(prefix));
    await ledger.start();
    const size = sizes[context.profile];
    const load = new ImportLoad(tenant, () => ingress.url, {
      seed: context.seed,
      recordsPerFile: size.records,
      concurrency: 2,
      maxFiles: size.files,
    });
    const run: PipelineRun = {
      ingress,
      processors,
      load,
      ledger,
      behaviour,
      random: seededRandom(context.seed),
      check: (what, ok) => {
        checks.push({ what, ok });
        if (!ok) log(`  check failed: ${what}`);
      },
      adopt: (service) => {
        services.push(service);
        return service;
      },
      accepted: async (count) => {
        await eventually(`${count} files accepted`, async () => (load.stats.accepted.size >= count ? true : undefined), 180_000);
      },
      answersSince: (since) => {
        const refused: Record<string, number> = {};
        let accepted = 0;
        for (const answer of load.stats.answers) {
          if (answer.at < since) continue;
          if (answer.status === 202) accepted++;
          else {
            const label = `${answer.status === 0 ? 'no answer' : answer.status} ${answer.code ?? ''}`.trim();
            refused[label] = (refused[label] ?? 0) + 1;
          }
        }
        return { accepted, refused };
      },
    };
    load.start();
    await scenario.during(run, context);
    await load.stop();
    const answers = run.answersSince(0);
    behaviour.push(
      `client: ${answers.accepted} × 202 of ${load.stats.answers.length} answers${formatRefused(answers.refused)}; every file retried with its X-Request-Id until 202`,
    );
    if (load.stats.givenUp.length > 0) checks.push({ what: `${load.stats.givenUp.length} file(s) never accepted`, ok: false });
    for (const { file, status, code } of load.stats.unexpected) checks.push({ what: `file ${file} got ${status} ${code ?? ''}`.trim(), ok: false });
    result.reckoning = await reckon(tenant, load.stats.accepted, ledger, { timeoutMs: 300_000 });
    const r = result.reckoning;
    checks.push({ what: 'no record lost', ok: r.lost === 0 });
    checks.push({ what: 'no output committed twice', ok: r.duplicates === 0 });
    checks.push({ what: 'every accepted file stored; nothing else under the tenant', ok: r.missingObjects === 0 && r.strayObjects === 0 });
    checks.push({ what: 'no ProcessingError', ok: r.processingErrors === 0 });
    for (const problem of r.problems) checks.push({ what: problem, ok: false });
  } catch (error) {
    result.error = error instanceof Error ? `${error.message}${error.cause instanceof Error ? ` (${error.cause.message})` : ''}` : String(error);
    log(`${scenario.name}: ${result.error}`);
  } finally {
    await ledger?.stop().catch(() => undefined);
    for (const service of services.reverse()) await service.kill('SIGTERM').catch(() => undefined);
    // Whatever the scenario did to the stack, it leaves it whole.
    await restoreStack(context);
  }
  result.ok = result.error === undefined && checks.every((check) => check.ok);
  result.seconds = Math.round((Date.now() - started) / 1000);
  log(`${scenario.name}: ${result.ok ? 'PASS' : 'FAIL'} in ${result.seconds} s`);
  return result;
}

function formatRefused(refused: Record<string, number>): string {
  const entries = Object.entries(refused);
  return entries.length === 0 ? '' : ` (others: ${entries.map(([label, count]) => `${count} × ${label}`).join(', ')})`;
}

async function restoreStack(context: ScenarioContext): Promise<void> {
  const registry = new ManagedProcess('registry', context.paths).pid();
  if (registry !== undefined) {
    try {
      process.kill(-registry, 'SIGCONT');
    } catch {
      process.kill(registry, 'SIGCONT');
    }
  }
  for (const name of ['kafka-1', 'kafka-2', 'kafka-3', 'minio', 'registry'] as const) {
    if (new ManagedProcess(name, context.paths).pid() === undefined) await startServer(context.paths, context.ports, name);
  }
  await startServer(context.paths, context.ports, 'postgres');
  await waitHealthy(context.ports);
}

async function kill(context: ScenarioContext, name: ServerName, signal: NodeJS.Signals): Promise<void> {
  await stopServer(context.paths, name, signal);
}

/**
 * The broker leading the most FileExtractSuccess partitions (each import's key is its tenant and
 * request id, so a tenant's imports spread over all of them): killing it makes the largest share
 * of the ingress's requests wait on a leader change. Node ids are the stack's kafka-<n>.
 */
async function busiestLeader(): Promise<ServerName> {
  const admin = createKafka(config.kafka, { clientId: 'chaos-leader-lookup' }).admin();
  await admin.connect();
  try {
    const topic = topics.fileExtractSuccess.name;
    const metadata = await admin.fetchTopicMetadata({ topics: [topic] });
    const led = new Map<number, number>();
    for (const partition of metadata[0]?.partitions ?? []) led.set(partition.leader, (led.get(partition.leader) ?? 0) + 1);
    const [leader] = [...led].sort((a, b) => b[1] - a[1] || a[0] - b[0])[0] ?? [];
    if (leader === undefined || leader < 1 || leader > 3) throw new Error(`no leader known for ${topic}`);
    return `kafka-${leader}` as ServerName;
  } finally {
    await admin.disconnect();
  }
}

async function waitReadiness(service: Service, status: number, timeoutMs: number): Promise<number> {
  const started = Date.now();
  await eventually(`${service.name} /readiness ${status}`, async () => ((await service.readiness()) === status ? true : undefined), timeoutMs);
  return Date.now() - started;
}

// ---------------------------------------------------------------------------------------

export const scenarios: Scenario[] = [
  {
    name: 'broker-sigkill',
    fault: 'the Kafka broker leading the most partitions the imports go to killed with SIGKILL mid-import, restarted 20 s later',
    short: true,
    async during(run, context) {
      await run.accepted(2);
      const victim = await busiestLeader();
      await kill(context, victim, 'SIGKILL');
      const since = Date.now();
      run.behaviour.push(`${victim} (leader of the most FileExtractSuccess partitions) SIGKILL after ${run.load.stats.accepted.size} files accepted`);
      await sleep(20_000);
      const outage = run.answersSince(since);
      run.behaviour.push(`ingress during the 20 s with 2 brokers: ${outage.accepted} × 202${formatRefused(outage.refused)}`);
      run.check('the ingress keeps accepting with 2 of 3 brokers', outage.accepted > 0);
      await startServer(context.paths, context.ports, victim);
      await waitHealthy(context.ports);
      run.behaviour.push(`${victim} restarted`);
    },
  },
  {
    name: 'two-brokers-down',
    fault: 'two of the 3 Kafka brokers (kafka-2, kafka-3) killed with SIGKILL for 30 s',
    short: false,
    async during(run, context) {
      await run.accepted(2);
      await Promise.all([kill(context, 'kafka-2', 'SIGKILL'), kill(context, 'kafka-3', 'SIGKILL')]);
      const since = Date.now();
      run.behaviour.push(`kafka-2 and kafka-3 SIGKILL after ${run.load.stats.accepted.size} files accepted`);
      const notReadyAfter = await waitReadiness(run.ingress, 503, 60_000).catch(() => -1);
      run.behaviour.push(notReadyAfter < 0 ? 'ingress /readiness stayed 200' : `ingress /readiness 503 after ${(notReadyAfter / 1000).toFixed(1)} s`);
      run.check('/readiness turns 503 with 2 brokers down', notReadyAfter >= 0);
      await sleep(Math.max(0, 30_000 - (Date.now() - since)));
      // An event acknowledged just before the kill may still be answered right after it.
      const outage = run.answersSince(since + 2_000);
      run.behaviour.push(`ingress during the outage: ${outage.accepted} × 202${formatRefused(outage.refused)}`);
      run.check('no 202 while 2 brokers are down', outage.accepted === 0);
      await Promise.all([startServer(context.paths, context.ports, 'kafka-2'), startServer(context.paths, context.ports, 'kafka-3')]);
      await waitHealthy(context.ports);
      const readyAfter = await waitReadiness(run.ingress, 200, 180_000).catch(() => -1);
      run.behaviour.push(
        readyAfter < 0 ? 'ingress /readiness did not recover' : `brokers back; ingress /readiness 200 again after ${(readyAfter / 1000).toFixed(1)} s`,
      );
      run.check('readiness recovers with no manual step', readyAfter >= 0);
    },
  },
  {
    name: 'postgres-restart',
    fault: 'PostgreSQL stopped (fast shutdown) mid-load and started again 15 s later',
    short: true,
    async during(run, context) {
      await run.accepted(3);
      await kill(context, 'postgres', 'SIGTERM');
      run.behaviour.push(`PostgreSQL stopped after ${run.load.stats.accepted.size} files accepted`);
      await sleep(15_000);
      const retries = await metric(run.processors, 'processor_retries_total', 'stage="load"');
      run.behaviour.push(`load stage retries while it was down: ${retries}`);
      run.check('the load stage retried while PostgreSQL was down', retries > 0);
      await startServer(context.paths, context.ports, 'postgres');
      run.behaviour.push('PostgreSQL started again');
    },
  },
  {
    name: 'minio-stop',
    fault: 'MinIO stopped for 20 s mid-import',
    short: true,
    async during(run, context) {
      await run.accepted(2);
      await kill(context, 'minio', 'SIGTERM');
      const since = Date.now();
      run.behaviour.push(`MinIO stopped after ${run.load.stats.accepted.size} files accepted`);
      await sleep(20_000);
      const outage = run.answersSince(since + 2_000);
      run.behaviour.push(`ingress while MinIO was down: ${outage.accepted} × 202${formatRefused(outage.refused)}`);
      run.check('no 202 while S3 is down', outage.accepted === 0);
      run.check(
        'imports get 503 while S3 is down',
        Object.keys(outage.refused).some((label) => label.startsWith('503')),
      );
      await startServer(context.paths, context.ports, 'minio');
      await waitHealthy(context.ports);
      run.behaviour.push('MinIO started again');
    },
  },
  {
    name: 'registry-outage',
    fault: 'Schema Registry frozen (SIGSTOP) for 20 s mid-import, then resumed (SIGCONT)',
    short: false,
    async during(run, context) {
      await run.accepted(2);
      const pid = new ManagedProcess('registry', context.paths).pid();
      if (pid === undefined) throw new Error('the registry is not running');
      // Frozen, not killed: the local registry keeps its schemas in memory, so a restart would
      // lose them; a frozen one is what clients see of a registry that hangs or is cut off.
      process.kill(-pid, 'SIGSTOP');
      const since = Date.now();
      run.behaviour.push(`registry frozen after ${run.load.stats.accepted.size} files accepted`);
      const notReadyAfter = await waitReadiness(run.ingress, 503, 30_000).catch(() => -1);
      run.behaviour.push(
        notReadyAfter < 0 ? 'ingress /readiness stayed 200' : `ingress /readiness 503 after ${(notReadyAfter / 1000).toFixed(1)} s (registry unreachable)`,
      );
      // A replica that starts now needs the registry to register its schemas: it must fail cleanly.
      const fresh = await startService('processor', {}, 'liveness').then(
        (service) => service,
        (error: unknown) => error as Error,
      );
      if (fresh instanceof Error) run.behaviour.push(`a processor started during the outage: ${fresh.message}`);
      else {
        run.adopt(fresh);
        const exit = await Promise.race([fresh.exited, sleep(15_000).then(() => 'running')]);
        run.behaviour.push(
          `a processor started during the outage: ${exit === 'running' ? 'still waiting for the registry after 15 s' : `exited with ${String(exit)}`}`,
        );
      }
      await sleep(Math.max(0, 20_000 - (Date.now() - since)));
      const outage = run.answersSince(since);
      run.behaviour.push(`ingress while the registry was frozen: ${outage.accepted} × 202${formatRefused(outage.refused)} (schemas from cache)`);
      run.check('known schemas keep working from cache (imports accepted)', outage.accepted > 0);
      process.kill(-pid, 'SIGCONT');
      run.behaviour.push('registry resumed');
      const readyAfter = await waitReadiness(run.ingress, 200, 60_000).catch(() => -1);
      run.check('readiness recovers', readyAfter >= 0);
    },
  },
  {
    name: 'processor-sigkill-loop',
    fault: 'processor replicas (2) killed with SIGKILL at seeded random moments and restarted, in a loop',
    replicas: 2,
    short: true,
    async during(run, context) {
      const rounds = context.profile === 'short' ? 3 : 8;
      for (let round = 0; round < rounds; round++) {
        await sleep(2_000 + Math.floor(run.random() * 5_000));
        const alive = run.processors.filter((service) => service.alive);
        const victim = alive[Math.floor(run.random() * alive.length)]!;
        await victim.kill('SIGKILL');
        run.processors.splice(run.processors.indexOf(victim), 1);
        run.processors.push(run.adopt(await startService('processor', {}, 'liveness')));
      }
      run.behaviour.push(`${rounds} SIGKILLs of a random replica (each restarted at once), over ${run.load.stats.accepted.size} files accepted so far`);
    },
  },
  {
    name: 'ingress-sigkill-mid-upload',
    fault: 'an ingress killed with SIGKILL in the middle of a 40 MB multipart upload',
    short: true,
    async during(run) {
      await run.accepted(1);
      const victim = run.adopt(await startService('ingress', { INGRESS_PART_SIZE_BYTES: String(5 * 1024 * 1024) }));
      const tenant = run.load.tenant;
      // Under the ledger's prefix, so any event for it would be seen.
      const requestId = `chaos-${tenant}-killed`;
      let sent = 0;
      const body = Readable.from(
        (async function* () {
          const records = generateCompanies({ count: 40_000, seed: 5, bytesPerRecord: 1000 });
          let chunk = '';
          for (const record of records) {
            chunk += `${record.line}\n`;
            if (chunk.length >= 256 * 1024) {
              sent += chunk.length;
              yield Buffer.from(chunk);
              chunk = '';
              await sleep(20);
            }
          }
        })(),
      );
      const upload = request(`${victim.url}/import/${tenant}`, {
        method: 'POST',
        body,
        headers: { 'content-type': 'application/x-ndjson', 'x-request-id': requestId },
      }).then(
        (response) => `answered ${response.statusCode}`,
        (error: unknown) => `failed: ${(error as Error).message}`,
      );
      await eventually('12 MB sent', async () => (sent >= 12 * 1024 * 1024 ? true : undefined), 120_000);
      await victim.kill('SIGKILL');
      run.behaviour.push(`ingress SIGKILL after ${(sent / 1e6).toFixed(1)} MB of the body; the client's request ${await upload}`);
      const keyPrefix = `${tenant}/files/`;
      // The whole bucket's list (MinIO matches a prefix only against whole object names).
      const leftovers = async () =>
        ((await s3.send(new ListMultipartUploadsCommand({ Bucket: config.s3.bucket }))).Uploads ?? []).filter((upload) =>
          upload.Key?.endsWith(`/${requestId}.json`),
        ).length;
      const before = await leftovers();
      run.behaviour.push(`multipart uploads left behind: ${before}`);
      run.check('the kill left a multipart upload behind (what the clean-up is for)', before > 0);
      await sleep(1_500);
      run.adopt(await startService('ingress', { INGRESS_STALE_UPLOAD_MS: '1000' }));
      const cleaned = await eventually('the leftover upload to be aborted', async () => ((await leftovers()) === 0 ? true : undefined), 30_000).then(
        () => true,
        () => false,
      );
      run.behaviour.push(cleaned ? 'the next ingress aborted the leftover at start-up' : 'the leftover upload is still there');
      run.check('the leftover multipart upload is cleaned up', cleaned);
      const objects = await s3.send(new ListObjectsV2Command({ Bucket: config.s3.bucket, Prefix: keyPrefix }));
      run.check('no object for the killed upload', !(objects.Contents ?? []).some((object) => object.Key?.includes(requestId)));
      // The killed ingress is gone: whatever it got committed is below the topics' ends now.
      await run.ledger.catchUp();
      run.check('no FileExtractSuccess for the killed upload', (run.ledger.counts.fileExtractSuccess.get(requestId) ?? 0) === 0);
    },
  },
];

/** Sum of a counter over live services' /metrics, for the series whose labels include `label`. */
async function metric(services: Service[], name: string, label: string): Promise<number> {
  let total = 0;
  for (const service of services) {
    if (!service.alive) continue;
    const text = await (await request(`${service.url}/metrics`)).body.text();
    for (const line of text.split('\n')) {
      if (line.startsWith(`${name}{`) && line.includes(label)) total += Number(line.slice(line.lastIndexOf(' ') + 1));
    }
  }
  return total;
}
