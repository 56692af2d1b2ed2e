/**
 * The error report on the real PostgreSQL and through the monitoring's HTTP API: entries of each
 * kind, an event applied again stored once, an error emitted again (a redelivery) stored once, pages that walk the whole report in record order, a
 * download of many pages streamed to the end, a download abandoned half-way, and the retention.
 * (monitoring.test.ts checks the report of imports that went through the whole pipeline.)
 */
import t from 'tap';
import { request } from 'undici';
import { topics } from '../../core/pipeline.js';
import { createPostgres } from '../../core/postgres.js';
import { createLineageStore, loadMonitoringConfig } from '../../monitoring/index.js';
import type { LineageEvent } from '../../monitoring/lineage.js';
import { uniqueName } from './helpers.js';
import { getJson, startInProcess } from './monitoring-helpers.js';

const postgres = createPostgres(loadMonitoringConfig().postgres);
t.teardown(() => postgres.close());
const store = createLineageStore(postgres);
const { url } = await startInProcess(t);

const at = Date.now();
function invalid(tenant: string, requestId: string, recordIndex: number): LineageEvent {
  return {
    kind: 'invalid',
    requestId,
    tenant,
    at,
    recordIndex,
    recordKey: `${tenant}-${recordIndex}`,
    violations: [{ path: '/email_address', keyword: 'format', message: 'must match format "email"' }],
    source: { topic: topics.recordExtracted.name, partition: recordIndex % 3, offset: recordIndex },
  };
}
function processingError(tenant: string, requestId: string, stage: string, code: string, recordIndex: number | null): LineageEvent {
  return {
    kind: 'processing-error',
    requestId,
    tenant,
    at,
    stage,
    code,
    message: `${stage} failed with ${code}`,
    recordIndex,
    recordKey: recordIndex === null ? null : `${tenant}-${recordIndex}`,
    source: { topic: topics.recordValidated.name, partition: 0, offset: 7 },
    effect: 'none',
  };
}
const received = (tenant: string, requestId: string): LineageEvent => ({
  kind: 'received',
  requestId,
  tenant,
  at,
  filename: 'f.ndjson',
  size: 10,
  recordsExpected: 5,
});

/**
 * Offsets for the events these tests make up: an entry is stored once per (topic, partition,
 * offset), so each event gets offsets no real event of the stack (nor another run) has.
 */
let unusedOffset = 1e12 + Math.floor(Math.random() * 1e6) * 1e5;
function offsets(count: number): number {
  const first = unusedOffset;
  unusedOffset += count;
  return first;
}

/** Applies events as one partition batch of `topic` under a fresh consumer group, at offsets from `first`. */
async function apply(
  topic: string,
  partition: number,
  events: LineageEvent[],
  first = offsets(events.length),
  group = uniqueName('itest.report'),
): Promise<void> {
  await store.applyBatch({
    consumerGroup: group,
    topic,
    partition,
    nextOffset: String(first + events.length),
    events: events.map((event, i) => ({ offset: String(first + i), event })),
  });
}

t.test('kinds: a contract violation, a row the database refused, a stage failure; an event applied again is stored once', async (t) => {
  const tenant = uniqueName('rep');
  const requestId = uniqueName('req');
  await apply(topics.fileExtractSuccess.name, 0, [received(tenant, requestId)]);
  await apply(topics.validationError.name, 0, [invalid(tenant, requestId, 4), invalid(tenant, requestId, 2)]);
  const errors = [processingError(tenant, requestId, 'load', 'PG_22001', 3), processingError(tenant, requestId, 'extract', 'S3_OBJECT_MISSING', null)];
  const errorOffsets = offsets(errors.length);
  await apply(topics.processingError.name, 0, errors, errorOffsets);
  // The same events at the same offsets, as a second group (or a lost offset commit) would see them.
  await apply(topics.processingError.name, 0, errors, errorOffsets);

  const report = await getJson(`${url}/imports/${requestId}/errors?tenant=${tenant}`);
  t.equal(report.status, 200);
  t.same(report.json.counts, { validation: 2, processing: 1, rejected: 1 });
  t.same(
    report.json.errors.map((entry: any) => [entry.record_index, entry.kind, entry.stage, entry.code]),
    [
      [null, 'processing', 'extract', 'S3_OBJECT_MISSING'],
      [2, 'validation', 'validate', 'CONTRACT_VIOLATION'],
      [3, 'rejected', 'load', 'PG_22001'],
      [4, 'validation', 'validate', 'CONTRACT_VIOLATION'],
    ],
    'file-level first, then record order; each event once',
  );
  t.match(report.json.errors[1], {
    record_key: `${tenant}-2`,
    violations: [{ path: '/email_address', keyword: 'format', message: 'must match format "email"' }],
    source: { topic: topics.recordExtracted.name, partition: 2, offset: 2 },
  });
});

t.test('a ProcessingError emitted again after a redelivery (a new event, other offsets) is stored once', async (t) => {
  const tenant = uniqueName('rep');
  const requestId = uniqueName('req');
  await apply(topics.fileExtractSuccess.name, 0, [received(tenant, requestId)]);
  const error = processingError(tenant, requestId, 'load', 'PG_22021', 5);
  await apply(topics.processingError.name, 0, [error]);
  // The stage processed the same record again and emitted the same error once more: its event
  // sits at another offset, in another batch (or the same one).
  await apply(topics.processingError.name, 1, [error, error]);
  await apply(topics.processingError.name, 0, [processingError(tenant, requestId, 'load', 'PG_22021', 6)]);

  const report = await getJson(`${url}/imports/${requestId}/errors?tenant=${tenant}`);
  t.equal(report.status, 200);
  t.same(report.json.counts, { validation: 0, processing: 0, rejected: 2 });
  t.same(
    report.json.errors.map((entry: any) => entry.record_index),
    [5, 6],
    'the repeated error once, the other record kept',
  );
});

t.test('pages walk the whole report once, in order; a download streams every page to the end', async (t) => {
  const tenant = uniqueName('rep');
  const requestId = uniqueName('req');
  const total = 2_345; // five download pages of 500
  await apply(topics.fileExtractSuccess.name, 0, [received(tenant, requestId)]);
  const events = Array.from({ length: total }, (_, i) => invalid(tenant, requestId, total - 1 - i));
  for (let start = 0; start < total; start += 1000) await apply(topics.validationError.name, 1, events.slice(start, start + 1000));

  const seen: number[] = [];
  let next: string | null = '';
  let pages = 0;
  while (next !== null) {
    const page = await getJson(`${url}/imports/${requestId}/errors?tenant=${tenant}&limit=1000${next === '' ? '' : `&after=${next}`}`);
    t.equal(page.status, 200);
    seen.push(...page.json.errors.map((entry: any) => entry.record_index));
    next = page.json.next;
    if (next !== null) t.equal(page.json.next_url, `/imports/${requestId}/errors?tenant=${tenant}&limit=1000&after=${next}`);
    pages += 1;
  }
  t.equal(pages, 3);
  t.same(
    seen,
    Array.from({ length: total }, (_, i) => i),
    'every record index once, ascending',
  );

  const download = await request(`${url}/imports/${requestId}/errors?tenant=${tenant}`, { headers: { accept: 'application/x-ndjson' } });
  t.equal(download.statusCode, 200);
  t.equal(download.headers['content-type'], 'application/x-ndjson');
  const lines = (await download.body.text()).split('\n');
  t.equal(lines.pop(), '', 'ends with a newline');
  t.same(
    lines.map((line) => JSON.parse(line).record_index),
    seen,
    'the download holds what the pages hold',
  );

  const resumed = await request(`${url}/imports/${requestId}/errors?tenant=${tenant}&format=csv&after=${encodeURIComponent('99.0')}`);
  t.equal(resumed.statusCode, 400, 'a cursor is an index and an id (ids start at 1)');
  await resumed.body.dump();
});

t.test('a download the client abandons half-way does not hurt the service', async (t) => {
  const tenant = uniqueName('rep');
  const requestId = uniqueName('req');
  await apply(topics.fileExtractSuccess.name, 0, [received(tenant, requestId)]);
  for (let start = 0; start < 5000; start += 1000) {
    await apply(
      topics.validationError.name,
      0,
      Array.from({ length: 1000 }, (_, i) => invalid(tenant, requestId, start + i)),
    );
  }
  const download = await request(`${url}/imports/${requestId}/errors?tenant=${tenant}&format=csv`);
  t.equal(download.statusCode, 200);
  for await (const chunk of download.body) {
    t.ok(chunk.length > 0, 'a first chunk arrived');
    break; // leaving the loop destroys the body: the connection goes away mid-download
  }
  const again = await getJson(`${url}/imports/${requestId}/errors?tenant=${tenant}&limit=1`);
  t.equal(again.status, 200, 'the service still answers');
  t.equal(again.json.counts.validation, 5000);
});

t.test('refusals: unknown import 404, a name two tenants used 409, bad parameters 400', async (t) => {
  const unknown = await getJson(`${url}/imports/${uniqueName('none')}/errors`);
  t.equal(unknown.status, 404);
  t.equal(unknown.json.error.code, 'IMPORT_NOT_FOUND');
  const requestId = uniqueName('shared');
  const [a, b] = [uniqueName('rep'), uniqueName('rep')];
  await apply(topics.fileExtractSuccess.name, 0, [received(a, requestId), received(b, requestId)]);
  const ambiguous = await getJson(`${url}/imports/${requestId}/errors`);
  t.equal(ambiguous.status, 409);
  t.equal(ambiguous.json.error.code, 'AMBIGUOUS_REQUEST_ID');
  for (const [query, code] of [
    ['format=xml', 'INVALID_FORMAT'],
    ['after=nope', 'INVALID_CURSOR'],
    ['limit=5000', 'INVALID_LIMIT'],
  ] as const) {
    const response = await getJson(`${url}/imports/${requestId}/errors?tenant=${a}&${query}`);
    t.equal(response.status, 400, query);
    t.equal(response.json.error.code, code, query);
  }
});

t.test('retention: entries stored longer ago than the setting are deleted, others kept', async (t) => {
  const tenant = uniqueName('rep');
  const [old, fresh] = [uniqueName('old'), uniqueName('new')];
  await apply(topics.fileExtractSuccess.name, 0, [received(tenant, old), received(tenant, fresh)]);
  await apply(topics.validationError.name, 2, [invalid(tenant, old, 0), invalid(tenant, old, 1), invalid(tenant, fresh, 0)]);
  await postgres.db.none("UPDATE import_error_report SET stored_at = now() - interval '31 days' WHERE tenant = $1 AND request_id = $2", [tenant, old]);
  t.ok((await store.sweepErrors(30)) >= 2, 'the old entries went');
  t.same((await store.errorCounts(tenant, old)).validation, 0);
  t.same((await store.errorCounts(tenant, fresh)).validation, 1, 'a recent entry stays');
});
