/**
 * bench:peer — this pipeline against Benthos v4.27.0 on the same file, the same Kafka cluster and
 * the same PostgreSQL, in one run, rounds alternating which goes first (ABBA…):
 *
 *   ours  POST /import/<tenant> to our ingress → split → extract → validate → load, with
 *         BENCH_PEER_REPLICAS processor processes (compiled, with the image's environment)
 *   peer  POST /import/<tenant> to Benthos's http_server → kafka_franz → BENCH_PEER_REPLICAS
 *         Benthos sink processes (one consumer group) → json_schema → batched sql_raw upsert into
 *         a table of its own (bench/lib/benthos.ts says how it is configured and why)
 *
 * The file: BENCH_PEER_COUNT (20,000) generated companies (seed 42, every 50th invalid, every
 * 100th a duplicate), as bench:pipeline's. t0 = just before the POST starts; t1 = the last row's
 * loaded_at (both write now() in the upserting transaction), read once every row is in (ours:
 * the file's distinct valid permalinks; the peer: its consumer group at the topic's end, since
 * its validator's formats may differ from ours). CPU from /proc over t0 → completion, per
 * process group. Results go to stdout and the `## bench:peer` section of bench/results.md.
 *
 * Environment: BENCH_PEER_COUNT (20000), BENCH_PEER_REPLICAS (2), BENCH_PEER_ROUNDS (2), plus the
 * usual KAFKA_* / PG* / S3_* / SCHEMA_REGISTRY_URL. Needs the stack up (make itest-up) and Go.
 */
import { execFileSync } from 'node:child_process';
import { createReadStream, mkdirSync, rmSync } from 'node:fs';
import os from 'node:os';
import { dirname, join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { request } from 'undici';
import { loadConfig } from '../core/config.js';
import { createKafka, ensureTopics } from '../core/kafka.js';
import { allTopics, replicationFactor, topicConfig } from '../core/pipeline.js';
import { createPostgres } from '../core/postgres.js';
import { writeCompanies, type CompaniesSummary } from '../examples/generate/companies.js';
import { benthosVersion, buildBenthos, ingestConfig, sinkConfig, writeConfig, type BenthosSettings } from './lib/benthos.js';
import { freePort, runningChildren, spawnChild, stopChild, waitForHttp, type Child } from './lib/children.js';
import { envInt } from './lib/env.js';
import { cpuMeter, findPids, type CpuReport } from './lib/proc.js';
import { fmt as format, table, writeSection } from './lib/report.js';
import { createLog } from './lib/run.js';
import { spawnIngress, spawnProcessor } from './lib/services.js';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const tmpDir = join(root, 'bench', 'tmp');
const resultsFile = join(root, 'bench', 'results.md');
const config = loadConfig();
const stamp = Date.now();

const settings = {
  count: envInt('BENCH_PEER_COUNT', 20_000),
  replicas: envInt('BENCH_PEER_REPLICAS', 2),
  rounds: envInt('BENCH_PEER_ROUNDS', 2),
  seed: 42,
  invalidEvery: 50,
  duplicateEvery: 100,
};

const log = createLog('bench:peer');

const fmt = (value: number, digits = 0) => format(value, digits, 'n/a');

type Contestant = 'ours' | 'peer';

interface Measurement {
  contestant: Contestant;
  round: number;
  tenant: string;
  seconds: number;
  rows: number;
  recordsPerSecond: number;
  cpu: CpuReport;
  /** CPU milliseconds per record of the file, per group. */
  cpuMsPerRecord: Record<string, number>;
}

const peerTable = 'bench_peer_companies';

async function main(): Promise<void> {
  mkdirSync(tmpDir, { recursive: true });
  log('npm run build (the services run compiled, as their images run them)');
  execFileSync('npm', ['run', '--silent', 'build'], { cwd: root, stdio: ['ignore', process.stderr, process.stderr] });
  const benthos = buildBenthos(tmpDir, log);

  const file = join(tmpDir, `peer-${stamp}.ndjson`);
  log(`generating ${fmt(settings.count)} companies into ${file}`);
  const summary: CompaniesSummary & { bytes: number } = await writeCompanies(file, {
    count: settings.count,
    seed: settings.seed,
    invalidEvery: settings.invalidEvery,
    duplicateEvery: settings.duplicateEvery,
    tenant: 'peer',
  });

  const db = createPostgres(config.postgres, { applicationName: 'bench-peer' });
  const topic = `BenchPeer-${stamp}`;
  const errorTopic = `BenchPeerErrors-${stamp}`;
  const admin = createKafka(config.kafka, { clientId: 'bench-peer' }).admin();
  await admin.connect();
  const partitions = (await admin.fetchTopicMetadata({ topics: [allTopics[0]!.name] }))[0]?.partitions.length ?? 3;
  await ensureTopics(admin, [topic, errorTopic], { partitions, replicationFactor, config: topicConfig });
  await db.db.none(
    `CREATE TABLE IF NOT EXISTS ${peerTable} (tenant text NOT NULL, permalink text NOT NULL, name text, document jsonb NOT NULL, loaded_at timestamptz NOT NULL, PRIMARY KEY (tenant, permalink))`,
  );
  const tenants: string[] = [];
  const measurements: Measurement[] = [];
  try {
    // Ours: one ingress, N processors.
    const ingress = await spawnIngress();
    const processors: Child[] = [];
    for (let i = 0; i < settings.replicas; i++) processors.push(await spawnProcessor(i));
    // The peer: one ingest process, N sink processes in one consumer group.
    const peerSettings: BenthosSettings = {
      brokers: config.kafka.brokers,
      topic,
      errorTopic,
      consumerGroup: `bench-peer-${stamp}`,
      dsn: `postgres://${encodeURIComponent(config.postgres.user)}:${encodeURIComponent(config.postgres.password)}@${config.postgres.host}:${config.postgres.port}/${config.postgres.database}?sslmode=disable`,
      table: peerTable,
      schemaPath: join(root, 'schemas', 'company.schema.json'),
      compression: config.kafka.compression,
    };
    const peerApi = await freePort();
    const peerIngestPort = await freePort();
    const peerIngest = spawnChild(
      'benthos-ingest',
      benthos,
      ['-c', writeConfig(tmpDir, `peer-ingest-${stamp}.yaml`, ingestConfig(peerSettings, peerApi, peerIngestPort))],
      process.env,
      `http://127.0.0.1:${peerApi}`,
    );
    const peerSinks: Child[] = [];
    for (let i = 0; i < settings.replicas; i++) {
      const api = await freePort();
      peerSinks.push(
        spawnChild(
          `benthos-sink-${i + 1}`,
          benthos,
          ['-c', writeConfig(tmpDir, `peer-sink-${stamp}-${i}.yaml`, sinkConfig(peerSettings, api))],
          process.env,
          `http://127.0.0.1:${api}`,
        ),
      );
    }
    for (const child of [ingress, ...processors]) await waitForHttp(child, '/readiness', 180_000);
    for (const child of [peerIngest, ...peerSinks]) await waitForHttp(child, '/ready', 120_000);
    log(`ours: ingress + ${settings.replicas} processors ready; peer: Benthos ${benthosVersion} ingest + ${settings.replicas} sinks ready`);

    const stackPids = () => {
      const found = findPids(new Set(runningChildren().map((child) => child.pid)));
      return { kafka: found.kafka, postgres: found.postgres, minio: found.minio };
    };
    const groupsOf = (contestant: Contestant): Record<string, number[]> =>
      contestant === 'ours'
        ? { ingress: [ingress.pid], processors: processors.map((child) => child.pid), ...stackPids() }
        : { ingress: [peerIngest.pid], processors: peerSinks.map((child) => child.pid), ...stackPids() };

    const measure = async (contestant: Contestant, round: number): Promise<Measurement> => {
      const tenant = `bp${contestant === 'ours' ? 'o' : 'p'}${round}-${stamp}`;
      tenants.push(tenant);
      const url = contestant === 'ours' ? `${ingress.url}/import/${tenant}` : `http://127.0.0.1:${peerIngestPort}/import/${tenant}`;
      const table = contestant === 'ours' ? 'companies' : peerTable;
      const stop = cpuMeter(groupsOf(contestant), stackPids);
      const t0 = Date.now();
      const response = await request(url, {
        method: 'POST',
        body: createReadStream(file),
        headers: { 'content-type': 'application/x-ndjson', 'content-length': String(summary.bytes) },
        headersTimeout: 900_000,
        bodyTimeout: 900_000,
      });
      const answer = await response.body.text();
      if (response.statusCode >= 300) throw new Error(`${contestant} refused the file: ${response.statusCode} ${answer.slice(0, 300)}`);
      const done = contestant === 'ours' ? () => oursDone(db, tenant, summary.distinctValidPermalinks) : () => peerDone(admin, peerSettings, topic);
      const deadline = Date.now() + 1_800_000;
      while (!(await done())) {
        if (Date.now() > deadline) throw new Error(`${contestant} did not finish within 30 min`);
        await sleep(150);
      }
      const cpu = stop();
      const { rows, last } = await db.db.one<{ rows: number; last: Date }>(
        `SELECT count(*)::int AS rows, max(loaded_at) AS last FROM ${table} WHERE tenant = $1`,
        [tenant],
      );
      const seconds = (last.getTime() - t0) / 1000;
      const cpuMsPerRecord = Object.fromEntries(
        Object.entries(cpu.groups).map(([name, percent]) => [name, ((percent / 100) * cpu.seconds * 1000) / summary.total]),
      );
      cpuMsPerRecord.machine = ((cpu.machine / 100) * cpu.seconds * 1000) / summary.total;
      const measurement: Measurement = { contestant, round, tenant, seconds, rows, recordsPerSecond: summary.total / seconds, cpu, cpuMsPerRecord };
      log(
        `${contestant} round ${round}: ${fmt(rows)} rows, ${fmt(seconds, 2)} s, ${fmt(measurement.recordsPerSecond)} records/s; CPU ms/record ${JSON.stringify(Object.fromEntries(Object.entries(cpuMsPerRecord).map(([k, v]) => [k, Number(v.toFixed(3))])))}; machine ${fmt(cpu.machine)}% of ${os.availableParallelism() * 100}%`,
      );
      return measurement;
    };

    for (let round = 1; round <= settings.rounds; round++) {
      const order: Contestant[] = round % 2 === 1 ? ['ours', 'peer'] : ['peer', 'ours'];
      for (const contestant of order) measurements.push(await measure(contestant, round));
    }
  } finally {
    for (const child of runningChildren()) await stopChild(child);
    for (const tenant of tenants) {
      await db.db.none('DELETE FROM companies WHERE tenant = $1', [tenant]);
      await db.db.none(`DELETE FROM ${peerTable} WHERE tenant = $1`, [tenant]);
    }
    await admin.deleteTopics({ topics: [topic, errorTopic] }).catch((error: unknown) => log(`deleting the peer's topics failed: ${String(error)}`));
    await admin.disconnect();
    await db.close();
    rmSync(file, { force: true });
  }
  writeResults(measurements, summary);
}

async function oursDone(db: ReturnType<typeof createPostgres>, tenant: string, expected: number): Promise<boolean> {
  const { n } = await db.db.one<{ n: number }>('SELECT count(*)::int AS n FROM companies WHERE tenant = $1', [tenant]);
  return n >= expected;
}

/** The peer's sink group has committed the end of every partition of its topic. */
async function peerDone(admin: ReturnType<ReturnType<typeof createKafka>['admin']>, peer: BenthosSettings, topic: string): Promise<boolean> {
  const ends = await admin.fetchTopicOffsets(topic);
  const committed = await admin.fetchOffsets({ groupId: peer.consumerGroup, topics: [topic] });
  const byPartition = new Map((committed[0]?.partitions ?? []).map((entry) => [entry.partition, BigInt(entry.offset)]));
  return ends.every((end) => BigInt(end.high) === 0n || (byPartition.get(end.partition) ?? -1n) >= BigInt(end.high));
}

function writeResults(measurements: Measurement[], summary: CompaniesSummary & { bytes: number }): void {
  const mean = (values: number[]) => values.reduce((sum, value) => sum + value, 0) / values.length;
  const of = (contestant: Contestant) => measurements.filter((m) => m.contestant === contestant);
  const ours = of('ours');
  const peer = of('peer');
  const groups = ['ingress', 'processors', 'kafka', 'postgres', 'minio', 'machine'];
  const lines: string[] = ['## bench:peer', ''];
  lines.push(
    `Date: ${new Date().toISOString()}; machine: ${os.availableParallelism()} cores, load average after ${os
      .loadavg()
      .map((v) => v.toFixed(2))
      .join(' ')}.  `,
    `Command: \`npm run bench:peer\` (BENCH_PEER_COUNT=${settings.count}, BENCH_PEER_REPLICAS=${settings.replicas}, BENCH_PEER_ROUNDS=${settings.rounds}).`,
    '',
    `One NDJSON file of ${fmt(summary.total)} generated companies (${fmt(summary.bytes / 1e6, 1)} MB; ${fmt(summary.invalid)} invalid, ${fmt(summary.distinctValidPermalinks)} distinct valid) POSTed ${settings.rounds} times to each, rounds alternating which goes first. ` +
      `ours: ingress + ${settings.replicas} processors (split → extract → validate → load, exactly once). peer: Benthos ${benthosVersion}, one http_server→kafka_franz process + ${settings.replicas} kafka_franz→json_schema→sql_raw processes in one consumer group (at least once; configuration and tuning in bench/lib/benthos.ts). ` +
      'Same Kafka cluster, same PostgreSQL, a table of its own for the peer. Time = t0 (POST starts) → the last row\'s loaded_at; CPU from /proc over the same window ("processors" = our processors / the peer\'s sink processes; "ingress" = our ingress / the peer\'s ingest process).',
    '',
    ...table(
      ['run', 'rows', 's', 'records/s', ...groups.map((group) => `CPU ms/record ${group}`)],
      measurements.map((m) => [
        `${m.contestant} round ${m.round}`,
        fmt(m.rows),
        fmt(m.seconds, 2),
        fmt(m.recordsPerSecond),
        ...groups.map((group) => fmt(m.cpuMsPerRecord[group] ?? Number.NaN, 3)),
      ]),
    ),
  );
  const ratio = (pick: (m: Measurement) => number) => mean(ours.map(pick)) / mean(peer.map(pick));
  const cpuOfServices = (m: Measurement) => (m.cpuMsPerRecord.ingress ?? 0) + (m.cpuMsPerRecord.processors ?? 0);
  lines.push(
    '',
    `**ours ÷ peer** (means over the rounds): records/s ×${fmt(
      ratio((m) => m.recordsPerSecond),
      2,
    )} (target ≥ 1.2); ` +
      `CPU per record of the services (ingress + processors) ×${fmt(ratio(cpuOfServices), 2)}; of the whole machine ×${fmt(
        ratio((m) => m.cpuMsPerRecord.machine ?? Number.NaN),
        2,
      )} (lower is cheaper).`,
  );
  const section = lines.join('\n');
  process.stdout.write(`${section}\n`);
  writeSection(resultsFile, '## bench:peer', section);
  log(`wrote the "## bench:peer" section of ${resultsFile}`);
}

await main();
