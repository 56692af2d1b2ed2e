/**
 * The Postgres sink's write path: one Kafka partition batch of normalised company records →
 * one database transaction holding the company rows, their child rows and the partition's next
 * offset (exactly once: a batch replayed after a crash finds its offset already stored), and the
 * events announcing the batch in sink_outbox (`hooks.outbox`), sent by the caller after the commit.
 *
 * Two ways to write the rows of a batch (`method`), both with the same results:
 * - `copy` (the default): the rows are streamed with COPY FROM STDIN into three session-local
 *   staging tables, then merged by one INSERT … SELECT … ON CONFLICT plus the child-row DELETEs
 *   and INSERT … SELECTs. Happy path: BEGIN, the offset lock, one set-up statement, three COPYs,
 *   one merge, the offset update, COMMIT — whatever the batch size. The data travels as COPY
 *   text (tab-separated, escaped), never as SQL, and PostgreSQL parses it with its type input
 *   functions instead of parsing a multi-megabyte statement: measured by bench:pipeline's
 *   "company writer" rows against `insert`.
 * - `insert`: one multi-statement query per chunk of `chunkSize` companies (multi-row upsert +
 *   child deletes + child inserts), its SQL text built by pg-promise's formatting
 *   (helpers.insert / helpers.values / as.format) and sent without values, so nothing in the
 *   data is ever interpreted as SQL or as a pg-promise variable (`$1`, `${x}`).
 *
 * Order: a row is written only over an older copy of its company. A copy's version is
 * (source_accepted_at, source_request_id, source_record_index): the import the ingress accepted
 * later wins, and within one file the later record. The upsert compares versions (ON CONFLICT …
 * WHERE), so the final row is the newest copy whatever order the copies are loaded in, across
 * batches, partitions and replicas. An older copy is counted in `outdated` and writes nothing.
 *
 * Unchanged copies: every row carries the content hash of its copy's rows (content-hash.ts). A
 * copy at least as new as the stored one with the same hash (a replay of loaded data) is counted
 * in `unchanged`: its child rows and data columns are not touched, and when it is newer only the
 * row's source_* columns (its version) advance, so that a copy older than it but newer than the
 * stored one, loaded after it, is still outdated. A row stored without a hash (before migration
 * 0010) counts as updated once.
 *
 * Bad rows: a COPY or merge that fails with a data error (SQLSTATE class 22 or 23) is rolled
 * back to its savepoint and the batch goes the `insert` way, where a chunk that fails is rolled
 * back and retried in halves until the bad rows are alone; those are returned as `rejected`, the
 * rest is written. One bad row therefore costs its batch the slower path, never its neighbours.
 * Any other database failure aborts the whole transaction and surfaces as a retriable
 * PipelineError `SINK_DB_UNAVAILABLE`.
 */
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type pg from 'pg';
import { from as copyFrom } from 'pg-copy-streams';
import type { ColumnSet, ITask } from 'pg-promise';
import { PipelineError, errorMessage } from '../../core/errors.js';
import type { Postgres } from '../../core/postgres.js';
import { contentHash } from './content-hash.js';
import { advanceStoredOffset, lockStoredOffset, readStoredOffsets } from './sink-offsets.js';

export interface SinkRecord {
  tenant: string;
  permalink: string;
  /** The whole normalised record. */
  document: Record<string, unknown>;
  /**
   * `document` as the JSON text it was parsed from, when the caller has it: stored as is
   * instead of serialising the object again (PostgreSQL parses it into jsonb either way).
   */
  documentJson?: string;
  /** Where the record came from; `acceptedAt` (epoch ms, when the ingress accepted the file) leads its version. */
  source: { requestId: string; bucket: string; key: string; recordIndex: number; acceptedAt: number };
  /** Kafka offset of the message that carried it. */
  offset: string;
}

export interface PartitionBatch {
  consumerGroup: string;
  topic: string;
  partition: number;
  records: SinkRecord[];
  /** Offset after the last message of the batch, including messages that were skipped. */
  nextOffset: string;
}

export interface RejectedRecord {
  record: SinkRecord;
  /** Postgres SQLSTATE (or ours: 22021 for a NUL character, which the wire protocol cannot carry). */
  code: string;
  message: string;
}

export interface RequestLoadCounts {
  requestId: string;
  tenant: string;
  inserted: number;
  updated: number;
  /** Records that wrote no data: identical to the stored copy, or superseded (`collapsed`, `outdated`). */
  unchanged: number;
  rejected: number;
}

export interface BatchWriteResult {
  /** Company rows inserted. */
  inserted: number;
  /** Company rows whose data changed (superseded records are not counted here, see `collapsed`). */
  updated: number;
  /**
   * Company rows left as they were: the copy's data (row and child rows, see content-hash.ts)
   * are the stored ones. Only the row's version columns advance, when the copy is newer.
   */
  unchanged: number;
  rejected: RejectedRecord[];
  /** Records superseded by a newer one of the same key in this batch (not written). */
  collapsed: number;
  /** Records older than the copy of their company already stored (not written). */
  outdated: number;
  /** Records below the stored next offset (a partial overlap with a committed batch): ignored, counted nowhere else. */
  alreadyCommitted: number;
  perRequest: RequestLoadCounts[];
  /** True if the stored offset was already >= nextOffset: the batch was written before, nothing done. */
  skipped: boolean;
  /** The sink_outbox row holding the batch's events (`hooks.outbox`), committed with the rows. */
  outbox?: OutboxEntry;
}

/** Events stored in sink_outbox with a batch, to be sent once the batch is committed. */
export interface OutboxEntry {
  id: string;
  partition: number;
  events: unknown[];
}

export interface WriteHooks {
  /**
   * The events announcing the batch: stored in sink_outbox in the batch's transaction (so they
   * exist if and only if the batch is committed) and returned as `result.outbox`.
   */
  outbox?: (result: BatchWriteResult) => unknown[];
  /** Runs inside the transaction just before COMMIT; if it throws, nothing is committed. */
  beforeCommit?: (result: BatchWriteResult) => Promise<void>;
}

export interface CompanyWriter {
  /** One database transaction: rows of the batch + the partition's next offset in sink_offsets (+ its outbox events). */
  writeBatch(batch: PartitionBatch, hooks?: WriteHooks): Promise<BatchWriteResult>;
  /** Outbox entries not yet sent for these partitions of a topic and group, oldest first. */
  pendingOutbox(consumerGroup: string, topic: string, partitions: readonly number[]): Promise<OutboxEntry[]>;
  /** Forgets outbox entries whose events Kafka acknowledged. */
  deleteOutbox(ids: readonly string[]): Promise<void>;
  /** The stored next offset of each partition of a topic for a group (what to seek to on assignment). */
  storedOffsets(consumerGroup: string, topic: string): Promise<Map<number, string>>;
}

export type WriteMethod = 'copy' | 'insert';

export interface CompanyWriterOptions {
  /** How rows reach the tables (see the module comment). Default `copy`. */
  method?: WriteMethod;
  /** Most company rows (and most child rows) per INSERT statement of the `insert` way. Default 1000. */
  chunkSize?: number;
}

export const DEFAULT_CHUNK_SIZE = 1000;

const SAVEPOINT = 'company_writer_chunk';

/** The columns of each table that a record fills, in COPY and INSERT order (bench/pipeline.ts COPYs with them too). */
export const companyColumnNames = [
  'tenant',
  'permalink',
  'name',
  'category_code',
  'founded_year',
  'number_of_employees',
  'homepage_url',
  'email_address',
  'created_at',
  'updated_at',
  'document',
  'source_request_id',
  'source_bucket',
  'source_key',
  'source_record_index',
  'source_accepted_at',
  'content_hash',
] as const satisfies ReadonlyArray<keyof CompanyRow>;
/** The columns saying which copy a row is (its version and where it came from), not what it holds. */
const sourceColumnNames = ['source_request_id', 'source_bucket', 'source_key', 'source_record_index', 'source_accepted_at'] as const satisfies ReadonlyArray<
  keyof CompanyRow
>;
export const officeColumnNames = [
  'tenant',
  'permalink',
  'position',
  'description',
  'address1',
  'address2',
  'zip_code',
  'city',
  'state_code',
  'country_code',
  'latitude',
  'longitude',
] as const satisfies ReadonlyArray<keyof OfficeRow>;
export const roundColumnNames = [
  'tenant',
  'permalink',
  'position',
  'round_code',
  'raised_amount',
  'raised_currency_code',
  'funded_year',
  'funded_month',
  'funded_day',
] as const satisfies ReadonlyArray<keyof FundingRoundRow>;

/**
 * Session-local staging tables of the `copy` way (pg_temp: every connection has its own, so
 * writers never see each other's rows). Same columns and types as the targets, no keys: the
 * targets' constraints are checked by the merge. Emptied at every commit; a pass empties them
 * itself because one transaction may merge more than once.
 */
const STAGE = {
  companies: 'pg_temp.company_writer_companies',
  offices: 'pg_temp.company_writer_offices',
  rounds: 'pg_temp.company_writer_rounds',
} as const;
const STAGE_DDL = [
  `CREATE TEMP TABLE IF NOT EXISTS company_writer_companies (LIKE companies INCLUDING DEFAULTS) ON COMMIT DELETE ROWS`,
  `CREATE TEMP TABLE IF NOT EXISTS company_writer_offices (LIKE company_offices) ON COMMIT DELETE ROWS`,
  `CREATE TEMP TABLE IF NOT EXISTS company_writer_rounds (LIKE company_funding_rounds) ON COMMIT DELETE ROWS`,
].join(';\n');

/** Connections whose session already has the staging tables (a new or replaced connection is a new object). */
const staged = new WeakSet<pg.Client>();

interface CompanyRow {
  tenant: string;
  permalink: string;
  name: string | null;
  category_code: string | null;
  founded_year: number | null;
  number_of_employees: number | null;
  homepage_url: string | null;
  email_address: string | null;
  created_at: string | null;
  updated_at: string | null;
  document: string;
  source_request_id: string;
  source_bucket: string;
  source_key: string;
  source_record_index: number;
  source_accepted_at: number;
  /** contentHash() of the copy's rows: equal hashes, equal data. */
  content_hash: string;
}

interface OfficeRow {
  tenant: string;
  permalink: string;
  position: number;
  description: string | null;
  address1: string | null;
  address2: string | null;
  zip_code: string | null;
  city: string | null;
  state_code: string | null;
  country_code: string | null;
  latitude: number | null;
  longitude: number | null;
}

interface FundingRoundRow {
  tenant: string;
  permalink: string;
  position: number;
  round_code: string | null;
  raised_amount: number | null;
  raised_currency_code: string | null;
  funded_year: number | null;
  funded_month: number | null;
  funded_day: number | null;
}

/** One record of the batch with its rows, ready to write. */
interface Prepared {
  record: SinkRecord;
  key: string;
  company: CompanyRow;
  offices: OfficeRow[];
  rounds: FundingRoundRow[];
}

type Outcome = { kind: 'inserted' } | { kind: 'updated' } | { kind: 'unchanged' } | { kind: 'outdated' } | { kind: 'rejected'; code: string; message: string };

type Version = Pick<SinkRecord['source'], 'acceptedAt' | 'requestId' | 'recordIndex'>;

/** A copy's version, in the upsert's order: acceptance time, request id (byte order), record index. */
function compareVersions(a: Version, b: Version): number {
  if (a.acceptedAt !== b.acceptedAt) return a.acceptedAt < b.acceptedAt ? -1 : 1;
  if (a.requestId !== b.requestId) return Buffer.compare(Buffer.from(a.requestId), Buffer.from(b.requestId));
  return a.recordIndex - b.recordIndex;
}

/** `alias`'s version as a row value, comparable with `<=` (request ids in byte order, as compareVersions). */
const versionOf = (alias: string) => `(${alias}.source_accepted_at, ${alias}.source_request_id COLLATE "C", ${alias}.source_record_index)`;

/** Wraps an error thrown by the caller's hook so it is rethrown as is, not classified as a database error. */
/** A beforeCommit hook threw: the writer rethrows what it threw, and keeps the connection. */
class HookFailure extends Error {
  constructor(readonly error: unknown) {
    super('the beforeCommit hook failed', { cause: error });
  }
}

export function createCompanyWriter(postgres: Postgres, options: CompanyWriterOptions = {}): CompanyWriter {
  const chunkSize = options.chunkSize ?? DEFAULT_CHUNK_SIZE;
  if (!Number.isSafeInteger(chunkSize) || chunkSize < 1) {
    throw new PipelineError('SINK_BAD_OPTIONS', `chunkSize must be a positive integer, got ${String(options.chunkSize)}`);
  }
  const method = options.method ?? 'copy';
  if (method !== 'copy' && method !== 'insert') {
    throw new PipelineError('SINK_BAD_OPTIONS', `method must be copy or insert, got ${String(options.method)}`);
  }
  const { pgp, db } = postgres;
  const { ColumnSet } = pgp.helpers;

  // Text literals cast to their column types: the timestamps as ISO strings, the document as the
  // JSON text prepare() holds. loaded_at is the database's now().
  const casts: Partial<Record<(typeof companyColumnNames)[number], string>> = { created_at: 'timestamptz', updated_at: 'timestamptz', document: 'jsonb' };
  const companyColumns: ColumnSet = new ColumnSet(
    [
      ...companyColumnNames.map((name) => (casts[name] === undefined ? name : { name, cast: casts[name] })),
      { name: 'loaded_at', mod: ':raw', init: () => 'now()' },
    ],
    { table: 'companies' },
  );
  // A conflicting row is updated only by a copy at least as new and with other data; an older
  // copy, or one with the stored data, returns no row. Writers set unchanged copies aside before
  // (they only advance the row's version); the hash test keeps a row that a concurrent writer
  // gave these data in the meantime.
  const upsertSuffix =
    ' ON CONFLICT (tenant, permalink) DO UPDATE SET ' +
    companyColumns.assignColumns({ from: 'EXCLUDED', skip: ['tenant', 'permalink'] }) +
    ` WHERE ${versionOf('companies')} <= ${versionOf('EXCLUDED')} AND companies.content_hash IS DISTINCT FROM EXCLUDED.content_hash` +
    ' RETURNING (xmax = 0) AS inserted, tenant, permalink';
  const keyColumns: ColumnSet = new ColumnSet(['tenant', 'permalink']);
  // An unchanged copy's version (the `insert` way): multi-row UPDATE … FROM (VALUES …) AS v keyed by ?tenant, ?permalink.
  const sourceColumns: ColumnSet = new ColumnSet(
    [
      '?tenant',
      '?permalink',
      ...sourceColumnNames.map((name) =>
        name === 'source_accepted_at' ? { name, cast: 'bigint' } : name === 'source_record_index' ? { name, cast: 'integer' } : name,
      ),
    ],
    { table: 'companies' },
  );
  const officeColumns: ColumnSet = new ColumnSet([...officeColumnNames], { table: 'company_offices' });
  const roundColumns: ColumnSet = new ColumnSet([...roundColumnNames], { table: 'company_funding_rounds' });

  /** The statements writing `items` (distinct keys), as one multi-statement text inside a savepoint. */
  function chunkSql(items: Prepared[]): string {
    const statements = [`SAVEPOINT ${SAVEPOINT}`];
    statements.push(
      pgp.helpers.insert(
        items.map((item) => item.company),
        companyColumns,
      ) + upsertSuffix,
    );
    const keys = pgp.helpers.values(
      items.map((item) => item.company),
      keyColumns,
    );
    statements.push(`DELETE FROM company_offices WHERE (tenant, permalink) IN (VALUES ${keys})`);
    statements.push(`DELETE FROM company_funding_rounds WHERE (tenant, permalink) IN (VALUES ${keys})`);
    const offices = items.flatMap((item) => item.offices);
    for (let i = 0; i < offices.length; i += chunkSize) statements.push(pgp.helpers.insert(offices.slice(i, i + chunkSize), officeColumns));
    const rounds = items.flatMap((item) => item.rounds);
    for (let i = 0; i < rounds.length; i += chunkSize) statements.push(pgp.helpers.insert(rounds.slice(i, i + chunkSize), roundColumns));
    statements.push(`RELEASE SAVEPOINT ${SAVEPOINT}`);
    return statements.join(';\n');
  }

  const list = (columns: readonly string[], alias?: string) =>
    columns.map((column) => (alias === undefined ? '' : `${alias}.`) + pgp.as.name(column)).join(', ');
  // The staged companies whose copy the upsert kept (their version is now the stored one): only
  // their child rows are replaced.
  const kept =
    `${STAGE.companies} AS stage JOIN companies AS kept ON kept.tenant = stage.tenant AND kept.permalink = stage.permalink ` +
    `AND ${versionOf('kept')} = ${versionOf('stage')}`;
  const sameKey = (a: string, b: string) => `${a}.tenant = ${b}.tenant AND ${a}.permalink = ${b}.permalink`;
  // Before the upsert: the stored copies of the staged companies, locked in key order; an
  // unchanged copy (same hash, stored copy not newer) advances the stored version only; then the
  // staging table keeps only the copies to write (not outdated, not unchanged).
  const mergeSql = [
    `SELECT stored.tenant, stored.permalink, ${versionOf('stored')} <= ${versionOf('stage')} AS current, ` +
      `stored.content_hash = stage.content_hash AS same FROM companies AS stored JOIN ${STAGE.companies} AS stage ON ${sameKey('stored', 'stage')} ` +
      'ORDER BY stored.tenant, stored.permalink FOR UPDATE OF stored',
    `UPDATE companies AS stored SET ${sourceColumnNames.map((column) => `${column} = stage.${column}`).join(', ')} FROM ${STAGE.companies} AS stage ` +
      `WHERE ${sameKey('stored', 'stage')} AND stored.content_hash = stage.content_hash AND ${versionOf('stored')} < ${versionOf('stage')}`,
    `DELETE FROM ${STAGE.companies} AS stage USING companies AS stored WHERE ${sameKey('stored', 'stage')} ` +
      `AND (${versionOf('stored')} > ${versionOf('stage')} OR stored.content_hash = stage.content_hash)`,
    `INSERT INTO companies (${list(companyColumnNames)}, loaded_at) ` +
      `SELECT ${list(companyColumnNames)}, now() FROM ${STAGE.companies} ORDER BY tenant, permalink` +
      upsertSuffix,
    `DELETE FROM company_offices AS target USING ${kept} WHERE target.tenant = stage.tenant AND target.permalink = stage.permalink`,
    `DELETE FROM company_funding_rounds AS target USING ${kept} WHERE target.tenant = stage.tenant AND target.permalink = stage.permalink`,
    `INSERT INTO company_offices (${list(officeColumnNames)}) SELECT ${list(officeColumnNames, 'child')} FROM ${STAGE.offices} AS child ` +
      `JOIN ${kept} ON child.tenant = stage.tenant AND child.permalink = stage.permalink`,
    `INSERT INTO company_funding_rounds (${list(roundColumnNames)}) SELECT ${list(roundColumnNames, 'child')} FROM ${STAGE.rounds} AS child ` +
      `JOIN ${kept} ON child.tenant = stage.tenant AND child.permalink = stage.permalink`,
    `RELEASE SAVEPOINT ${SAVEPOINT}`,
  ].join(';\n');

  /**
   * The `insert` way replaces child rows by key, so it must not be handed an outdated or an
   * unchanged copy: sets aside from `items` those older than the stored row (outdated) and those
   * with its data (unchanged: only the row's version advances), locking the stored rows.
   */
  async function setAside(t: ITask<unknown>, items: Prepared[], outcomes: Map<string, Outcome>): Promise<Prepared[]> {
    if (items.length === 0) return items;
    const stored = await t.any<{
      tenant: string;
      permalink: string;
      source_accepted_at: string;
      source_request_id: string;
      source_record_index: number;
      content_hash: string | null;
    }>(
      'SELECT c.tenant, c.permalink, c.source_accepted_at, c.source_request_id, c.source_record_index, c.content_hash FROM companies c ' +
        'JOIN unnest($1::text[], $2::text[]) AS k(tenant, permalink) ON c.tenant = k.tenant AND c.permalink = k.permalink ' +
        'ORDER BY c.tenant, c.permalink FOR UPDATE OF c',
      [items.map((item) => item.record.tenant), items.map((item) => item.record.permalink)],
    );
    const copies = new Map(
      stored.map((row) => [
        keyOf(row.tenant, row.permalink),
        {
          version: { requestId: row.source_request_id, acceptedAt: Number(row.source_accepted_at), recordIndex: row.source_record_index },
          hash: row.content_hash,
        },
      ]),
    );
    const advance: Prepared[] = [];
    const write = items.filter((item) => {
      const copy = copies.get(item.key);
      if (copy === undefined) return true;
      const order = compareVersions(copy.version, item.record.source);
      if (order > 0) {
        outcomes.set(item.key, { kind: 'outdated' });
        return false;
      }
      if (copy.hash !== item.company.content_hash) return true;
      outcomes.set(item.key, { kind: 'unchanged' });
      if (order < 0) advance.push(item);
      return false;
    });
    if (advance.length > 0) {
      await t.none(
        pgp.helpers.update(
          advance.map((item) => item.company),
          sourceColumns,
        ) + ' WHERE v.tenant = t.tenant AND v.permalink = t.permalink',
      );
    }
    return write;
  }

  /**
   * The `copy` way for items of distinct keys: COPY into the staging tables, one merge. Returns
   * false, with everything since its savepoint undone, when a row is at fault (data error): the
   * caller then writes the items the `insert` way, which finds the bad rows.
   */
  async function writeByCopy(
    t: ITask<unknown>,
    client: pg.Client,
    items: Prepared[],
    outcomes: Map<string, Outcome>,
    stagingHoldsRows: boolean,
  ): Promise<boolean> {
    const setup = [`SAVEPOINT ${SAVEPOINT}`];
    if (!staged.has(client)) setup.push(STAGE_DDL);
    // Every transaction starts with them empty (ON COMMIT DELETE ROWS; a rollback drops its
    // rows): only a second pass in one transaction finds the first one's rows there.
    if (stagingHoldsRows) setup.push(`DELETE FROM ${STAGE.companies}`, `DELETE FROM ${STAGE.offices}`, `DELETE FROM ${STAGE.rounds}`);
    await t.multi(setup.join(';\n'));
    staged.add(client);
    let results: unknown[][];
    try {
      await copyRows(
        client,
        STAGE.companies,
        companyColumnNames,
        items.map((item) => item.company),
      );
      await copyRows(
        client,
        STAGE.offices,
        officeColumnNames,
        items.flatMap((item) => item.offices),
      );
      await copyRows(
        client,
        STAGE.rounds,
        roundColumnNames,
        items.flatMap((item) => item.rounds),
      );
      results = await t.multi(mergeSql);
    } catch (error) {
      const code = sqlState(error);
      if (code === undefined || !isDataError(code)) throw error;
      await t.multi(`ROLLBACK TO SAVEPOINT ${SAVEPOINT};\nRELEASE SAVEPOINT ${SAVEPOINT}`);
      return false;
    }
    // A copy the upsert returned no row for lost to a newer one a concurrent writer stored meanwhile.
    for (const item of items) outcomes.set(item.key, { kind: 'outdated' });
    for (const row of (results[0] ?? []) as Array<{ tenant: string; permalink: string; current: boolean; same: boolean | null }>) {
      if (row.current && row.same === true) outcomes.set(keyOf(row.tenant, row.permalink), { kind: 'unchanged' });
    }
    for (const row of (results[3] ?? []) as Array<{ inserted: boolean; tenant: string; permalink: string }>) {
      outcomes.set(keyOf(row.tenant, row.permalink), { kind: row.inserted ? 'inserted' : 'updated' });
    }
    return true;
  }

  /**
   * Writes items of distinct keys; a chunk failing with a data error is retried in halves
   * (each attempt in its own savepoint) until the bad rows are isolated.
   */
  async function writeIsolating(t: ITask<unknown>, items: Prepared[], outcomes: Map<string, Outcome>): Promise<void> {
    let results: unknown[][];
    try {
      results = await t.multi(chunkSql(items));
    } catch (error) {
      const code = sqlState(error);
      if (code === undefined || !isDataError(code)) throw error;
      await t.multi(`ROLLBACK TO SAVEPOINT ${SAVEPOINT};\nRELEASE SAVEPOINT ${SAVEPOINT}`);
      if (items.length === 1) {
        outcomes.set(items[0]!.key, { kind: 'rejected', code, message: errorMessage(error) });
        return;
      }
      const half = Math.ceil(items.length / 2);
      await writeIsolating(t, items.slice(0, half), outcomes);
      await writeIsolating(t, items.slice(half), outcomes);
      return;
    }
    // results[0] is the SAVEPOINT, results[1] the upsert's RETURNING rows.
    for (const row of (results[1] ?? []) as Array<{ inserted: boolean; tenant: string; permalink: string }>) {
      outcomes.set(keyOf(row.tenant, row.permalink), { kind: row.inserted ? 'inserted' : 'updated' });
    }
  }

  async function writeBatchInTx(t: ITask<unknown>, client: pg.Client, batch: PartitionBatch, next: bigint, hooks: WriteHooks): Promise<BatchWriteResult> {
    const stored = await lockStoredOffset(t, batch);
    if (stored >= next) {
      return { inserted: 0, updated: 0, unchanged: 0, rejected: [], collapsed: 0, outdated: 0, alreadyCommitted: 0, perRequest: [], skipped: true };
    }

    // Records already committed by an earlier, overlapping batch are left alone.
    const fresh: Array<{ record: SinkRecord; offset: bigint; index: number }> = [];
    batch.records.forEach((record, index) => {
      const offset = BigInt(record.offset);
      if (offset >= stored) fresh.push({ record, offset, index });
    });
    const alreadyCommitted = batch.records.length - fresh.length;
    fresh.sort((a, b) => compareVersions(a.record.source, b.record.source) || (a.offset < b.offset ? -1 : a.offset > b.offset ? 1 : a.index - b.index));

    // Candidates per key oldest version first; the newest is written, older ones are superseded.
    const candidates = new Map<string, SinkRecord[]>();
    for (const { record } of fresh) {
      const key = keyOf(record.tenant, record.permalink);
      const list = candidates.get(key);
      if (list) list.push(record);
      else candidates.set(key, [record]);
    }

    const perRequest = new Map<string, RequestLoadCounts>();
    const countsOf = (record: SinkRecord): RequestLoadCounts => {
      const id = `${record.source.requestId}\u0000${record.tenant}`;
      let counts = perRequest.get(id);
      if (!counts) {
        counts = { requestId: record.source.requestId, tenant: record.tenant, inserted: 0, updated: 0, unchanged: 0, rejected: 0 };
        perRequest.set(id, counts);
      }
      return counts;
    };
    const result: BatchWriteResult = {
      inserted: 0,
      updated: 0,
      unchanged: 0,
      rejected: [],
      collapsed: 0,
      outdated: 0,
      alreadyCommitted,
      perRequest: [],
      skipped: false,
    };
    const rejected: Array<{ offset: bigint; rejection: RejectedRecord }> = [];
    const reject = (record: SinkRecord, code: string, message: string): void => {
      rejected.push({ offset: BigInt(record.offset), rejection: { record, code, message } });
      countsOf(record).rejected++;
    };

    // Normally one pass. When the last record of a key is rejected, the one before it (if any) is
    // tried in the next pass, so the row ends up as if the records had been applied one by one.
    let stagingHoldsRows = false;
    for (;;) {
      const pass: Prepared[] = [];
      for (const [key, list] of candidates) {
        const record = list.pop();
        if (record === undefined) {
          candidates.delete(key);
          continue;
        }
        const prepared = prepare(record, key);
        if (typeof prepared === 'string') reject(record, '22021', prepared);
        else pass.push(prepared);
      }
      if (pass.length === 0 && candidates.size === 0) break;
      pass.sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0)); // one lock order for all writers
      const outcomes = new Map<string, Outcome>();
      const copied: boolean = method === 'copy' && pass.length > 0 && (await writeByCopy(t, client, pass, outcomes, stagingHoldsRows));
      stagingHoldsRows ||= copied;
      if (!copied) {
        const current = await setAside(t, pass, outcomes);
        for (let i = 0; i < current.length; i += chunkSize) await writeIsolating(t, current.slice(i, i + chunkSize), outcomes);
      }
      for (const item of pass) {
        const outcome = outcomes.get(item.key);
        if (outcome === undefined) throw new Error(`no outcome for company ${item.key}`);
        if (outcome.kind === 'rejected') {
          reject(item.record, outcome.code, outcome.message);
          continue;
        }
        const counts = countsOf(item.record);
        if (outcome.kind === 'outdated') {
          // Accounted for in its import's lineage like a superseded record: as `unchanged`.
          result.outdated++;
          counts.unchanged++;
        } else if (outcome.kind === 'inserted') {
          result.inserted++;
          counts.inserted++;
        } else if (outcome.kind === 'unchanged') {
          result.unchanged++;
          counts.unchanged++;
        } else {
          result.updated++;
          counts.updated++;
        }
        // Superseded records of this key. Choice: they count in `collapsed` and, so that every
        // valid record of an import ends up inserted, updated, unchanged or rejected (per-import
        // lineage adds up), as `unchanged` of their own request in perRequest (they wrote
        // nothing), but not in the batch's inserted/updated/unchanged, which count rows. Hence,
        // over perRequest: inserted + updated + unchanged + rejected =
        // result.inserted + result.updated + result.unchanged + rejected + collapsed + outdated.
        for (const superseded of candidates.get(item.key) ?? []) {
          result.collapsed++;
          countsOf(superseded).unchanged++;
        }
        candidates.delete(item.key);
      }
    }

    await advanceStoredOffset(t, batch, next);
    rejected.sort((a, b) => (a.offset < b.offset ? -1 : a.offset > b.offset ? 1 : 0));
    result.rejected = rejected.map((entry) => entry.rejection);
    result.perRequest = [...perRequest.values()];
    const events = hooks.outbox?.(result) ?? [];
    if (events.length > 0) {
      const { id } = await t.one<{ id: string }>(
        pgp.as.format('INSERT INTO sink_outbox (consumer_group, topic, partition, events) VALUES ($1, $2, $3, $4::jsonb) RETURNING id', [
          batch.consumerGroup,
          batch.topic,
          batch.partition,
          JSON.stringify(events),
        ]),
      );
      result.outbox = { id: String(id), partition: batch.partition, events };
    }
    if (hooks.beforeCommit) {
      try {
        await hooks.beforeCommit(result);
      } catch (error) {
        throw new HookFailure(error);
      }
    }
    return result;
  }

  return {
    async writeBatch(batch, hooks = {}) {
      checkBatch(batch);
      const next = BigInt(batch.nextOffset);
      const what = `writing ${batch.topic}[${batch.partition}] up to ${batch.nextOffset}`;
      // One pooled connection held for the transaction: COPY needs the driver's client itself.
      let connection: Awaited<ReturnType<typeof db.connect>>;
      try {
        connection = await db.connect();
      } catch (error) {
        throw unavailable(what, error);
      }
      let healthy = false;
      try {
        const result = await connection.tx('company-writer', (t) => writeBatchInTx(t, connection.client as unknown as pg.Client, batch, next, hooks));
        healthy = true;
        return result;
      } catch (error) {
        // A transaction that failed for the database's sake (not the hook's) leaves a connection
        // whose state nobody should trust (an interrupted COPY, a dead socket): drop it.
        healthy = error instanceof HookFailure;
        if (error instanceof HookFailure) throw error.error;
        if (error instanceof PipelineError) throw error;
        throw unavailable(what, error);
      } finally {
        void connection.done(!healthy);
      }
    },

    async pendingOutbox(consumerGroup, topic, partitions) {
      if (partitions.length === 0) return [];
      try {
        const rows = await db.any<{ id: string; partition: number; events: unknown[] }>(
          'SELECT id, partition, events FROM sink_outbox WHERE consumer_group = $1 AND topic = $2 AND partition = ANY($3::int[]) ORDER BY id',
          [consumerGroup, topic, [...partitions]],
        );
        return rows.map((row) => ({ id: String(row.id), partition: row.partition, events: row.events }));
      } catch (error) {
        throw unavailable(`reading the outbox of ${consumerGroup} on ${topic}`, error);
      }
    },

    async deleteOutbox(ids) {
      if (ids.length === 0) return;
      try {
        await db.none('DELETE FROM sink_outbox WHERE id = ANY($1::bigint[])', [[...ids]]);
      } catch (error) {
        throw unavailable('deleting sent outbox entries', error);
      }
    },

    async storedOffsets(consumerGroup, topic) {
      try {
        return await readStoredOffsets(db, consumerGroup, topic);
      } catch (error) {
        throw unavailable(`reading the stored offsets of ${consumerGroup} on ${topic}`, error);
      }
    },
  };
}

function unavailable(what: string, error: unknown): PipelineError {
  const code = sqlState(error);
  return new PipelineError('SINK_DB_UNAVAILABLE', `${what} failed${code ? ` (SQLSTATE ${code})` : ''}: ${errorMessage(error)}`, {
    cause: error,
    retriable: true,
  });
}

/** The SQLSTATE of a database error (five characters), if it is one. */
function sqlState(error: unknown): string | undefined {
  const code = (error as { code?: unknown } | null)?.code;
  return typeof code === 'string' && /^[0-9A-Z]{5}$/.test(code) ? code : undefined;
}

/** Class 22 (data exception) and 23 (integrity constraint violation): the row is at fault, not the database. */
function isDataError(code: string): boolean {
  return code.startsWith('22') || code.startsWith('23');
}

const OFFSET = /^\d{1,19}$/;

function checkBatch(batch: PartitionBatch): void {
  const problems: string[] = [];
  if (!OFFSET.test(batch.nextOffset)) problems.push(`nextOffset ${JSON.stringify(batch.nextOffset)} is not an offset`);
  if (!Number.isSafeInteger(batch.partition) || batch.partition < 0) problems.push(`partition ${batch.partition} is not a partition number`);
  const next = OFFSET.test(batch.nextOffset) ? BigInt(batch.nextOffset) : undefined;
  for (const record of batch.records) {
    if (!OFFSET.test(record.offset)) problems.push(`record offset ${JSON.stringify(record.offset)} is not an offset`);
    else if (next !== undefined && BigInt(record.offset) >= next) problems.push(`record offset ${record.offset} is not below nextOffset ${batch.nextOffset}`);
    if (problems.length > 5) break;
  }
  if (problems.length > 0) throw new PipelineError('SINK_BAD_BATCH', `invalid batch for ${batch.topic}[${batch.partition}]: ${problems.join('; ')}`);
}

function keyOf(tenant: string, permalink: string): string {
  return `${tenant}\u0000${permalink}`;
}

/**
 * The rows of a record, or the reason it cannot be sent: a NUL character in a text value (the
 * simple-query protocol carries SQL as a C string, and Postgres text cannot hold NUL anyway).
 */
function prepare(record: SinkRecord, key: string): Prepared | string {
  const { tenant, permalink, document: doc, source } = record;
  const company: Omit<CompanyRow, 'content_hash'> = {
    tenant,
    permalink,
    name: text(doc.name),
    category_code: text(doc.category_code),
    founded_year: integer(doc.founded_year),
    number_of_employees: integer(doc.number_of_employees),
    homepage_url: text(doc.homepage_url),
    email_address: text(doc.email_address),
    created_at: timestamp(doc.created_at),
    updated_at: timestamp(doc.updated_at),
    // JSON text escapes control characters, so the document text never holds a raw NUL.
    document: record.documentJson ?? JSON.stringify(doc),
    source_request_id: source.requestId,
    source_bucket: source.bucket,
    source_key: source.key,
    source_record_index: source.recordIndex,
    source_accepted_at: source.acceptedAt,
  };
  const offices: OfficeRow[] = [];
  objects(doc.offices, (office, position) => {
    offices.push({
      tenant,
      permalink,
      position,
      description: text(office.description),
      address1: text(office.address1),
      address2: text(office.address2),
      zip_code: text(office.zip_code),
      city: text(office.city),
      state_code: text(office.state_code),
      country_code: text(office.country_code),
      latitude: float(office.latitude),
      longitude: float(office.longitude),
    });
  });
  const rounds: FundingRoundRow[] = [];
  objects(doc.funding_rounds, (round, position) => {
    rounds.push({
      tenant,
      permalink,
      position,
      round_code: text(round.round_code),
      raised_amount: float(round.raised_amount),
      raised_currency_code: text(round.raised_currency_code),
      funded_year: integer(round.funded_year),
      funded_month: integer(round.funded_month),
      funded_day: integer(round.funded_day),
    });
  });
  for (const [table, rows] of [
    ['companies', [company]],
    ['company_offices', offices],
    ['company_funding_rounds', rounds],
  ] as const) {
    for (const row of rows) {
      for (const [column, value] of Object.entries(row)) {
        if (column !== 'document' && typeof value === 'string' && value.includes('\u0000')) {
          return `invalid byte sequence for encoding "UTF8": 0x00 (a NUL character in ${table}.${column})`;
        }
      }
    }
  }
  // The document is hashed as the object (its text's key order is no difference), the source_* columns not at all.
  const content = Object.fromEntries(Object.entries(company).filter(([column]) => column !== 'document' && !column.startsWith('source_')));
  const content_hash = contentHash({ company: content, document: doc, offices, rounds });
  return { record, key, company: { ...company, content_hash }, offices, rounds };
}

/** The rows the sink writes for one record, or why it cannot write them (bench:pipeline's COPY ceiling writes these too). */
export function companyRows(record: SinkRecord): Prepared | string {
  return prepare(record, keyOf(record.tenant, record.permalink));
}

/** Calls `each` for the object items of an array field, with their index (non-objects are skipped). */
function objects(value: unknown, each: (item: Record<string, unknown>, index: number) => void): void {
  if (!Array.isArray(value)) return;
  value.forEach((item: unknown, index) => {
    if (item !== null && typeof item === 'object' && !Array.isArray(item)) each(item as Record<string, unknown>, index);
  });
}

function text(value: unknown): string | null {
  return typeof value === 'string' ? value : null;
}

/** An integer, or null for anything else; out-of-range integers are left to the database (22003: the record is rejected). */
function integer(value: unknown): number | null {
  return typeof value === 'number' && Number.isInteger(value) ? value : null;
}

function float(value: unknown): number | null {
  return typeof value === 'number' && Number.isFinite(value) ? value : null;
}

const ISO_TIMESTAMP = /^(\d{4})-\d{2}-\d{2}(?:[T ](\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?)(Z|z|[+-]\d{2}(?::?\d{2})?)?)?$/;

/**
 * An ISO-8601 date or date-time as a UTC ISO string (no offset = UTC, as normalizeRecord reads
 * BSON dates), or null: not a string, empty, unparseable or a year Postgres cannot take as is.
 */
function timestamp(value: unknown): string | null {
  if (typeof value !== 'string') return null;
  const m = ISO_TIMESTAMP.exec(value.trim());
  if (!m) return null;
  let iso = value.trim().replace(' ', 'T');
  if (m[2] !== undefined && m[3] === undefined) iso += 'Z';
  const millis = Date.parse(iso);
  if (Number.isNaN(millis)) return null;
  const date = new Date(millis);
  const year = date.getUTCFullYear();
  return year >= 1 && year <= 9999 ? date.toISOString() : null;
}

const COPY_SPECIAL = /[\\\n\r\t]/g;
const COPY_ESCAPES: Record<string, string> = { '\\': '\\\\', '\n': '\\n', '\r': '\\r', '\t': '\\t' };

/** One value as a COPY text-format field: \N for null, backslash escapes for \\ \n \r \t. */
function copyField(value: string | number | null): string {
  if (value === null) return '\\N';
  if (typeof value === 'number') return String(value);
  return value.replace(COPY_SPECIAL, (special) => COPY_ESCAPES[special]!);
}

/** Streams rows into `table` with COPY FROM STDIN (text format), in chunks of about 64 KiB. */
export async function copyRows<Row extends object>(
  client: pg.Client,
  table: string,
  columns: ReadonlyArray<keyof Row & string>,
  rows: readonly Row[],
): Promise<void> {
  if (rows.length === 0) return;
  function* chunks(): Generator<string> {
    let chunk = '';
    for (const row of rows) {
      const values = row as Record<string, string | number | null>;
      let line = '';
      for (let i = 0; i < columns.length; i++) line += (i === 0 ? '' : '\t') + copyField(values[columns[i]!] ?? null);
      chunk += line + '\n';
      if (chunk.length >= 65_536) {
        yield chunk;
        chunk = '';
      }
    }
    if (chunk !== '') yield chunk;
  }
  await pipeline(Readable.from(chunks()), client.query(copyFrom(`COPY ${table} (${columns.join(', ')}) FROM STDIN`)));
}
