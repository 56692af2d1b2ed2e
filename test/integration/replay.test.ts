/**
 * Replay on the real stack: an in-process ingress and monitoring, a processor child process.
 * An import replayed through the API (and through `npm run replay`) becomes a new import linked
 * to its original, goes through every stage, and leaves the tables' data as they were; refusals
 * name why (unknown import, a refused file, an object no longer in the bucket); a replay of a
 * replay reads its original's object; a tenant's run stores its list before it answers and,
 * resumed, emits only what that list holds and it had not; two processes never take one file.
 */
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { DeleteObjectCommand } from '@aws-sdk/client-s3';
import t from 'tap';
import { request } from 'undici';
import { createEventCodec } from '../../core/event-codec.js';
import { createLogger } from '../../core/logger.js';
import { topics } from '../../core/pipeline.js';
import { createPostgres } from '../../core/postgres.js';
import { createRegistry } from '../../core/registry.js';
import { createS3 } from '../../core/s3.js';
import { generateCompanies, summarize } from '../../examples/generate/companies.js';
import { loadIngressConfig, startIngress } from '../../ingress/index.js';
import { loadMonitoringConfig } from '../../monitoring/index.js';
import { replayRequestId } from '../../monitoring/replay.js';
import { createReplayRunStore } from '../../monitoring/replay-store.js';
import type { FileExtractSuccess } from '../../schemas/index.js';
import { config, eventually, readTopic, uniqueName } from './helpers.js';
import { getJson, spawnService, startInProcess, waitForStatus } from './monitoring-helpers.js';

const ingressConfig = loadIngressConfig({ ...process.env, INGRESS_PORT: '0', INGRESS_HOST: '127.0.0.1', LOG_LEVEL: process.env.ITEST_LOG_LEVEL ?? 'warn' });
const ingress = await startIngress(ingressConfig, createLogger(ingressConfig.log, 'ingress-itest'));
t.teardown(() => ingress.close());
const { url } = await startInProcess(t);
await spawnService(['topology/main.ts', 'run'], 'PROCESSOR_PORT', 'PROCESSOR_HOST');
const postgres = createPostgres(loadMonitoringConfig().postgres);
t.teardown(() => postgres.close());
const codec = createEventCodec(createRegistry(config.registry), config.registry.url);

function generated(tenant: string, count: number, seed: number) {
  const records = [...generateCompanies({ count, seed, tenant, invalidEvery: 25, duplicateEvery: 60, bytesPerRecord: 700 })];
  const seen = new Set<string>();
  const repeated = new Set<string>();
  for (const record of records) if (record.expectedValid) (seen.has(record.permalink) ? repeated : seen).add(record.permalink);
  return { body: `${records.map((record) => record.line).join('\n')}\n`, expected: summarize(records), repeated };
}

async function importFile(tenant: string, body: string): Promise<string> {
  const response = await request(`http://127.0.0.1:${ingress.port}/import/${tenant}`, {
    method: 'POST',
    body,
    headers: { 'content-type': 'application/x-ndjson', 'x-filename': 'companies.ndjson' },
  });
  const json = (await response.body.json()) as any;
  if (response.statusCode !== 202 && response.statusCode !== 400) throw new Error(`import answered ${response.statusCode}: ${JSON.stringify(json)}`);
  return json.request_id ?? json.error.request_id;
}

/** The tenant's rows, business columns only (the source_* columns say which import wrote them). */
async function rowsOf(tenant: string): Promise<unknown[]> {
  return postgres.db.any(
    'SELECT permalink, name, category_code, founded_year, number_of_employees, homepage_url, email_address, created_at, updated_at, document ' +
      'FROM companies WHERE tenant = $1 ORDER BY permalink',
    [tenant],
  );
}

/** The tenant's offices and funding rounds with the transaction that wrote each (xmin). */
async function childRowsOf(tenant: string): Promise<Array<{ permalink: string }>> {
  return postgres.db.any(
    "SELECT 'office' AS kind, permalink, position, xmin::text AS xmin FROM company_offices WHERE tenant = $1 " +
      "UNION ALL SELECT 'round', permalink, position, xmin::text FROM company_funding_rounds WHERE tenant = $1 ORDER BY 1, 2, 3",
    [tenant],
  );
}

async function post(path: string): Promise<{ status: number; json: any }> {
  const response = await request(`${url}${path}`, { method: 'POST' });
  const text = await response.body.text();
  return { status: response.statusCode, json: text === '' ? null : JSON.parse(text) };
}

/** FileExtractSuccess events announcing each of these request ids, read to the topic's end. */
async function announcements(requestIds: string[]): Promise<Map<string, FileExtractSuccess[]>> {
  const found = new Map<string, FileExtractSuccess[]>(requestIds.map((id) => [id, []]));
  for (const message of await readTopic(topics.fileExtractSuccess.name)) {
    if (message.value === null || !requestIds.includes(message.headers.request_id ?? '')) continue;
    const event = await codec.decode<FileExtractSuccess>(message.value);
    found.get(event.request_id)?.push(event);
  }
  return found;
}

t.test('a replayed import is a new import linked to its original; the tables keep the same data', async (t) => {
  const tenant = uniqueName('replay');
  const { body, expected, repeated } = generated(tenant, 300, 7);
  const original = await importFile(tenant, body);
  const first = await waitForStatus(url, original, 'complete', 240_000, tenant);
  t.match(first, { extracted: expected.total, invalid: expected.invalid, loaded: expected.valid, replay_of: null });
  const before = await rowsOf(tenant);
  t.equal(before.length, expected.distinctValidPermalinks);
  const childrenBefore = await childRowsOf(tenant);

  const answer = await post(`/imports/${original}/replay?tenant=${tenant}`);
  t.equal(answer.status, 202);
  t.match(answer.json, { replay_of: original, tenant, records: expected.total, run_id: /^[a-z0-9]+$/ });
  const replayId = answer.json.replay_request_id as string;
  t.equal(replayId, replayRequestId(original, answer.json.run_id));
  const replayed = await waitForStatus(url, replayId, 'complete', 240_000, tenant);
  t.match(replayed, { replay_of: original, extracted: expected.total, invalid: expected.invalid, loaded: expected.valid, accepted_at: first.accepted_at });
  t.same(await rowsOf(tenant), before, 'the same rows with the same data');
  // Identical data: nothing is updated, except that a company the file holds twice (with other
  // data) may be written over by its earlier copy and then its later one again, when the two
  // fall in different load batches (the replay's copies are newer than all of the original's).
  t.equal(replayed.inserted, 0);
  t.equal(replayed.updated + replayed.unchanged, expected.valid, 'every loaded record is updated or unchanged');
  t.ok(replayed.updated <= 2 * repeated.size, `updated ${replayed.updated}: only companies the file holds twice`);
  t.ok(replayed.unchanged >= expected.valid - 2 * repeated.size, `unchanged ${replayed.unchanged}`);
  const once = (rows: Array<{ permalink: string }>) => rows.filter((row) => !repeated.has(row.permalink));
  t.same(once(await childRowsOf(tenant)), once(childrenBefore), 'no child row of a company the file holds once is rewritten (same xmin)');
  const { n } = await postgres.db.one<{ n: number }>('SELECT count(*)::int AS n FROM companies WHERE tenant = $1 AND source_request_id = $2', [
    tenant,
    replayId,
  ]);
  t.equal(n, expected.distinctValidPermalinks, "the replay's copy is the one kept (it sorts after its original)");
  const [event] = (await announcements([replayId])).get(replayId)!;
  t.match(event, { replay_of: original, record_count: expected.total, key: String, sha256: String });

  // A replay of that replay reads the same archived object (its stored raw_object), not a key
  // made from the replay's own request id (no such object: a false 410).
  const again = await post(`/imports/${replayId}/replay?tenant=${tenant}`);
  t.equal(again.status, 202, JSON.stringify(again.json));
  t.match(again.json, { replay_of: replayId, records: expected.total });
  const [twice] = (await announcements([again.json.replay_request_id])).get(again.json.replay_request_id)!;
  t.match(twice, { key: event!.key, bucket: event!.bucket, sha256: event!.sha256, replay_of: replayId });

  const page = await request(`${url}/imports/${replayId}?tenant=${tenant}`, { headers: { accept: 'text/html' } });
  t.match(await page.body.text(), `<a id="replay-of" href="${original}?tenant=${tenant}">`, 'the page links the replay to its original');

  // The CLI does the same through the API.
  const cli = await promisify(execFile)(process.execPath, [
    '--import',
    'tsx',
    'examples/cli/replay.ts',
    '--request-id',
    original,
    '--tenant',
    tenant,
    '--url',
    url,
  ]);
  t.match(cli.stdout, new RegExp(`^replaying ${original} as ${original}-r[a-z0-9]+ \\(${expected.total} records\\)`));
});

t.test('refusals: an unknown import, a refused file, an object the bucket no longer holds', async (t) => {
  const tenant = uniqueName('replay');
  const unknown = await post(`/imports/${uniqueName('none')}/replay?tenant=${tenant}`);
  t.same([unknown.status, unknown.json.error.code], [404, 'IMPORT_NOT_FOUND']);

  const refused = await importFile(tenant, '{"name": broken');
  await waitForStatus(url, refused, 'failed', 120_000, tenant);
  const nothing = await post(`/imports/${refused}/replay?tenant=${tenant}`);
  t.same([nothing.status, nothing.json.error.code], [409, 'REPLAY_NOTHING_TO_REPLAY']);

  const gone = await importFile(tenant, generated(tenant, 20, 9).body);
  const lineage = await waitForStatus(url, gone, 'complete', 240_000, tenant);
  const [, bucket, key] = /^s3:\/\/([^/]+)\/(.+)$/.exec(lineage.raw_object!)!;
  const s3 = createS3(config.s3);
  t.teardown(() => s3.destroy());
  await s3.send(new DeleteObjectCommand({ Bucket: bucket, Key: key }));
  const missing = await post(`/imports/${gone}/replay?tenant=${tenant}`);
  t.equal(missing.status, 410);
  t.equal(missing.json.error.code, 'ARCHIVE_OBJECT_MISSING');
  t.match(missing.json.error.message, `s3://${bucket}/${key}`);
  t.match(missing.json.error.message, /lifecycle|deleted/, 'says what removed it');
});

t.test("a tenant's run: its list is stored before the answer; resumed, it emits only the files of that list it had not", async (t) => {
  const tenant = uniqueName('replay');
  const ids = [await importFile(tenant, generated(tenant, 40, 11).body), await importFile(tenant, generated(tenant, 40, 12).body)];
  for (const id of ids) await waitForStatus(url, id, 'complete', 240_000, tenant);
  const until = new Date().toISOString();
  const later = await importFile(tenant, generated(tenant, 40, 13).body);
  await waitForStatus(url, later, 'complete', 240_000, tenant);

  // A run started with ?until= that stopped after its first file, as the tables hold it then.
  const runId = `${Date.now().toString(36)}ab12`;
  const replayIds = ids.map((id) => replayRequestId(id, runId)!);
  const originals = await postgres.db.any<{ request_id: string; received_at: Date; raw_object: string; records_expected: string }>(
    'SELECT request_id, received_at, raw_object, records_expected FROM imports WHERE tenant = $1 AND request_id IN ($2:csv) ORDER BY received_at',
    [tenant, ids],
  );
  await postgres.db.none('INSERT INTO replay_runs (run_id, tenant, until) VALUES ($1, $2, $3)', [runId, tenant, new Date(until)]);
  for (const [position, row] of originals.entries()) {
    await postgres.db.none(
      'INSERT INTO replay_files (run_id, tenant, request_id, replay_request_id, state, position, raw_object, received_at, records_expected) ' +
        'VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)',
      [
        runId,
        tenant,
        row.request_id,
        replayRequestId(row.request_id, runId),
        position === 0 ? 'emitted' : 'pending',
        position,
        row.raw_object,
        row.received_at,
        row.records_expected,
      ],
    );
  }
  const resumed = await post(`/tenants/${tenant}/replay?run=${runId}`);
  t.equal(resumed.status, 202);
  t.match(resumed.json, { run_id: runId, files: 2, until, records_expected: 80 });
  const progress = await eventually(
    'the run to end',
    async () => {
      const answer = await getJson(`${url}/replays/${runId}?tenant=${tenant}`);
      return answer.json?.running === false ? answer.json : undefined;
    },
    240_000,
  );
  t.match(progress, { files: 2, files_done: 2, emitted: 2, failed: 0, pending: 0, until, records_expected: 80 });
  t.same(
    progress.replays.map((replay: { request_id: string }) => replay.request_id),
    ids,
    'the import received after until is not replayed',
  );
  const sent = await announcements([...replayIds, replayRequestId(later, runId)!]);
  t.equal(sent.get(replayIds[0]!)!.length, 0, 'the file done before the stop is not sent again');
  t.equal(sent.get(replayIds[1]!)!.length, 1, 'the rest is sent once');
  t.equal(sent.get(replayRequestId(later, runId)!)!.length, 0, 'nothing outside the window');

  // The same run once more: nothing left to emit.
  t.equal((await post(`/tenants/${tenant}/replay?run=${runId}`)).status, 202);
  await eventually('the run to end again', async () => ((await getJson(`${url}/replays/${runId}?tenant=${tenant}`)).json.running === false ? true : undefined));
  t.equal((await announcements(replayIds)).get(replayIds[1]!)!.length, 1, 'a finished run emits nothing again');

  // A new run: answered once its list is stored, so the first poll knows the total.
  const fresh = await post(`/tenants/${tenant}/replay?until=${encodeURIComponent(until)}`);
  t.equal(fresh.status, 202);
  t.match(fresh.json, { files: 2, files_done: 0, records_expected: 80 });
  const first = await getJson(`${url}/replays/${fresh.json.run_id}?tenant=${tenant}`);
  t.equal(first.status, 200, 'the first poll right after the start');
  t.match(first.json, { files: 2, records_expected: 80 });
  await eventually('the new run to end', async () =>
    (await getJson(`${url}/replays/${fresh.json.run_id}?tenant=${tenant}`)).json.running === false ? true : undefined,
  );

  const unknownTenant = await post(`/tenants/${uniqueName('nobody')}/replay`);
  t.same([unknownTenant.status, unknownTenant.json.error.code], [404, 'TENANT_NOT_FOUND']);
  t.equal((await getJson(`${url}/replays/nosuchrun1`)).status, 404);
  t.equal((await post(`/tenants/${tenant}/replay?run=nosuchrun1`)).status, 404, 'a run id nobody started is not resumed');
});

t.test('two processes taking the files of one run in PostgreSQL: each file is taken once', async (t) => {
  const tenant = uniqueName('replay');
  const runId = `${Date.now().toString(36)}cd34`;
  const files = Array.from({ length: 40 }, (_, position) => {
    const requestId = `${uniqueName('claim')}-${position}`;
    return {
      tenant,
      requestId,
      receivedAt: Date.now(),
      acceptedAt: null,
      filename: null,
      rawObject: null,
      recordsExpected: 1,
      position,
      replayRequestId: `${requestId}-r${runId}`,
    };
  });
  const one = createReplayRunStore(postgres);
  await one.createRun({ runId, tenant, since: null, until: null }, files);
  // Each claimant on its own pool, so their UPDATEs race in PostgreSQL.
  const pools = [createPostgres(loadMonitoringConfig().postgres), createPostgres(loadMonitoringConfig().postgres)];
  t.teardown(() => Promise.all(pools.map((pool) => pool.close())));
  const claimed = new Map<string, string[]>();
  await Promise.all(
    pools.flatMap((pool, p) =>
      [0, 1, 2].map(async (worker) => {
        const store = createReplayRunStore(pool);
        const claimant = `claimant-${p}-${worker}`;
        for (;;) {
          const file = await store.claimNext(runId, claimant, 60_000);
          if (file === undefined) return;
          claimed.set(file.requestId, [...(claimed.get(file.requestId) ?? []), claimant]);
          await store.finish(runId, file.requestId, claimant, { state: 'emitted' });
        }
      }),
    ),
  );
  t.equal(claimed.size, files.length, 'every file taken');
  t.same(
    [...claimed.values()].filter((claimants) => claimants.length > 1),
    [],
    'none taken twice',
  );
  t.match(await one.progress(runId, tenant), { files: 40, emitted: 40, pending: 0 });
  t.equal(await one.claimNext(runId, 'late', 60_000), undefined, 'nothing left');
});
