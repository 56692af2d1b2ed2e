/**
 * The Postgres company writer against the real database: exactly-once batches (offsets in the
 * same transaction), collapsing, child tables, bad-row isolation, hooks and literal storage.
 * Every test uses its own tenants and consumer groups and removes only those rows.
 */
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import t, { type Test } from 'tap';
import { loadConfig } from '../../core/config.js';
import { PipelineError } from '../../core/errors.js';
import { createPostgres } from '../../core/postgres.js';
import { createCompanyWriter, type BatchWriteResult, type PartitionBatch, type SinkRecord } from '../../sinks/postgres/company-writer.js';
import { normalizeRecord } from '../../topology/etl/normalize.js';

const config = loadConfig();
const postgres = createPostgres(config.postgres, { applicationName: 'itest-company-writer' });
const { db } = postgres;
/** Reads stored offsets only (the same for both ways of writing). */
const offsetReader = createCompanyWriter(postgres);
const topic = 'itest.company-writer';

const tenants: string[] = [];
const groups: string[] = [];

t.teardown(async () => {
  if (tenants.length > 0) await db.none('DELETE FROM companies WHERE tenant = ANY($1)', [tenants]);
  if (groups.length > 0) await db.none('DELETE FROM sink_offsets WHERE consumer_group = ANY($1)', [groups]);
  if (groups.length > 0) await db.none('DELETE FROM sink_outbox WHERE consumer_group = ANY($1)', [groups]);
  await postgres.close();
});

function random(): string {
  return randomBytes(4).toString('hex');
}

function newTenant(): string {
  const tenant = `writer-${random()}`;
  tenants.push(tenant);
  return tenant;
}

function newGroup(): string {
  const group = `writer-${random()}`;
  groups.push(group);
  return group;
}

const sample = normalizeRecord(JSON.parse(readFileSync(new URL('../../examples/data/json/c.json', import.meta.url), 'utf8'))) as Record<string, unknown>;

function doc(permalink: string, overrides: Record<string, unknown> = {}): Record<string, unknown> {
  return { ...structuredClone(sample), permalink, name: `Company ${permalink}`, ...overrides };
}

function rec(
  tenant: string,
  permalink: string,
  offset: number,
  options: { doc?: Record<string, unknown>; requestId?: string; recordIndex?: number; acceptedAt?: number } = {},
): SinkRecord {
  return {
    tenant,
    permalink,
    document: options.doc ?? doc(permalink),
    source: {
      requestId: options.requestId ?? 'req-1',
      bucket: 'etl-imports',
      key: `${tenant}/import.ndjson`,
      recordIndex: options.recordIndex ?? offset,
      acceptedAt: options.acceptedAt ?? 1_000,
    },
    offset: String(offset),
  };
}

function batch(consumerGroup: string, records: SinkRecord[], nextOffset: number, partition = 0): PartitionBatch {
  return { consumerGroup, topic, partition, records, nextOffset: String(nextOffset) };
}

interface CompanyRowOut {
  permalink: string;
  name: string;
  category_code: string | null;
  founded_year: number | null;
  number_of_employees: number | null;
  homepage_url: string | null;
  email_address: string | null;
  created_at: Date | null;
  updated_at: Date | null;
  document: Record<string, unknown>;
  source_request_id: string;
  source_bucket: string;
  source_key: string;
  source_record_index: number;
  loaded_at: Date;
}

function companies(tenant: string): Promise<CompanyRowOut[]> {
  return db.any('SELECT * FROM companies WHERE tenant = $1 ORDER BY permalink', [tenant]);
}

/** Every row of the tenant with its xmin (the transaction that wrote it), and its child rows with theirs. */
async function snapshot(tenant: string) {
  const rows = await db.any<Record<string, unknown> & { xmin: string; source_request_id: string; number_of_employees: number | null }>(
    'SELECT xmin::text AS xmin, * FROM companies WHERE tenant = $1 ORDER BY permalink',
    [tenant],
  );
  const children = await db.any<{ kind: string; permalink: string; city: string | null }>(
    "SELECT 'office' AS kind, permalink, position, city, xmin::text AS xmin FROM company_offices WHERE tenant = $1 " +
      "UNION ALL SELECT 'round', permalink, position, round_code, xmin::text FROM company_funding_rounds WHERE tenant = $1 ORDER BY 1, 2, 3",
    [tenant],
  );
  return { rows, children };
}

async function storedOffset(group: string, partition = 0): Promise<string | undefined> {
  return (await offsetReader.storedOffsets(group, topic)).get(partition);
}

/** The SQL text of every statement the pool sends from now until `stop()` (or the test's end). */
function captureQueries(t: Test): string[] & { stop(): void } {
  const options = postgres.db.$config.options;
  const queries = Object.assign([] as string[], {
    stop: () => {
      delete options.query;
    },
  });
  options.query = (event) => void queries.push(String(event.query));
  t.teardown(queries.stop);
  return queries;
}

// Every behaviour holds for both ways of writing rows (COPY into staging + merge, and multi-row INSERT).
for (const method of ['copy', 'insert'] as const) {
  const writer = createCompanyWriter(postgres, { method });

  t.test(`[${method}] inserts, then updates, mapping every column`, async (t) => {
    const tenant = newTenant();
    const group = newGroup();
    const first = await writer.writeBatch(
      batch(
        group,
        [rec(tenant, 'a', 0), rec(tenant, 'b', 1, { doc: doc('b', { created_at: '', updated_at: 'yesterday', founded_year: 2004 }) }), rec(tenant, 'c', 2)],
        3,
      ),
    );
    t.match(first, { inserted: 3, updated: 0, rejected: [], collapsed: 0, skipped: false });
    t.same(first.perRequest, [{ requestId: 'req-1', tenant, inserted: 3, updated: 0, unchanged: 0, rejected: 0 }]);

    const rows = await companies(tenant);
    t.equal(rows.length, 3);
    const a = rows[0]!;
    t.equal(a.name, 'Company a');
    t.equal(a.category_code, 'other');
    t.equal(a.number_of_employees, 773);
    t.equal(a.founded_year, null);
    t.equal(a.homepage_url, '');
    t.equal(a.email_address, 'info@datamesh-0.com');
    t.equal(a.created_at?.toISOString(), '2010-05-15T12:45:44.000Z');
    t.equal(a.updated_at?.toISOString(), '2013-12-08T07:15:44.000Z');
    t.same(a.document, doc('a'), 'the whole record is kept as jsonb');
    t.match(a, { source_request_id: 'req-1', source_bucket: 'etl-imports', source_key: `${tenant}/import.ndjson`, source_record_index: 0 });
    t.ok(a.loaded_at instanceof Date);
    const b = rows[1]!;
    t.equal(b.created_at, null, 'empty date → null');
    t.equal(b.updated_at, null, 'unparseable date → null');
    t.equal(b.founded_year, 2004);

    const second = await writer.writeBatch(
      batch(
        group,
        [
          rec(tenant, 'a', 3, { doc: doc('a', { name: 'A renamed', number_of_employees: 5 }), requestId: 'req-2' }),
          rec(tenant, 'd', 4, { requestId: 'req-2' }),
        ],
        5,
      ),
    );
    t.match(second, { inserted: 1, updated: 1, rejected: [], collapsed: 0, skipped: false });
    const after = await companies(tenant);
    t.equal(after.length, 4);
    t.match(after[0], { name: 'A renamed', number_of_employees: 5, source_request_id: 'req-2', source_record_index: 3 });
    t.equal(await storedOffset(group), '5');
  });

  t.test(`[${method}] the same key twice in one batch: the last one wins and the other is collapsed`, async (t) => {
    const tenant = newTenant();
    const group = newGroup();
    const result = await writer.writeBatch(
      batch(
        group,
        [
          rec(tenant, 'x', 10, { doc: doc('x', { name: 'first' }), requestId: 'req-a' }),
          rec(tenant, 'y', 11, { requestId: 'req-a' }),
          rec(tenant, 'x', 12, { doc: doc('x', { name: 'second' }), requestId: 'req-b' }),
          rec(tenant, 'x', 13, { doc: doc('x', { name: 'third' }), requestId: 'req-b' }),
        ],
        14,
      ),
    );
    t.match(result, { inserted: 2, updated: 0, collapsed: 2, rejected: [] });
    const rows = await companies(tenant);
    t.same(
      rows.map((row) => [row.permalink, row.name, row.source_record_index]),
      [
        ['x', 'third', 13],
        ['y', 'Company y', 11],
      ],
    );
    t.same(
      result.perRequest.sort((p, q) => p.requestId.localeCompare(q.requestId)),
      [
        { requestId: 'req-a', tenant, inserted: 1, updated: 0, unchanged: 1, rejected: 0 },
        { requestId: 'req-b', tenant, inserted: 1, updated: 0, unchanged: 1, rejected: 0 },
      ],
      'superseded records count as unchanged of their own request',
    );
  });

  t.test(`[${method}] the final row is the newest copy (later accepted import, then later record), in whichever order copies are loaded`, async (t) => {
    // Two imports of the same companies: "old" accepted at 1000, "new" at 2000; within "new",
    // company x appears twice (records 0 and 5). Written in every order, over two partitions
    // (two load replicas) and in separate batches, the rows end the same.
    const copies = (tenant: string) => ({
      oldX: rec(tenant, 'x', 0, { doc: doc('x', { name: 'old x', offices: [{ city: 'Old' }] }), requestId: 'req-old', recordIndex: 0, acceptedAt: 1000 }),
      oldY: rec(tenant, 'y', 1, { doc: doc('y', { name: 'old y' }), requestId: 'req-old', recordIndex: 1, acceptedAt: 1000 }),
      newX0: rec(tenant, 'x', 2, {
        doc: doc('x', { name: 'new x, first', offices: [{ city: 'Mid' }] }),
        requestId: 'req-new',
        recordIndex: 0,
        acceptedAt: 2000,
      }),
      newX5: rec(tenant, 'x', 3, {
        doc: doc('x', { name: 'new x, last', offices: [{ city: 'New' }, { city: 'Newer' }] }),
        requestId: 'req-new',
        recordIndex: 5,
        acceptedAt: 2000,
      }),
    });
    const orders: Array<Array<Array<keyof ReturnType<typeof copies>>>> = [
      [['oldX', 'oldY'], ['newX0'], ['newX5']],
      [['newX5'], ['newX0'], ['oldX', 'oldY']],
      [
        ['newX5', 'oldX'],
        ['oldY', 'newX0'],
      ],
      [['newX0', 'newX5', 'oldY', 'oldX']],
    ];
    const finals: unknown[] = [];
    for (const order of orders) {
      const tenant = newTenant();
      const group = newGroup();
      const all = copies(tenant);
      let outdated = 0;
      for (const [i, names] of order.entries()) {
        const records = names.map((name, j) => ({ ...all[name], offset: String(10 * i + j) }));
        const result = await writer.writeBatch(batch(group, records, 10 * i + records.length, i % 2));
        outdated += result.outdated;
      }
      const rows = await companies(tenant);
      const offices = await db.any('SELECT permalink, position, city FROM company_offices WHERE tenant = $1 ORDER BY permalink, position', [tenant]);
      finals.push({ rows: rows.map((row) => [row.permalink, row.name, row.source_request_id, row.source_record_index]), offices });
      t.ok(outdated <= 3, `order ${JSON.stringify(order)}: ${outdated} older copies refused`);
    }
    const first = finals[0] as { rows: unknown[]; offices: Array<{ permalink: string; city: string }> };
    t.same(first.rows, [
      ['x', 'new x, last', 'req-new', 5],
      ['y', 'old y', 'req-old', 1],
    ]);
    t.same(
      first.offices.filter((office) => office.permalink === 'x').map((office) => office.city),
      ['New', 'Newer'],
      'x has the offices of its newest copy',
    );
    for (const [i, final] of finals.entries()) t.same(final, finals[0], `order ${JSON.stringify(orders[i])} ends with the same rows and child rows`);
  });

  t.test(`[${method}] an older copy changes nothing and is counted as outdated, and as unchanged of its import`, async (t) => {
    const tenant = newTenant();
    const group = newGroup();
    await writer.writeBatch(
      batch(group, [rec(tenant, 'x', 0, { doc: doc('x', { name: 'newer', offices: [{ city: 'Kept' }] }), requestId: 'b', acceptedAt: 2000 })], 1),
    );
    const before = await companies(tenant);
    const result = await writer.writeBatch(
      batch(group, [rec(tenant, 'x', 1, { doc: doc('x', { name: 'older', offices: [] }), requestId: 'a', acceptedAt: 1000 })], 2),
    );
    t.match(result, { inserted: 0, updated: 0, outdated: 1, collapsed: 0, rejected: [] });
    t.same(result.perRequest, [{ requestId: 'a', tenant, inserted: 0, updated: 0, unchanged: 1, rejected: 0 }]);
    t.same(await companies(tenant), before, 'the row is untouched (loaded_at too)');
    t.same(await db.any('SELECT city FROM company_offices WHERE tenant = $1', [tenant]), [{ city: 'Kept' }], 'its child rows too');
    t.equal(await storedOffset(group), '2', 'the offset still advances');
  });

  t.test(`[${method}] the same copies loaded again: all unchanged, no row or child row rewritten`, async (t) => {
    const tenant = newTenant();
    const group = newGroup();
    const records = ['a', 'b', 'c'].map((permalink, i) => rec(tenant, permalink, i));
    t.match(await writer.writeBatch(batch(group, records, 3)), { inserted: 3, updated: 0, unchanged: 0 });
    const before = await snapshot(tenant);

    // The same batch once more (at later offsets: a consumer group that read the topic again).
    const again = await writer.writeBatch(
      batch(
        group,
        records.map((record, i) => ({ ...record, document: structuredClone(record.document), offset: String(3 + i) })),
        6,
      ),
    );
    t.match(again, { inserted: 0, updated: 0, unchanged: 3, outdated: 0, collapsed: 0, rejected: [] });
    t.same(again.perRequest, [{ requestId: 'req-1', tenant, inserted: 0, updated: 0, unchanged: 3, rejected: 0 }]);
    t.same(await snapshot(tenant), before, 'same xmin for every row and child row: nothing rewritten');

    // A replay: the same data under a newer version (its request id sorts after the original's).
    const replay = await writer.writeBatch(
      batch(
        group,
        records.map((record, i) => ({ ...record, offset: String(6 + i), source: { ...record.source, requestId: 'req-1-rabc' } })),
        9,
      ),
    );
    t.match(replay, { inserted: 0, updated: 0, unchanged: 3 });
    const after = await snapshot(tenant);
    t.same(after.children, before.children, 'no child row rewritten');
    t.same(
      after.rows.map(({ xmin: _xmin, source_request_id: _id, ...data }) => data),
      before.rows.map(({ xmin: _xmin, source_request_id: _id, ...data }) => data),
      'the same data (loaded_at too)',
    );
    t.same(
      after.rows.map((row) => row.source_request_id),
      ['req-1-rabc', 'req-1-rabc', 'req-1-rabc'],
      "the row's version advances to the replay's",
    );
    // A copy older than the replay but newer than the original, loaded after the replay: outdated
    // (had the replay's version not been kept, it would overwrite the newest copy's data).
    const between = await writer.writeBatch(
      batch(group, [rec(tenant, 'a', 9, { doc: doc('a', { name: 'in between' }), requestId: 'req-1-q', recordIndex: 0 })], 10),
    );
    t.match(between, { inserted: 0, updated: 0, unchanged: 0, outdated: 1 });
    t.equal((await companies(tenant))[0]?.name, 'Company a');
  });

  t.test(`[${method}] a changed field or child row is updated; a row stored without a hash is updated once`, async (t) => {
    const tenant = newTenant();
    const group = newGroup();
    t.match(await writer.writeBatch(batch(group, [rec(tenant, 'a', 0), rec(tenant, 'b', 1), rec(tenant, 'c', 2)], 3)), { inserted: 3 });
    const before = await snapshot(tenant);
    const changed = await writer.writeBatch(
      batch(
        group,
        [
          rec(tenant, 'a', 3, { doc: doc('a', { number_of_employees: 774 }), requestId: 'req-2' }),
          rec(tenant, 'b', 4, { doc: doc('b', { offices: [{ city: 'Elsewhere' }] }), requestId: 'req-2' }),
          rec(tenant, 'c', 5, { requestId: 'req-2' }),
        ],
        6,
      ),
    );
    t.match(changed, { inserted: 0, updated: 2, unchanged: 1 });
    t.same(changed.perRequest, [{ requestId: 'req-2', tenant, inserted: 0, updated: 2, unchanged: 1, rejected: 0 }]);
    const after = await snapshot(tenant);
    t.not(after.rows[0]!.xmin, before.rows[0]!.xmin, 'a: rewritten');
    t.equal(after.rows[0]!.number_of_employees, 774);
    t.same(
      after.children.filter((child) => child.permalink === 'b' && child.kind === 'office').map((child) => child.city),
      ['Elsewhere'],
      'b: its offices replaced',
    );
    t.same(
      after.children.filter((child) => child.permalink === 'c'),
      before.children.filter((child) => child.permalink === 'c'),
      'c: its child rows untouched',
    );

    await db.none('UPDATE companies SET content_hash = NULL WHERE tenant = $1', [tenant]);
    const same = [rec(tenant, 'a', 6, { doc: doc('a', { number_of_employees: 774 }), requestId: 'req-2' })];
    t.match(await writer.writeBatch(batch(group, same, 7)), { updated: 1, unchanged: 0 }, 'a row from before the hash: updated');
    t.match(await writer.writeBatch(batch(group, [{ ...same[0]!, offset: '7' }], 8)), { updated: 0, unchanged: 1 }, 'then unchanged');
  });

  t.test(`[${method}] a replayed batch is skipped and changes nothing`, async (t) => {
    const tenant = newTenant();
    const group = newGroup();
    const records = [rec(tenant, 'a', 100), rec(tenant, 'b', 101)];
    const first = await writer.writeBatch(batch(group, records, 103));
    t.equal(first.inserted, 2);
    const before = await companies(tenant);
    await new Promise((resolve) => setTimeout(resolve, 20));

    let hookCalls = 0;
    const replay = await writer.writeBatch(batch(group, records, 103), { beforeCommit: async () => void hookCalls++ });
    t.same(replay, { inserted: 0, updated: 0, unchanged: 0, rejected: [], collapsed: 0, outdated: 0, alreadyCommitted: 0, perRequest: [], skipped: true });
    t.equal(hookCalls, 0, 'no hook for a skipped batch');
    const after = await companies(tenant);
    t.equal(after.length, before.length);
    t.same(
      after.map((row) => row.loaded_at.getTime()),
      before.map((row) => row.loaded_at.getTime()),
      'loaded_at unchanged',
    );

    const older = await writer.writeBatch(batch(group, [rec(tenant, 'a', 50)], 51));
    t.equal(older.skipped, true, 'an older batch is skipped too');
    t.equal(await storedOffset(group), '103');
  });

  t.test(`[${method}] the same batch written twice at once: the offset row lock lets exactly one write it`, async (t) => {
    const tenant = newTenant();
    const group = newGroup();
    const records = [rec(tenant, 'c1', 0), rec(tenant, 'c2', 1), rec(tenant, 'c3', 2)];
    const results = await Promise.all([writer.writeBatch(batch(group, records, 3)), writer.writeBatch(batch(group, records, 3))]);
    t.same(results.map((r) => r.skipped).sort(), [false, true]);
    t.same(results.map((r) => r.inserted).sort(), [0, 3]);
    t.equal((await companies(tenant)).length, 3);
  });

  t.test(`[${method}] a partial overlap writes only the records at or after the stored offset`, async (t) => {
    const tenant = newTenant();
    const group = newGroup();
    await writer.writeBatch(
      batch(
        group,
        [0, 1, 2, 3, 4].map((offset) => rec(tenant, `p${offset}`, offset)),
        5,
      ),
    );
    const result = await writer.writeBatch(
      batch(
        group,
        [3, 4, 5, 6, 7].map((offset) => rec(tenant, `p${offset}`, offset, { doc: doc(`p${offset}`, { name: `again ${offset}` }), requestId: 'req-2' })),
        8,
      ),
    );
    t.match(result, { inserted: 3, updated: 0, alreadyCommitted: 2, skipped: false });
    t.same(result.perRequest, [{ requestId: 'req-2', tenant, inserted: 3, updated: 0, unchanged: 0, rejected: 0 }]);
    const names = (await companies(tenant)).map((row) => row.name);
    t.same(names, ['Company p0', 'Company p1', 'Company p2', 'Company p3', 'Company p4', 'again 5', 'again 6', 'again 7']);
    t.equal(await storedOffset(group), '8');
  });

  t.test(`[${method}] child rows are replaced on each upsert`, async (t) => {
    const tenant = newTenant();
    const group = newGroup();
    const offices = [
      {
        description: 'HQ',
        address1: '1 Main St',
        address2: '',
        zip_code: '94107',
        city: 'San Francisco',
        state_code: 'CA',
        country_code: 'USA',
        latitude: 37.77,
        longitude: -122.41,
        extra: 'kept',
      },
      { description: 'Wrong types', address1: 42, zip_code: 94107, city: ['x'], latitude: 'north', longitude: null },
      { city: 'Berlin' },
    ];
    const rounds = [
      { round_code: 'a', raised_amount: 1500000.5, raised_currency_code: 'USD', funded_year: 2010, funded_month: 3, funded_day: 1 },
      { round_code: 7, raised_amount: '5M', funded_year: '2011', funded_month: 1.5 },
    ];
    await writer.writeBatch(batch(group, [rec(tenant, 'k', 0, { doc: doc('k', { offices, funding_rounds: rounds }) }), rec(tenant, 'other', 1)], 2));

    const officeRows = await db.any('SELECT * FROM company_offices WHERE tenant = $1 AND permalink = $2 ORDER BY position', [tenant, 'k']);
    t.same(officeRows, [
      {
        tenant,
        permalink: 'k',
        position: 0,
        description: 'HQ',
        address1: '1 Main St',
        address2: '',
        zip_code: '94107',
        city: 'San Francisco',
        state_code: 'CA',
        country_code: 'USA',
        latitude: 37.77,
        longitude: -122.41,
      },
      {
        tenant,
        permalink: 'k',
        position: 1,
        description: 'Wrong types',
        address1: null,
        address2: null,
        zip_code: null,
        city: null,
        state_code: null,
        country_code: null,
        latitude: null,
        longitude: null,
      },
      {
        tenant,
        permalink: 'k',
        position: 2,
        description: null,
        address1: null,
        address2: null,
        zip_code: null,
        city: 'Berlin',
        state_code: null,
        country_code: null,
        latitude: null,
        longitude: null,
      },
    ]);
    const roundRows = await db.any('SELECT * FROM company_funding_rounds WHERE tenant = $1 AND permalink = $2 ORDER BY position', [tenant, 'k']);
    t.same(roundRows, [
      {
        tenant,
        permalink: 'k',
        position: 0,
        round_code: 'a',
        raised_amount: '1500000.5',
        raised_currency_code: 'USD',
        funded_year: 2010,
        funded_month: 3,
        funded_day: 1,
      },
      {
        tenant,
        permalink: 'k',
        position: 1,
        round_code: null,
        raised_amount: null,
        raised_currency_code: null,
        funded_year: null,
        funded_month: null,
        funded_day: null,
      },
    ]);
    const otherOffices = await db.one('SELECT count(*)::int AS n FROM company_offices WHERE tenant = $1 AND permalink = $2', [tenant, 'other']);
    t.equal(otherOffices.n, 2, 'the sample record has two offices');

    const second = await writer.writeBatch(batch(group, [rec(tenant, 'k', 2, { doc: doc('k', { offices: [{ city: 'Paris' }], funding_rounds: null }) })], 3));
    t.equal(second.updated, 1);
    t.same(await db.any('SELECT position, city FROM company_offices WHERE tenant = $1 AND permalink = $2 ORDER BY position', [tenant, 'k']), [
      { position: 0, city: 'Paris' },
    ]);
    t.same(await db.any('SELECT * FROM company_funding_rounds WHERE tenant = $1 AND permalink = $2', [tenant, 'k']), []);
    t.equal(
      (await db.one('SELECT count(*)::int AS n FROM company_offices WHERE tenant = $1 AND permalink = $2', [tenant, 'other'])).n,
      2,
      'other companies untouched',
    );
  });

  t.test(`[${method}] bad rows are rejected alone; their neighbours are written`, async (t) => {
    const tenant = newTenant();
    const group = newGroup();
    const records = Array.from({ length: 11 }, (_, i) => rec(tenant, `n${String(i).padStart(2, '0')}`, i));
    records[4] = rec(tenant, 'n04', 4, { doc: doc('n04', { number_of_employees: 30000000000 }) });
    const result = await writer.writeBatch(batch(group, records, 11));
    t.equal(result.inserted, 10);
    t.equal(result.rejected.length, 1);
    t.equal(result.rejected[0]!.code, '22003');
    t.match(result.rejected[0]!.message, /out of range/);
    t.equal(result.rejected[0]!.record.permalink, 'n04');
    t.same(result.perRequest, [{ requestId: 'req-1', tenant, inserted: 10, updated: 0, unchanged: 0, rejected: 1 }]);
    const rows = await companies(tenant);
    t.equal(rows.length, 10);
    t.notOk(rows.some((row) => row.permalink === 'n04'));
    t.equal((await db.one('SELECT count(*)::int AS n FROM company_offices WHERE tenant = $1', [tenant])).n, 20, 'children of the good rows written');
    t.equal(await storedOffset(group), '11');

    // Several bad rows of different kinds, small chunks: halving inside each chunk.
    const tenant2 = newTenant();
    const small = createCompanyWriter(postgres, { method, chunkSize: 4 });
    const mixed = Array.from({ length: 13 }, (_, i) => rec(tenant2, `m${String(i).padStart(2, '0')}`, i));
    mixed[1] = rec(tenant2, 'm01', 1, { doc: doc('m01', { funding_rounds: [{ funded_year: 1e12 }] }) });
    mixed[6] = rec(tenant2, 'm06', 6, { doc: doc('m06', { name: null }) });
    mixed[7] = rec(tenant2, 'm07', 7, { doc: doc('m07', { note: 'nul \u0000 in the document' }) });
    mixed[12] = rec(tenant2, 'm12', 12, { doc: doc('m12', { name: 'nul \u0000 in a column' }) });
    const mixedResult = await small.writeBatch(batch(newGroup(), mixed, 13));
    t.equal(mixedResult.inserted, 9);
    t.same(
      mixedResult.rejected.map((r) => [r.record.permalink, r.code]),
      [
        ['m01', '22003'],
        ['m06', '23502'],
        ['m07', '22P05'],
        ['m12', '22021'],
      ],
    );
    t.equal((await companies(tenant2)).length, 9);
  });

  t.test(`[${method}] a rejected last version falls back to the one before it`, async (t) => {
    const tenant = newTenant();
    const group = newGroup();
    const result = await writer.writeBatch(
      batch(
        group,
        [
          rec(tenant, 'v', 0, { doc: doc('v', { name: 'v1' }), requestId: 'r1' }),
          rec(tenant, 'v', 1, { doc: doc('v', { name: 'v2' }), requestId: 'r2' }),
          rec(tenant, 'v', 2, { doc: doc('v', { name: 'v3', number_of_employees: 30000000000 }), requestId: 'r3' }),
        ],
        3,
      ),
    );
    t.match(result, { inserted: 1, updated: 0, collapsed: 1 });
    t.same(
      result.rejected.map((r) => r.record.offset),
      ['2'],
    );
    t.equal((await companies(tenant))[0]?.name, 'v2');
    t.same(
      result.perRequest.sort((p, q) => p.requestId.localeCompare(q.requestId)),
      [
        { requestId: 'r1', tenant, inserted: 0, updated: 0, unchanged: 1, rejected: 0 },
        { requestId: 'r2', tenant, inserted: 1, updated: 0, unchanged: 0, rejected: 0 },
        { requestId: 'r3', tenant, inserted: 0, updated: 0, unchanged: 0, rejected: 1 },
      ],
    );
  });

  t.test(`[${method}] a second pass in one transaction writes only its own rows`, async (t) => {
    const tenant = newTenant();
    const group = newGroup();
    const queries = captureQueries(t);
    // Pass 1 writes a and b's last version is refused before any SQL (a NUL in a column), so
    // pass 2 writes b's version before it — in the same transaction, after pass 1's rows.
    const result = await writer.writeBatch(
      batch(
        group,
        [
          rec(tenant, 'a', 0),
          rec(tenant, 'b', 1, { doc: doc('b', { name: 'b1' }) }),
          rec(tenant, 'b', 2, { doc: doc('b', { name: 'nul \u0000 in a column' }) }),
        ],
        3,
      ),
    );
    queries.stop();
    t.match(result, { inserted: 2, updated: 0, collapsed: 0 });
    t.same(
      result.rejected.map((r) => [r.record.offset, r.code]),
      [['2', '22021']],
    );
    t.same(
      (await companies(tenant)).map((row) => [row.permalink, row.name]),
      [
        ['a', 'Company a'],
        ['b', 'b1'],
      ],
    );
    t.equal((await db.one('SELECT count(*)::int AS n FROM company_offices WHERE tenant = $1', [tenant])).n, 4, 'two offices each, none twice');
    if (method === 'copy') {
      const merges = queries.filter((q) => /INSERT INTO companies \(.*\) SELECT/s.test(q));
      t.equal(merges.length, 2, 'one merge per pass');
      const emptied = queries.filter((q) => /DELETE FROM pg_temp\.company_writer_companies(?! AS)/.test(q));
      t.equal(emptied.length, 1, 'the staging tables are emptied once: before the second pass, not at the start of the transaction');
    }
  });

  t.test(`[${method}] the hook runs inside the transaction; if it throws, rows and offset roll back`, async (t) => {
    const tenant = newTenant();
    const group = newGroup();
    const records = [rec(tenant, 'h1', 0), rec(tenant, 'h2', 1)];
    let seen: BatchWriteResult | undefined;
    let visibleOutside: number | undefined;
    const failure = new Error('producing the events failed');
    await t.rejects(
      writer.writeBatch(batch(group, records, 2), {
        beforeCommit: async (result) => {
          seen = result;
          visibleOutside = (await companies(tenant)).length; // another connection: must not see the rows yet
          throw failure;
        },
      }),
      failure,
      'the hook error is rethrown as is',
    );
    t.match(seen, { inserted: 2, skipped: false });
    t.equal(visibleOutside, 0);
    t.equal((await companies(tenant)).length, 0, 'no rows');
    t.equal(await storedOffset(group), undefined, 'no offset');

    let committed = false;
    const result = await writer.writeBatch(batch(group, records, 2), { beforeCommit: async () => void (committed = true) });
    t.ok(committed);
    t.equal(result.inserted, 2);
    t.equal((await companies(tenant)).length, 2);
  });

  t.test(`[${method}] outbox events are committed with the batch or not at all, and stay until deleted`, async (t) => {
    const tenant = newTenant();
    const group = newGroup();
    const records = [rec(tenant, 'o1', 0), rec(tenant, 'o2', 1)];
    const eventsOf = (result: BatchWriteResult) => [{ kind: 'loaded', inserted: result.inserted, note: "it's \t $1 \u00e9" }];

    // The commit fails (the hook throws after the outbox row was written): no outbox entry.
    await t.rejects(writer.writeBatch(batch(group, records, 2, 3), { outbox: eventsOf, beforeCommit: async () => Promise.reject(new Error('no commit')) }));
    t.same(await offsetReader.pendingOutbox(group, topic, [3]), [], 'a batch that did not commit left no events');

    const result = await writer.writeBatch(batch(group, records, 2, 3), { outbox: eventsOf });
    t.ok(result.outbox, 'the committed batch names its outbox entry');
    t.same(result.outbox?.events, [{ kind: 'loaded', inserted: 2, note: "it's \t $1 \u00e9" }]);
    const pending = await offsetReader.pendingOutbox(group, topic, [3, 4]);
    t.same(pending, [result.outbox], 'pending until deleted, events as stored');
    t.same(await offsetReader.pendingOutbox(group, topic, [4]), [], 'only the partitions asked for');

    // A replay of the same batch is skipped: it stores no second entry.
    const replay = await writer.writeBatch(batch(group, records, 2, 3), { outbox: eventsOf });
    t.ok(replay.skipped);
    t.equal(replay.outbox, undefined);
    t.equal((await offsetReader.pendingOutbox(group, topic, [3])).length, 1);

    await offsetReader.deleteOutbox([result.outbox!.id]);
    t.same(await offsetReader.pendingOutbox(group, topic, [3]), [], 'gone once deleted');
    await offsetReader.deleteOutbox([result.outbox!.id]); // deleting twice is harmless (two senders)
  });

  t.test(`[${method}] storedOffsets returns what was committed, per partition`, async (t) => {
    const tenant = newTenant();
    const group = newGroup();
    t.same(await writer.storedOffsets(group, topic), new Map());
    await writer.writeBatch(batch(group, [rec(tenant, 'a', 7)], 9, 0));
    await writer.writeBatch(batch(group, [rec(tenant, 'b', 40)], 41, 2));
    await writer.writeBatch(batch(group, [], 12, 0)); // only skipped messages: the offset still moves
    t.same(
      await writer.storedOffsets(group, topic),
      new Map([
        [0, '12'],
        [2, '41'],
      ]),
    );
    t.same(await writer.storedOffsets(group, 'another.topic'), new Map());
    t.same(await writer.storedOffsets(newGroup(), topic), new Map());
  });

  t.test(`[${method}] SQL, shell and pg-promise variable text is stored literally`, async (t) => {
    const tenant = newTenant();
    const group = newGroup();
    const nasty = {
      name: "Robert'); DROP TABLE companies;--",
      category_code: '$(rm -rf /)',
      homepage_url: "${name} $1 $/x/ :raw \\x00 E'\\\\'",
      email_address: '`id`; \\ "quoted" \'single\'',
      offices: [{ city: "'; DELETE FROM company_offices;--", description: '$$ dollar $$ $tag$' }],
      // COPY text format's own specials: field and row separators, escapes, the end-of-data marker, the null marker.
      funding_rounds: [
        { round_code: 'a\tb\nc\rd\\e', raised_currency_code: '\\.' },
        { round_code: '\\N', raised_currency_code: '\n\\.\n' },
      ],
    };
    const permalink = "it's-$1";
    await writer.writeBatch(batch(group, [rec(tenant, permalink, 0, { doc: doc(permalink, nasty) })], 1));
    const row = (await companies(tenant))[0]!;
    t.equal(row.permalink, permalink);
    t.equal(row.name, nasty.name);
    t.equal(row.category_code, nasty.category_code);
    t.equal(row.homepage_url, nasty.homepage_url);
    t.equal(row.email_address, nasty.email_address);
    t.same(row.document, doc(permalink, nasty));
    t.same(await db.any('SELECT city, description FROM company_offices WHERE tenant = $1', [tenant]), [
      { city: nasty.offices[0]!.city, description: nasty.offices[0]!.description },
    ]);
    t.same(await db.any('SELECT round_code, raised_currency_code FROM company_funding_rounds WHERE tenant = $1 ORDER BY position', [tenant]), [
      { round_code: nasty.funding_rounds[0]!.round_code, raised_currency_code: nasty.funding_rounds[0]!.raised_currency_code },
      { round_code: nasty.funding_rounds[1]!.round_code, raised_currency_code: nasty.funding_rounds[1]!.raised_currency_code },
    ]);
    t.ok((await db.one("SELECT to_regclass('companies') IS NOT NULL AS exists")).exists, 'the table is still there');
  });

  t.test(`[${method}] perRequest counts add up per request id`, async (t) => {
    const tenant = newTenant();
    const group = newGroup();
    await writer.writeBatch(
      batch(group, [rec(tenant, 'old', 0, { requestId: 'earlier' }), rec(tenant, 'same', 0, { requestId: 'earlier', recordIndex: 1 })], 1),
    );
    const records = [
      rec(tenant, 'old', 1, { requestId: 'imp-1', doc: doc('old', { name: 'renamed' }) }), // updated
      rec(tenant, 'same', 8, { requestId: 'imp-2' }), // unchanged (the copy stored by "earlier")
      rec(tenant, 'q1', 2, { requestId: 'imp-1' }), // inserted
      rec(tenant, 'q2', 3, { requestId: 'imp-2' }), // superseded by the newer copy at offset 6 → unchanged for imp-2
      rec(tenant, 'q3', 4, { requestId: 'imp-1', doc: doc('q3', { number_of_employees: 30000000000 }) }), // rejected
      rec(tenant, 'q4', 5, { requestId: 'imp-2' }), // inserted
      rec(tenant, 'q2', 6, { requestId: 'imp-1', acceptedAt: 2_000 }), // inserted
      rec(tenant, 'q5', 7, { requestId: 'imp-2', doc: doc('q5', { founded_year: 9999999999 }) }), // rejected
    ];
    const result = await writer.writeBatch(batch(group, records, 9));
    const per = new Map(result.perRequest.map((counts) => [counts.requestId, counts]));
    t.same(per.get('imp-1'), { requestId: 'imp-1', tenant, inserted: 2, updated: 1, unchanged: 0, rejected: 1 });
    t.same(per.get('imp-2'), { requestId: 'imp-2', tenant, inserted: 1, updated: 0, unchanged: 2, rejected: 1 });
    for (const requestId of ['imp-1', 'imp-2']) {
      const counts = per.get(requestId)!;
      const sent = records.filter((r) => r.source.requestId === requestId).length;
      t.equal(counts.inserted + counts.updated + counts.unchanged + counts.rejected, sent, `${requestId}: every record accounted for`);
    }
    const totals = result.perRequest.reduce((sum, c) => sum + c.inserted + c.updated + c.unchanged + c.rejected, 0);
    t.equal(totals, result.inserted + result.updated + result.unchanged + result.rejected.length + result.collapsed + result.outdated);
    t.equal(totals, records.length);
  });

  t.test(`[${method}] a large batch takes a handful of statements`, async (t) => {
    const tenant = newTenant();
    const group = newGroup();
    const queries = captureQueries(t);
    const records = Array.from({ length: 2500 }, (_, i) => rec(tenant, `big-${i}`, i));
    const result = await writer.writeBatch(batch(group, records, 2500));
    queries.stop();
    t.equal(result.inserted, 2500);
    if (method === 'insert') {
      // BEGIN, offset lock, the stored versions, 3 chunks, offset update, COMMIT
      t.equal(queries.length, 8, 'no per-row round trips');
      t.equal(queries.filter((q) => q.includes('INSERT INTO "companies"')).length, 3, 'three upsert chunks of ≤ 1000 rows');
    } else {
      // BEGIN, offset lock, staging set-up, one merge, offset update, COMMIT (the three COPYs go
      // through the driver itself): the statement count does not grow with the batch.
      t.equal(queries.length, 6, 'no per-row round trips');
      t.equal(queries.filter((q) => /INSERT INTO companies \(.*\) SELECT/s.test(q)).length, 1, 'one merge from the staging table');
      t.notOk(
        queries.some((q) => q.includes('INSERT INTO "companies"')),
        'no multi-row INSERT',
      );
      t.ok(queries.join('').length < 8192, 'no row travels as SQL text (a few KB of statements for megabytes of rows)');
    }
    t.equal((await db.one('SELECT count(*)::int AS n FROM companies WHERE tenant = $1', [tenant])).n, 2500);
    t.equal((await db.one('SELECT count(*)::int AS n FROM company_offices WHERE tenant = $1', [tenant])).n, 5000);
  });

  t.test(`[${method}] a database that is unreachable or goes away: retriable SINK_DB_UNAVAILABLE, nothing committed`, async (t) => {
    const unreachable = createPostgres({ ...config.postgres, port: 1 });
    t.teardown(() => unreachable.close());
    const tenant = newTenant();
    const group = newGroup();
    const error = await createCompanyWriter(unreachable, { method })
      .writeBatch(batch(group, [rec(tenant, 'a', 0)], 1))
      .catch((e: unknown) => e);
    t.type(error, PipelineError);
    t.match(error, { code: 'SINK_DB_UNAVAILABLE', retriable: true });

    // The writer's connection is terminated while its transaction is open.
    const applicationName = `itest-writer-kill-${random()}`;
    const doomed = createPostgres({ ...config.postgres, poolMax: 1 }, { applicationName });
    t.teardown(() => doomed.close());
    const killed = await createCompanyWriter(doomed, { method })
      .writeBatch(batch(group, [rec(tenant, 'a', 0), rec(tenant, 'b', 1)], 2), {
        beforeCommit: async () => {
          await db.any('SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = $1', [applicationName]);
        },
      })
      .catch((e: unknown) => e);
    t.type(killed, PipelineError);
    t.match(killed, { code: 'SINK_DB_UNAVAILABLE', retriable: true });
    t.equal((await companies(tenant)).length, 0, 'no rows');
    t.equal(await storedOffset(group), undefined, 'no offset');

    // The pool recovers: the same batch goes through on a fresh connection.
    const retried = await createCompanyWriter(doomed, { method }).writeBatch(batch(group, [rec(tenant, 'a', 0), rec(tenant, 'b', 1)], 2));
    t.equal(retried.inserted, 2);
    t.equal(await storedOffset(group), '2');
  });

  t.test(`[${method}] malformed batches are refused before touching the database`, async (t) => {
    const group = newGroup();
    await t.rejects(writer.writeBatch(batch(group, [rec('writer-none', 'a', 5)], 5)), { code: 'SINK_BAD_BATCH', retriable: false });
    await t.rejects(writer.writeBatch({ consumerGroup: group, topic, partition: 0, records: [], nextOffset: '-1' }), { code: 'SINK_BAD_BATCH' });
    t.same(await writer.storedOffsets(group, topic), new Map());
  });
}
