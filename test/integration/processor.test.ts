/**
 * The whole pipeline on the real stack: files imported through the ingress are extracted,
 * validated and loaded by processor replicas running as separate processes, and end up as
 * exactly the expected rows and ValidationError events — also across a SIGKILL and with two
 * replicas sharing the partitions.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import t, { type Test } from 'tap';
import { request } from 'undici';
import { createLogger } from '../../core/logger.js';
import { topics } from '../../core/pipeline.js';
import { createPostgres } from '../../core/postgres.js';
import { createRegistry } from '../../core/registry.js';
import { generateCompanies, summarize, type GeneratedRecord } from '../../examples/generate/companies.js';
import { loadIngressConfig, startIngress } from '../../ingress/index.js';
import { stageNames } from '../../topology/etl/topology.js';
import type { CompanyRecordEvent, RecordsLoaded, ValidationError } from '../../schemas/index.js';
import { collectEvents, config, eventually, freePort, testKafka, uniqueName } from './helpers.js';

const registry = createRegistry(config.registry);
const decode = <T>(buffer: Buffer) => registry.decode(buffer) as Promise<T>;
const postgres = createPostgres(config.postgres, { applicationName: 'itest-processor' });
t.teardown(() => postgres.close());

interface Replica {
  child: ChildProcess;
  port: number;
  exited: Promise<number | null>;
}

const replicas: Replica[] = [];
t.teardown(async () => {
  for (const replica of replicas) {
    if (replica.child.exitCode === null) {
      replica.child.kill('SIGTERM');
      await replica.exited;
    }
  }
});

async function startReplica(env: Record<string, string> = {}): Promise<Replica> {
  const port = await freePort();
  const child = spawn(process.execPath, ['--import', 'tsx', 'topology/main.ts', 'run'], {
    env: {
      ...process.env,
      PROCESSOR_PORT: String(port),
      PROCESSOR_HOST: '127.0.0.1',
      LOG_LEVEL: process.env.ITEST_LOG_LEVEL ?? 'warn',
      PROCESSOR_LAG_INTERVAL_MS: '1000',
      ...env,
    },
    stdio: ['ignore', 'inherit', 'inherit'],
  });
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  const replica = { child, port, exited };
  replicas.push(replica);
  await eventually(
    'the processor to be ready',
    async () => ((await request(`http://127.0.0.1:${port}/readiness`)).statusCode === 200 ? true : undefined),
    90_000,
  );
  return replica;
}

async function stopReplica(replica: Replica, signal: NodeJS.Signals): Promise<number | null> {
  replica.child.kill(signal);
  return replica.exited;
}

// Pieces of 1 MiB: a file of a few MB is extracted in pieces spread over every partition.
const ingressConfig = loadIngressConfig({
  ...process.env,
  INGRESS_PORT: '0',
  INGRESS_HOST: '127.0.0.1',
  INGRESS_PIECE_BYTES: String(1024 * 1024),
  LOG_LEVEL: process.env.ITEST_LOG_LEVEL ?? 'warn',
});
const ingress = await startIngress(ingressConfig, createLogger(ingressConfig.log, 'ingress-itest'));
t.teardown(() => ingress.close());

function generated(tenant: string, count: number, seed: number): { body: Buffer; records: GeneratedRecord[] } {
  const records = [...generateCompanies({ count, seed, tenant, invalidEvery: 40, duplicateEvery: 100, bytesPerRecord: 1500 })];
  return { body: Buffer.from(`${records.map((record) => record.line).join('\n')}\n`), records };
}

async function importFile(tenant: string, body: Buffer): Promise<{ request_id: string; records: number }> {
  const response = await request(`http://127.0.0.1:${ingress.port}/import/${tenant}`, {
    method: 'POST',
    body,
    headers: { 'content-type': 'application/x-ndjson' },
  });
  const json = (await response.body.json()) as { request_id: string; records: number };
  if (response.statusCode !== 202) throw new Error(`import refused: ${response.statusCode} ${JSON.stringify(json)}`);
  return json;
}

/** Partitions each stage owns in this replica (processor_assigned_partitions). */
async function assignedPartitions(replica: Replica): Promise<Record<string, number>> {
  const text = await (await request(`http://127.0.0.1:${replica.port}/metrics`)).body.text();
  const counts: Record<string, number> = {};
  for (const match of text.matchAll(/processor_assigned_partitions\{stage="(\w+)"[^}]*\} (\d+)/g)) counts[match[1]!] = Number(match[2]);
  return counts;
}

/** Records this replica's extract stage produced (processor_records_out_total to RecordExtracted). */
async function recordsExtractedBy(replica: Replica): Promise<number> {
  const text = await (await request(`http://127.0.0.1:${replica.port}/metrics`)).body.text();
  const match = /processor_records_out_total\{stage="extract",topic="RecordExtracted"[^}]*\} (\d+)/.exec(text);
  return match === null ? 0 : Number(match[1]);
}

async function rowCount(tenant: string): Promise<number> {
  return (await postgres.db.one<{ n: number }>('SELECT count(*)::int AS n FROM companies WHERE tenant = $1', [tenant])).n;
}

/** Waits until the import is fully processed: every valid record loaded, every invalid one reported. */
async function expectExactOutcome(t: Test, tenant: string, requestId: string, records: GeneratedRecord[]): Promise<void> {
  const expected = summarize(records);
  // Rows of this import, not of an earlier one of the same tenant (a resend finds them all there).
  await eventually(
    `${expected.distinctValidPermalinks} rows of ${requestId}`,
    async () => {
      const { n } = await postgres.db.one<{ n: number }>('SELECT count(*)::int AS n FROM companies WHERE tenant = $1 AND source_request_id = $2', [
        tenant,
        requestId,
      ]);
      return n >= expected.distinctValidPermalinks ? true : undefined;
    },
    180_000,
  );
  const validationErrors = await collectEvents<ValidationError>(topics.validationError.name, (value) => value.request_id === requestId, {
    count: expected.invalid,
    decode,
    timeoutMs: 120_000,
  });
  t.equal(await rowCount(tenant), expected.distinctValidPermalinks, 'exactly one row per distinct valid permalink');
  t.equal(validationErrors.length, expected.invalid, 'exactly one ValidationError per invalid record');
  const byIndex = new Map(validationErrors.map((event) => [Number(event.value.record_index), event.value]));
  t.equal(byIndex.size, expected.invalid, 'no ValidationError twice');
  for (const record of records.filter((candidate) => !candidate.expectedValid)) {
    const event = byIndex.get(record.index);
    t.ok(event, `ValidationError for record ${record.index} (${record.brokenRule})`);
    t.same(event?.violations.map((violation) => violation.path).sort(), [...record.expectedViolationPaths].sort());
  }
  // The last version of a duplicated permalink wins.
  const lastByPermalink = new Map<string, GeneratedRecord>();
  for (const record of records) if (record.expectedValid) lastByPermalink.set(record.permalink, record);
  const rows = await postgres.db.any<{ permalink: string; source_record_index: number; source_request_id: string }>(
    'SELECT permalink, source_record_index, source_request_id FROM companies WHERE tenant = $1',
    [tenant],
  );
  const wrong = rows.filter((row) => lastByPermalink.get(row.permalink)?.index !== row.source_record_index);
  t.same(wrong, [], 'each row holds the last valid version of its company');
  t.ok(
    rows.every((row) => row.source_request_id === requestId),
    'rows name their import',
  );
  const validated = await collectEvents<CompanyRecordEvent>(topics.recordValidated.name, (value) => value.request_id === requestId, {
    count: expected.valid,
    decode,
    timeoutMs: 120_000,
  });
  t.equal(validated.length, expected.valid, 'exactly one RecordValidated per valid record');
  t.equal(new Set(validated.map((event) => Number(event.value.record_index))).size, expected.valid, 'no RecordValidated twice');
  const loaded = await collectEvents<RecordsLoaded>(topics.recordsLoaded.name, (value) => value.request_id === requestId, {
    count: 1,
    decode,
  });
  const batches = new Map(loaded.map((event) => [event.value.batch_id, event.value]));
  const total = [...batches.values()].reduce((sum, event) => sum + Number(event.inserted) + Number(event.updated) + Number(event.unchanged ?? 0), 0);
  t.equal(total, expected.valid, 'RecordsLoaded (one per batch) accounts for every valid record');
}

t.test('an import of ~2,000 companies ends as exactly the expected rows and ValidationErrors; a resend adds no rows', async (t) => {
  await startReplica();
  const tenant = uniqueName('pipeline');
  const { body, records } = generated(tenant, 2000, 7);
  const first = await importFile(tenant, body);
  t.equal(first.records, 2000);
  await expectExactOutcome(t, tenant, first.request_id, records);

  const again = await importFile(tenant, body);
  await expectExactOutcome(t, tenant, again.request_id, records);
  t.equal(await rowCount(tenant), summarize(records).distinctValidPermalinks, 'the same file again adds no rows');
});

t.test('a processor killed with SIGKILL mid-load and restarted: the same exact counts', async (t) => {
  for (const replica of replicas.splice(0)) await stopReplica(replica, 'SIGTERM');
  const replica = await startReplica();
  const tenant = uniqueName('sigkill');
  const { body, records } = generated(tenant, 3000, 11);
  const imported = await importFile(tenant, body);
  await eventually('some rows loaded', async () => ((await rowCount(tenant)) > 0 ? true : undefined), 120_000);
  const loadedBeforeKill = await rowCount(tenant);
  t.equal(await stopReplica(replica, 'SIGKILL'), null, 'killed');
  t.ok(loadedBeforeKill < summarize(records).distinctValidPermalinks, `killed mid-load (${loadedBeforeKill} rows so far)`);
  await startReplica();
  await expectExactOutcome(t, tenant, imported.request_id, records);
});

t.test('events of a batch committed by a replica that died before sending them go out when a replica takes the partition over', async (t) => {
  for (const replica of replicas.splice(0)) await stopReplica(replica, 'SIGTERM');
  // What a load replica SIGKILLed between its Postgres commit and its send leaves behind: the
  // batch's events in sink_outbox, committed with the rows (sinks/postgres/load-sink.ts).
  const requestId = uniqueName('outbox');
  const batchId = `etl-load/${topics.recordValidated.name}/1/${requestId}`;
  const event: RecordsLoaded = {
    request_id: requestId,
    tenant: 'outbox-itest',
    batch_id: batchId,
    inserted: 7,
    updated: 2,
    rejected: 0,
    loaded_at: Date.now(),
  };
  const { id } = await postgres.db.one<{ id: string }>(
    'INSERT INTO sink_outbox (consumer_group, topic, partition, events) VALUES ($1, $2, 1, $3::jsonb) RETURNING id',
    ['etl-load', topics.recordValidated.name, JSON.stringify([{ to: 'loaded', key: requestId, value: event, requestId }])],
  );
  await startReplica();
  const sent = await collectEvents<RecordsLoaded>(topics.recordsLoaded.name, (value) => value.request_id === requestId, {
    count: 1,
    decode,
    timeoutMs: 60_000,
  });
  t.equal(sent.length, 1, 'announced once, with no new input on the partition');
  t.match(sent[0]?.value, { batch_id: batchId, inserted: 7, updated: 2, rejected: 0 });
  t.equal(sent[0]?.headers.request_id, requestId, 'with the usual headers');
  await eventually('the outbox entry forgotten once Kafka acknowledged it', async () =>
    (await postgres.db.oneOrNone('SELECT 1 FROM sink_outbox WHERE id = $1', [id])) === null ? true : undefined,
  );
});

t.test('a big file is committed in several extract transactions; a replica killed while loading it resumes with exact counts', async (t) => {
  for (const replica of replicas.splice(0)) await stopReplica(replica, 'SIGTERM');
  const small = { EXTRACT_RECORDS_PER_TRANSACTION: '300' };
  const replica = await startReplica(small);
  const tenant = uniqueName('resume');
  const { body, records } = generated(tenant, 12_000, 13);
  const imported = await importFile(tenant, body);
  // Rows land after the first of the file's 40 extract transactions, while extract goes on.
  await eventually('the first rows', async () => ((await rowCount(tenant)) > 0 ? true : undefined), 120_000);
  t.equal(await stopReplica(replica, 'SIGKILL'), null, 'killed');
  const loadedBeforeKill = await rowCount(tenant);
  t.ok(loadedBeforeKill < summarize(records).distinctValidPermalinks, `killed before the end (${loadedBeforeKill} rows so far)`);
  await startReplica(small);
  await expectExactOutcome(t, tenant, imported.request_id, records);
});

t.test('records of several MB (a file of big records) go through every stage', async (t) => {
  // Regression: topics kept Kafka's 1 MiB max.message.bytes, and extract retried such a file forever.
  if (replicas.length === 0) await startReplica();
  const tenant = uniqueName('big-records');
  const { records } = generated(tenant, 40, 17);
  const lines = records.map((record) => {
    if (record.index % 10 !== 3 || !record.expectedValid) return record.line;
    const document = JSON.parse(record.line) as Record<string, unknown>;
    document.overview = 'x'.repeat(3 * 1024 * 1024);
    return JSON.stringify(document);
  });
  const imported = await importFile(tenant, Buffer.from(`${lines.join('\n')}\n`));
  await expectExactOutcome(t, tenant, imported.request_id, records);
  const overview = await postgres.db.one<{ n: number }>("SELECT count(*)::int AS n FROM companies WHERE tenant = $1 AND length(document->>'overview') = $2", [
    tenant,
    3 * 1024 * 1024,
  ]);
  t.ok(overview.n >= 3, `the big records are stored whole (${overview.n})`);
});

t.test('two replicas share the partitions and together load each record once', async (t) => {
  for (const replica of replicas.splice(0)) await stopReplica(replica, 'SIGTERM');
  const [a, b] = [await startReplica(), await startReplica()];
  await eventually(
    'both replicas own partitions of every stage',
    async () => {
      const [countsA, countsB] = [await assignedPartitions(a), await assignedPartitions(b)];
      return stageNames.every((stage) => (countsA[stage] ?? 0) > 0 && (countsB[stage] ?? 0) > 0 && countsA[stage]! + countsB[stage]! === 3) ? true : undefined;
    },
    90_000,
  );
  const tenants = [uniqueName('shared-a'), uniqueName('shared-b'), uniqueName('shared-c')];
  const imports = [];
  for (const [i, tenant] of tenants.entries()) {
    const { body, records } = generated(tenant, 600, 100 + i);
    imports.push({ tenant, records, imported: await importFile(tenant, body) });
  }
  for (const { tenant, records, imported } of imports) await expectExactOutcome(t, tenant, imported.request_id, records);
});

/** Stops every replica, starts `count` new ones and waits until each owns one partition of every stage. */
async function startReplicasOwningOnePartitionEach(count: number): Promise<Replica[]> {
  for (const replica of replicas.splice(0)) await stopReplica(replica, 'SIGTERM');
  const started: Replica[] = [];
  for (let i = 0; i < count; i++) started.push(await startReplica());
  await eventually(
    `each of ${count} replicas owns one partition of every stage`,
    async () => {
      const counts = await Promise.all(started.map(assignedPartitions));
      return counts.every((owned) => stageNames.every((stage) => owned[stage] === 1)) ? true : undefined;
    },
    120_000,
  );
  return started;
}

t.test('one 20,000-record file with 3 replicas: exact rows and ValidationErrors, and every replica extracts part of it', async (t) => {
  const three = await startReplicasOwningOnePartitionEach(3);
  const tenant = uniqueName('three');
  const { body, records } = generated(tenant, 20_000, 31);
  const imported = await importFile(tenant, body);
  await expectExactOutcome(t, tenant, imported.request_id, records);
  const shares = await Promise.all(three.map(recordsExtractedBy));
  t.equal(
    shares.reduce((sum, share) => sum + share, 0),
    records.length,
    `the replicas extracted ${shares.join(' + ')} records: the file once`,
  );
  for (const [i, share] of shares.entries()) t.ok(share >= 0.15 * records.length, `replica ${i} extracted ${share} records (≥ 15%)`);
});

t.test('one 20,000-record file with 3 replicas, one SIGKILLed mid-import and restarted: exact rows and ValidationErrors', async (t) => {
  const three = await startReplicasOwningOnePartitionEach(3);
  const tenant = uniqueName('three-kill');
  const { body, records } = generated(tenant, 20_000, 37);
  const imported = await importFile(tenant, body);
  await eventually('the first rows', async () => ((await rowCount(tenant)) > 0 ? true : undefined), 120_000);
  const victim = three[1]!;
  t.equal(await stopReplica(victim, 'SIGKILL'), null, 'killed');
  replicas.splice(replicas.indexOf(victim), 1);
  t.ok((await rowCount(tenant)) < summarize(records).distinctValidPermalinks, 'killed before the end');
  await startReplica();
  await expectExactOutcome(t, tenant, imported.request_id, records);
});

t.test('SIGTERM: the processor finishes its work, leaves its groups and exits 0', async (t) => {
  for (const replica of replicas.splice(0)) t.equal(await stopReplica(replica, 'SIGTERM'), 0);
  // A replica of its own, told apart from any other member of the stages' groups by its client id.
  const clientId = uniqueName('sigterm');
  const replica = await startReplica({ KAFKA_CLIENT_ID: clientId });
  const admin = testKafka().admin();
  await admin.connect();
  t.teardown(() => admin.disconnect());
  const groupIds = stageNames.map((stage) => `etl-${stage}`);
  const groupsWithIt = async () =>
    (await admin.describeGroups(groupIds)).groups
      .filter((group) => group.members.some((member) => member.clientId.startsWith(clientId)))
      .map((group) => group.groupId)
      .sort();
  t.same(await groupsWithIt(), [...groupIds].sort(), "a member of every stage's group while it runs");
  const tenant = uniqueName('sigterm');
  const { body, records } = generated(tenant, 3000, 19);
  const imported = await importFile(tenant, body);
  await eventually('some rows loaded', async () => ((await rowCount(tenant)) > 0 ? true : undefined), 120_000);
  t.equal(await stopReplica(replica, 'SIGTERM'), 0, 'exit 0 after SIGTERM');
  // Right after the exit, long before a session timeout could remove it: only a member that left is gone.
  t.same(await groupsWithIt(), [], 'it left every group before exiting');
  await t.rejects(request(`http://127.0.0.1:${replica.port}/liveness`), 'its health port is closed');
  // What it had started is neither lost nor done twice: the next replica goes on from its commits.
  await startReplica();
  await expectExactOutcome(t, tenant, imported.request_id, records);
});
