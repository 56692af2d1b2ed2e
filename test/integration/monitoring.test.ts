/**
 * The monitoring service against the real stack: imports go through an in-process ingress
 * and a processor child process; the monitoring (in process, then as a child process that
 * is SIGKILLed) must show each import's lineage with exact counts, its metrics, and refuse
 * bad requests.
 */
import { readFileSync } from 'node:fs';
import t from 'tap';
import { request } from 'undici';
import { createLogger } from '../../core/logger.js';
import { topics } from '../../core/pipeline.js';
import { generateCompanies, summarize } from '../../examples/generate/companies.js';
import { loadIngressConfig, startIngress } from '../../ingress/index.js';
import { createLineageStore, loadMonitoringConfig, type ImportJson } from '../../monitoring/index.js';
import { createPostgres } from '../../core/postgres.js';
import { createEventCodec } from '../../core/event-codec.js';
import { createRegistry } from '../../core/registry.js';
import { schemaOfTopic, type FileExtractError } from '../../schemas/index.js';
import { eventually, kafkaCodecs, produceWithKcat, uniqueName } from './helpers.js';
import { getJson, lineageOf, spawnService, startInProcess, waitAllApplied, waitForStatus } from './monitoring-helpers.js';

const sample = readFileSync(new URL('../../examples/data/json/companies-sample.ndjson', import.meta.url));
/** What examples/data/json/companies-sample.ndjson holds. */
const sampleCounts = { records: 60, invalid: 3, valid: 57 };

const ingressConfig = loadIngressConfig({ ...process.env, INGRESS_PORT: '0', INGRESS_HOST: '127.0.0.1', LOG_LEVEL: process.env.ITEST_LOG_LEVEL ?? 'warn' });
const ingress = await startIngress(ingressConfig, createLogger(ingressConfig.log, 'ingress-itest'));
t.teardown(() => ingress.close());
const ingressUrl = `http://127.0.0.1:${ingress.port}`;

async function importFile(tenant: string, body: Buffer | string, headers: Record<string, string> = {}): Promise<{ status: number; json: any }> {
  const response = await request(`${ingressUrl}/import/${tenant}`, { method: 'POST', body, headers });
  return { status: response.statusCode, json: await response.body.json() };
}

function metricValue(text: string, name: string, labels: string): number | undefined {
  const escaped = labels.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  const match = new RegExp(`^${name}\\{${escaped}[^}]*\\} (\\S+)$`, 'm').exec(text);
  return match === null ? undefined : Number(match[1]);
}

t.test('one load batch holding records of two imports counts for both; a repeated announcement counts once', async (t) => {
  // Regression: RecordsLoaded was deduplicated by batch_id alone, and the second import in a
  // shared batch never completed.
  const postgres = createPostgres(loadMonitoringConfig().postgres);
  t.teardown(() => postgres.close());
  const store = createLineageStore(postgres);
  const [first, second] = [uniqueName('shared-batch-a'), uniqueName('shared-batch-b')];
  const batchId = `etl-load/RecordValidated/1/${uniqueName('0')}-15`;
  const loaded = (requestId: string, inserted: number) => ({
    kind: 'loaded' as const,
    requestId,
    tenant: 'acme',
    at: Date.now(),
    batchId,
    inserted,
    updated: 0,
    unchanged: 0,
    rejected: 0,
  });
  const group = uniqueName('itest.lineage');
  const applied = await store.applyBatch({
    consumerGroup: group,
    topic: topics.recordsLoaded.name,
    partition: 0,
    nextOffset: '3',
    events: [
      { offset: '0', event: loaded(first, 12) },
      { offset: '1', event: loaded(second, 3) },
      { offset: '2', event: loaded(first, 12) },
    ],
  });
  t.equal(applied.applied, 2, 'two distinct (batch, import) announcements');
  await store.applyBatch({
    consumerGroup: group,
    topic: topics.recordsLoaded.name,
    partition: 0,
    nextOffset: '4',
    events: [{ offset: '3', event: loaded(second, 3) }],
  });
  t.match((await store.find(first, 'acme'))[0]?.lineage, { loaded: 12 });
  t.match((await store.find(second, 'acme'))[0]?.lineage, { loaded: 3 }, 'the second import of the batch is counted, once');
});

t.test('two tenants that send the same request id are two imports, counted apart', async (t) => {
  const postgres = createPostgres(loadMonitoringConfig().postgres);
  t.teardown(() => postgres.close());
  const store = createLineageStore(postgres);
  const requestId = uniqueName('shared-id');
  const [acme, globex] = [uniqueName('acme'), uniqueName('globex')];
  const batchId = `etl-load/RecordValidated/0/${uniqueName('0')}-9`;
  const at = Date.now();
  const received = (tenant: string, records: number) =>
    ({ kind: 'received', requestId, tenant, at, filename: `${tenant}.json`, size: 100, recordsExpected: records }) as const;
  const loaded = (tenant: string, inserted: number) =>
    ({ kind: 'loaded', requestId, tenant, at, batchId, inserted, updated: 0, unchanged: 0, rejected: 0 }) as const;
  const group = uniqueName('itest.lineage');
  await store.applyBatch({
    consumerGroup: group,
    topic: topics.recordsLoaded.name,
    partition: 0,
    nextOffset: '4',
    events: [
      { offset: '0', event: received(acme, 5) },
      { offset: '1', event: received(globex, 2) },
      { offset: '2', event: loaded(acme, 5) },
      // The same batch id for the other tenant's import is its own announcement, not a repeat.
      { offset: '3', event: loaded(globex, 2) },
    ],
  });
  const both = await store.find(requestId);
  t.same(
    both.map(({ lineage }) => [lineage.tenant, lineage.filename, lineage.recordsExpected, lineage.loaded]),
    [
      [acme, `${acme}.json`, 5, 5],
      [globex, `${globex}.json`, 2, 2],
    ].sort((a, b) => String(a[0]).localeCompare(String(b[0]))),
    'one row per tenant, each with its own counts',
  );
  t.match(
    (await store.find(requestId, globex)).map(({ lineage }) => lineage.loaded),
    [2],
  );

  const { url } = await startInProcess(t);
  const ambiguous = await getJson(`${url}/imports/${requestId}`);
  t.equal(ambiguous.status, 409, 'without a tenant the id names two imports');
  t.equal(ambiguous.json.error.code, 'AMBIGUOUS_REQUEST_ID');
  t.match(await lineageOf(url, requestId, acme), { tenant: acme, loaded: 5 });
  t.match(await lineageOf(url, requestId, globex), { tenant: globex, loaded: 2 });
  const elsewhere = await getJson(`${url}/imports/${requestId}?tenant=${uniqueName('initech')}`);
  t.equal(elsewhere.status, 404, 'a tenant that never sent the id: not found');
  t.equal((await getJson(`${url}/imports/${requestId}?tenant=Bad%20Tenant`)).status, 400);
  t.equal((await getJson(`${url}/imports/${requestId}?other=1`)).status, 400);
});

t.test('monitoring follows events that kcat compressed with gzip, snappy, lz4 and zstd', async (t) => {
  const { url } = await startInProcess(t);
  const config = loadMonitoringConfig();
  const codec = createEventCodec(createRegistry(config.registry), config.registry.url);
  const topic = topics.fileExtractError.name;
  await codec.register(topic, schemaOfTopic(topic));
  const tenant = uniqueName('codecs');
  const idsOf = new Map<string, string[]>();
  for (const name of kafkaCodecs) {
    const ids = Array.from({ length: 5 }, (_, index) => uniqueName(`codec-${name}-${index}`));
    idsOf.set(name, ids);
    const values = await Promise.all(
      ids.map((requestId) => {
        const event: FileExtractError = {
          request_id: requestId,
          tenant,
          reason_code: 'INVALID_JSON',
          // Compressible: librdkafka sends a batch uncompressed when compressing does not shrink it.
          message: `not JSON ${'of a compressible batch '.repeat(20)}`,
          offset: 7,
          bytes_received: 10,
          content_type: 'application/json',
          original_filename: `${name}.json`,
          received_at: Date.now(),
        };
        return codec.encode(topic, event);
      }),
    );
    produceWithKcat(topic, values, { codec: name, key: tenant });
  }
  for (const [name, ids] of idsOf) {
    for (const requestId of ids) {
      const lineage = await waitForStatus(url, requestId, 'failed', 120_000);
      t.match(
        lineage,
        { request_id: requestId, tenant, error_code: 'INVALID_JSON', filename: `${name}.json` },
        `${name}: ${requestId} failed, as its event says`,
      );
    }
  }
});

t.test('lineage, listing, metrics and refusals, with the whole pipeline running', async (t) => {
  const { url } = await startInProcess(t);
  const tenant = uniqueName('monitor');

  // A file the ingress refuses: the monitoring shows it failed, with the FileExtractError code.
  const broken = await importFile(tenant, '{"name": oops}', { 'content-type': 'application/json', 'x-filename': 'broken.json' });
  t.equal(broken.status, 400);
  const brokenId = broken.json.error.request_id as string;
  const failed = await waitForStatus(url, brokenId, 'failed', 60_000);
  t.match(failed, {
    request_id: brokenId,
    tenant,
    status: 'failed',
    error_code: 'INVALID_JSON',
    error_message: String,
    filename: 'broken.json',
    extracted: null,
    failed_at: String,
    received_at: String,
  });

  // A valid file through extract, validate and load (a processor replica of its own).
  await spawnService(['topology/main.ts', 'run'], 'PROCESSOR_PORT', 'PROCESSOR_HOST', { PROCESSOR_LAG_INTERVAL_MS: '1000' });
  const accepted = await importFile(tenant, sample, { 'content-type': 'application/x-ndjson', 'x-filename': 'companies-sample.ndjson' });
  t.equal(accepted.status, 202);
  const requestId = accepted.json.request_id as string;
  t.equal(accepted.json.status_url, `${ingressConfig.ingress.monitoringUrl}/imports/${requestId}?tenant=${tenant}`, 'the ingress points to this API');
  const complete = await waitForStatus(url, requestId, 'complete');
  t.match(await getJson(accepted.json.status_url.replace(ingressConfig.ingress.monitoringUrl, url)), {
    status: 200,
    json: { request_id: requestId, tenant, status: 'complete' },
  });
  t.match(complete, {
    request_id: requestId,
    tenant,
    status: 'complete',
    filename: 'companies-sample.ndjson',
    size: sample.length,
    records_expected: sampleCounts.records,
    extracted: sampleCounts.records,
    invalid: sampleCounts.invalid,
    loaded: sampleCounts.valid,
    rejected: 0,
    unprocessed: 0,
    error_code: null,
  });
  t.equal(complete.inserted + complete.updated + complete.unchanged, sampleCounts.valid, 'inserted + updated + unchanged = loaded');
  t.ok(complete.updated + complete.unchanged >= 1, 'the repeated permalink is an update (or, superseded in its batch, unchanged)');
  const times = [complete.received_at, complete.extracted_at, complete.completed_at].map((iso) => Date.parse(iso!));
  t.ok(times.every(Number.isFinite), 'received, extracted and completed times are set');
  t.ok(times[0]! <= times[1]! && times[1]! <= times[2]!, 'in order');
  t.ok(Date.now() - times[0]! < 10 * 60_000, 'recent');

  // The error report: the sample's invalid records, with what each broke.
  const report = await getJson(`${url}/imports/${requestId}/errors`);
  t.equal(report.status, 200);
  t.match(report.json, { request_id: requestId, tenant, counts: { validation: sampleCounts.invalid, processing: 0, rejected: 0 }, next: null });
  t.equal(report.json.errors.length, sampleCounts.invalid);
  for (const entry of report.json.errors) {
    t.match(entry, { kind: 'validation', stage: 'validate', code: 'CONTRACT_VIOLATION', record_index: Number, source: { topic: 'RecordExtracted' } });
    t.ok(
      entry.violations.length >= 1 && entry.violations.every((v: any) => typeof v.keyword === 'string' && typeof v.path === 'string'),
      'violations with path and keyword',
    );
  }
  const indexes = report.json.errors.map((entry: any) => entry.record_index);
  t.same(
    indexes,
    [...indexes].sort((a: number, b: number) => a - b),
    'in record order',
  );
  const csv = await request(`${url}/imports/${requestId}/errors`, { headers: { accept: 'text/csv' } });
  t.match(csv.headers['content-type'], /^text\/csv/);
  t.match(csv.headers['content-disposition'], `attachment; filename="${requestId}-errors.csv"`);
  const csvLines = (await csv.body.text()).split('\r\n').filter((line) => line !== '');
  const violations = report.json.errors.reduce((sum: number, entry: any) => sum + entry.violations.length, 0);
  t.equal(csvLines.length, 1 + violations, 'a header and one row per violation');

  // Listing: newest first, filters.
  const listed = await getJson(`${url}/imports?tenant=${tenant}`);
  t.equal(listed.status, 200);
  t.same(
    listed.json.imports.map((item: ImportJson) => [item.request_id, item.status]),
    [
      [requestId, 'complete'],
      [brokenId, 'failed'],
    ],
    'both imports of the tenant, newest first',
  );
  t.same(
    (await getJson(`${url}/imports?tenant=${tenant}&status=failed&limit=5`)).json.imports.map((item: ImportJson) => item.request_id),
    [brokenId],
  );
  t.same((await getJson(`${url}/imports?tenant=${tenant}&limit=1`)).json.imports.length, 1);
  const recent = await getJson(`${url}/imports`);
  t.ok(recent.json.imports.length > 0 && recent.json.imports.length <= 50, 'default limit');

  // Metrics: per tenant and in total, latency observed, lag of every stage's group.
  const metrics = await eventually('lag measured for every group', async () => {
    const text = await (await request(`${url}/metrics`)).body.text();
    return ['etl-extract', 'etl-validate', 'etl-load', 'etl-monitoring-RecordsLoaded'].every((group) =>
      text.includes(`monitoring_consumer_group_lag{group="${group}"`),
    )
      ? text
      : undefined;
  });
  const byTenant = (name: string) => metricValue(metrics, `monitoring_${name}_by_tenant_total`, `tenant="${tenant}"`);
  t.equal(byTenant('files_received'), 1);
  t.equal(byTenant('files_rejected'), 1);
  t.equal(byTenant('records_extracted'), sampleCounts.records);
  t.equal(byTenant('records_invalid'), sampleCounts.invalid);
  t.equal(byTenant('records_valid'), sampleCounts.valid);
  t.equal(byTenant('records_loaded'), sampleCounts.valid);
  t.equal(byTenant('imports_completed'), 1);
  t.equal(byTenant('imports_failed'), 1);
  for (const name of ['files_received', 'files_rejected', 'records_extracted', 'records_invalid', 'records_loaded']) {
    t.ok((metricValue(metrics, `monitoring_${name}_total`, 'service="monitoring"') ?? 0) >= (byTenant(name) ?? 0), `${name} total`);
  }
  t.ok((metricValue(metrics, 'monitoring_import_latency_seconds_count', 'service="monitoring"') ?? 0) >= 1, 'latency observed');
  t.match(metrics, /monitoring_consumer_lag\{group="etl-load",topic="RecordValidated",partition="0"/);
  t.match(metrics, /monitoring_consumer_lag\{group="etl-monitoring-FileExtractSuccess",topic="FileExtractSuccess",partition="2"/);

  // Refusals.
  const unknown = await getJson(`${url}/imports/no-such-import-${Date.now()}`);
  t.equal(unknown.status, 404);
  t.equal(unknown.json.error.code, 'IMPORT_NOT_FOUND');
  const badId = await getJson(`${url}/imports/bad.id`);
  t.equal(badId.status, 400);
  t.equal(badId.json.error.code, 'INVALID_REQUEST_ID');
  for (const [query, code] of [
    ['limit=0', 'INVALID_LIMIT'],
    ['limit=many', 'INVALID_LIMIT'],
    ['limit=501', 'INVALID_LIMIT'],
    ['status=finished', 'INVALID_STATUS'],
    ['tenant=Not%20A%20Tenant', 'INVALID_TENANT'],
    ['tenant=a&tenant=b', 'REPEATED_PARAMETER'],
    ['sort=asc', 'UNKNOWN_PARAMETER'],
  ]) {
    const response = await getJson(`${url}/imports?${query}`);
    t.equal(response.status, 400, `${query}: 400`);
    t.equal(response.json.error.code, code, `${query}: ${code}`);
  }
  const page = await request(`${url}/?tenant=${tenant}`);
  const html = await page.body.text();
  t.equal(page.statusCode, 200);
  t.match(page.headers['content-type'], /^text\/html/);
  t.match(page.headers['content-security-policy'], /default-src 'none'/);
  t.match(html, `data-request-id="${requestId}" data-status="complete"`);
  t.equal((await request(`${url}/?status=nope`)).statusCode, 400);

  // Operational routes.
  const live = await getJson(`${url}/liveness`);
  t.match(live.json, { status: 'alive', service: 'monitoring', uws: 'native' });
  const ready = await getJson(`${url}/readiness`);
  t.equal(ready.status, 200);
  t.match(ready.json.checks, { postgres: { ok: true }, 'stage_monitoring-RecordsLoaded': { ok: true }, 'stage_monitoring-FileExtractError': { ok: true } });
  t.equal((await getJson(`${url}/nothing-here`)).status, 404);
});

t.test('a monitoring process killed with SIGKILL mid-stream and restarted: the same exact counts', async (t) => {
  const tenant = uniqueName('monkill');
  const records = [...generateCompanies({ count: 1500, seed: 21, tenant, invalidEvery: 20, duplicateEvery: 100, bytesPerRecord: 800 })];
  const expected = summarize(records);
  const body = Buffer.from(`${records.map((record) => record.line).join('\n')}\n`);
  // Small batches: many lineage transactions, so the kill lands between (or in) some of them.
  const env = { MONITORING_BATCH_MAX_RECORDS: '3', MONITORING_BATCH_LINGER_MS: '50' };
  const first = await spawnService(['monitoring/main.ts'], 'MONITORING_PORT', 'MONITORING_HOST', env);
  const firstUrl = `http://127.0.0.1:${first.port}`;
  const accepted = await importFile(tenant, body, { 'content-type': 'application/x-ndjson' });
  t.equal(accepted.status, 202);
  const requestId = accepted.json.request_id as string;
  const before = await eventually(
    'some invalid records counted',
    async () => {
      const lineage = await lineageOf(firstUrl, requestId);
      return lineage !== undefined && lineage.invalid > 0 ? lineage : undefined;
    },
    180_000,
  );
  first.child.kill('SIGKILL');
  t.equal(await first.exited, null, 'killed');
  t.comment(`killed at status ${before.status}, invalid ${before.invalid}, loaded ${before.loaded}`);

  const second = await spawnService(['monitoring/main.ts'], 'MONITORING_PORT', 'MONITORING_HOST', env);
  const secondUrl = `http://127.0.0.1:${second.port}`;
  const complete = await waitForStatus(secondUrl, requestId, 'complete', 240_000);
  t.match(complete, {
    extracted: expected.total,
    invalid: expected.invalid,
    loaded: expected.valid,
    rejected: 0,
    records_expected: expected.total,
  });
  // Nothing more arrives later: once every event there is has been applied, the counts are still exact.
  await waitAllApplied();
  t.match(await lineageOf(secondUrl, requestId), { status: 'complete', invalid: expected.invalid, loaded: expected.valid });
  const download = await request(`${secondUrl}/imports/${requestId}/errors?format=ndjson`);
  t.equal(download.statusCode, 200);
  const lines = (await download.body.text()).split('\n').filter(Boolean);
  t.equal(lines.length, expected.invalid, 'each invalid record once in the error report, across the kill');
  t.equal(new Set(lines.map((line) => JSON.parse(line).record_index)).size, expected.invalid, 'no record twice');
  second.child.kill('SIGTERM');
  t.equal(await second.exited, 0, 'SIGTERM: exit 0');
});
