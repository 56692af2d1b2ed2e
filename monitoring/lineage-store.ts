/**
 * The lineage tables in Postgres (sinks/postgres/migrations/0002_import_lineage): one
 * transaction per partition batch of events locks the partition's offset row in
 * sink_offsets, skips what was already applied, applies the rest to the imports they name
 * (an import is (tenant, request id); rows locked in that order, so concurrent batches never
 * deadlock each other) and
 * stores the partition's next offset — exactly once, also after a crash.
 *
 * SQL text is built with pg-promise's formatting; nothing from an event is ever spliced in raw.
 */
import type { ITask } from 'pg-promise';
import { errorMessage, PipelineError } from '../core/errors.js';
import type { Postgres } from '../core/postgres.js';
import { advanceStoredOffset, lockStoredOffset, readStoredOffsets } from '../sinks/postgres/sink-offsets.js';
import { reportEntryOf, type Cursor, type ReportKind } from './error-report.js';
import { countReportEntries, insertReportEntries, readReportPage, sweepReport, type StoredEntry } from './error-report-store.js';
import {
  applyEvent,
  emptyEffects,
  emptyLineage,
  settle,
  snakeCaseLineage,
  type ImportStatus,
  type Lineage,
  type LineageEffects,
  type LineageEvent,
} from './lineage.js';

export interface ImportRow {
  request_id: string;
  tenant: string;
  status: ImportStatus;
  filename: string | null;
  size: string | number | null;
  raw_object: string | null;
  accepted_at: Date | null;
  replay_of: string | null;
  records_expected: string | number | null;
  extracted: string | number | null;
  pieces: number | null;
  pieces_extracted: number;
  invalid: string | number;
  loaded: string | number;
  inserted: string | number;
  updated: string | number;
  unchanged: string | number;
  rejected: string | number;
  unprocessed: string | number;
  error_code: string | null;
  error_message: string | null;
  received_at: Date | null;
  extracted_at: Date | null;
  completed_at: Date | null;
  failed_at: Date | null;
  last_event_at: Date | null;
  updated_at: Date | null;
}

export interface StoredImport {
  lineage: Lineage;
  updatedAt: number | null;
}

const num = (value: string | number | null): number | null => (value === null ? null : Number(value));
const ms = (value: Date | null): number | null => (value === null ? null : value.getTime());
const date = (value: number | null): Date | null => (value === null ? null : new Date(value));

export function fromRow(row: ImportRow): StoredImport {
  return {
    lineage: {
      requestId: row.request_id,
      tenant: row.tenant,
      status: row.status,
      filename: row.filename,
      size: num(row.size),
      rawObject: row.raw_object,
      acceptedAt: ms(row.accepted_at),
      replayOf: row.replay_of,
      recordsExpected: num(row.records_expected),
      extracted: num(row.extracted),
      pieces: row.pieces,
      piecesExtracted: Number(row.pieces_extracted),
      invalid: Number(row.invalid),
      loaded: Number(row.loaded),
      inserted: Number(row.inserted),
      updated: Number(row.updated),
      unchanged: Number(row.unchanged),
      rejected: Number(row.rejected),
      unprocessed: Number(row.unprocessed),
      errorCode: row.error_code,
      errorMessage: row.error_message,
      receivedAt: ms(row.received_at),
      extractedAt: ms(row.extracted_at),
      completedAt: ms(row.completed_at),
      failedAt: ms(row.failed_at),
      lastEventAt: ms(row.last_event_at),
    },
    updatedAt: ms(row.updated_at),
  };
}

/** One partition batch of events; `offset` is each event's Kafka offset. */
export interface EventBatch {
  consumerGroup: string;
  topic: string;
  partition: number;
  /** Offset after the last message of the batch, including messages that carried no event. */
  nextOffset: string;
  events: Array<{ offset: string; event: LineageEvent }>;
}

export interface ApplyResult {
  /** The stored offset was already at or past nextOffset: the batch had been applied. */
  skipped: boolean;
  /** Events applied (after dropping those below the stored offset and repeats). */
  applied: number;
  /** Counts for the metrics: apply them only once the transaction committed. */
  effects: LineageEffects;
}

export interface ListQuery {
  tenant?: string;
  status?: ImportStatus;
  limit: number;
}

export interface LineageStore {
  storedOffsets(consumerGroup: string, topic: string): Promise<Map<number, string>>;
  /** One transaction: lineage updates and the partition's next offset. `beforeCommit` runs inside it. */
  applyBatch(batch: EventBatch, hooks?: { beforeCommit?: () => Promise<void> }): Promise<ApplyResult>;
  /** The imports with this request id: one per tenant that used it, or the one of `tenant`. */
  find(requestId: string, tenant?: string): Promise<StoredImport[]>;
  /** Newest first (by received time; imports not yet received last). */
  list(query: ListQuery): Promise<StoredImport[]>;
  /** A page of an import's error report, in record order. */
  errorPage(query: { tenant: string; requestId: string; after?: Cursor; limit: number }): Promise<StoredEntry[]>;
  /** How many entries of each kind the import's error report has. */
  errorCounts(tenant: string, requestId: string): Promise<Record<ReportKind, number>>;
  /** Deletes error report entries stored more than `retentionDays` ago; returns how many. */
  sweepErrors(retentionDays: number): Promise<number>;
  ping(): Promise<void>;
}

function unavailable(what: string, error: unknown): PipelineError {
  if (error instanceof PipelineError) return error;
  return new PipelineError('LINEAGE_DB_UNAVAILABLE', `${what} failed: ${errorMessage(error)}`, { cause: error, retriable: true });
}

export function createLineageStore(postgres: Postgres): LineageStore {
  const { db, pgp } = postgres;

  /** Drops RecordsLoaded batches, FileExtracted pieces and record-level errors counted before (by this or an earlier batch). */
  async function dropRepeats(task: ITask<unknown>, events: LineageEvent[]): Promise<LineageEvent[]> {
    // One RecordsLoaded per load batch and import, one FileExtracted per piece: a repeat is the
    // same (batch, import); a piece's "batch" is `extract/<piece index>`.
    const batchIdOf = (event: LineageEvent & { kind: 'loaded' | 'extracted' }) => (event.kind === 'loaded' ? event.batchId : `extract/${event.piece}`);
    const batchKey = (event: { batchId: string; tenant: string; requestId: string }) => JSON.stringify([event.batchId, event.tenant, event.requestId]);
    const batches = new Map<string, { batchId: string; tenant: string; requestId: string }>();
    const errorKeys = new Map<string, LineageEvent & { kind: 'processing-error' }>();
    for (const event of events) {
      if (event.kind === 'loaded' || event.kind === 'extracted') {
        const entry = { batchId: batchIdOf(event), tenant: event.tenant, requestId: event.requestId };
        batches.set(batchKey(entry), entry);
      }
      if (event.kind === 'processing-error' && event.effect === 'unprocessed') {
        errorKeys.set(JSON.stringify([event.stage, event.source.topic, event.source.partition, event.source.offset]), event);
      }
    }
    const freshBatches = new Set<string>();
    if (batches.size > 0) {
      const list = [...batches.values()];
      const rows = await task.any<{ batch_id: string; tenant: string; request_id: string }>(
        'INSERT INTO import_batches (batch_id, tenant, request_id) SELECT * FROM unnest($1::text[], $2::text[], $3::text[]) ' +
          'ON CONFLICT (batch_id, tenant, request_id) DO NOTHING RETURNING batch_id, tenant, request_id',
        [list.map((entry) => entry.batchId), list.map((entry) => entry.tenant), list.map((entry) => entry.requestId)],
      );
      for (const row of rows) freshBatches.add(batchKey({ batchId: row.batch_id, tenant: row.tenant, requestId: row.request_id }));
    }
    const freshErrors = new Set<string>();
    if (errorKeys.size > 0) {
      const list = [...errorKeys.values()];
      const rows = await task.any<{ stage: string; source_topic: string; source_partition: number; source_offset: string }>(
        'INSERT INTO import_errors (stage, source_topic, source_partition, source_offset, tenant, request_id, reason_code) ' +
          'SELECT * FROM unnest($1::text[], $2::text[], $3::int[], $4::bigint[], $5::text[], $6::text[], $7::text[]) ' +
          'ON CONFLICT DO NOTHING RETURNING stage, source_topic, source_partition, source_offset',
        [
          list.map((event) => event.stage),
          list.map((event) => event.source.topic),
          list.map((event) => event.source.partition),
          list.map((event) => String(event.source.offset)),
          list.map((event) => event.tenant),
          list.map((event) => event.requestId),
          list.map((event) => event.code),
        ],
      );
      for (const row of rows) {
        freshErrors.add(JSON.stringify([row.stage, row.source_topic, row.source_partition, Number(row.source_offset)]));
      }
    }
    const seenBatches = new Set<string>();
    const seenErrors = new Set<string>();
    return events.filter((event) => {
      if (event.kind === 'loaded' || event.kind === 'extracted') {
        const key = batchKey({ batchId: batchIdOf(event), tenant: event.tenant, requestId: event.requestId });
        if (!freshBatches.has(key) || seenBatches.has(key)) return false;
        seenBatches.add(key);
      }
      if (event.kind === 'processing-error' && event.effect === 'unprocessed') {
        const key = JSON.stringify([event.stage, event.source.topic, event.source.partition, event.source.offset]);
        if (!freshErrors.has(key) || seenErrors.has(key)) return false;
        seenErrors.add(key);
      }
      return true;
    });
  }

  return {
    async storedOffsets(consumerGroup, topic) {
      try {
        return await readStoredOffsets(db, consumerGroup, topic);
      } catch (error) {
        throw unavailable(`reading the stored offsets of ${consumerGroup} on ${topic}`, error);
      }
    },

    async applyBatch(batch, hooks = {}) {
      const next = BigInt(batch.nextOffset);
      try {
        return await db.tx('lineage-batch', async (task) => {
          const stored = await lockStoredOffset(task, batch);
          const effects = emptyEffects();
          if (stored >= next) return { skipped: true, applied: 0, effects };

          const fresh = batch.events.filter((entry) => BigInt(entry.offset) >= stored);
          await insertReportEntries(
            task,
            fresh.flatMap(({ offset, event }) => reportEntryOf(event, { topic: batch.topic, partition: batch.partition, offset: Number(offset) }) ?? []),
          );
          const events = await dropRepeats(
            task,
            fresh.map((entry) => entry.event),
          );
          if (events.length > 0) {
            const keyOf = (tenant: string, requestId: string) => JSON.stringify([tenant, requestId]);
            const named = new Map<string, { tenant: string; requestId: string }>();
            for (const event of events) named.set(keyOf(event.tenant, event.requestId), { tenant: event.tenant, requestId: event.requestId });
            // Lock order: (tenant, request id). Two batches touching the same imports wait, never deadlock.
            const imports = [...named.values()].sort((a, b) => (a.tenant === b.tenant ? (a.requestId < b.requestId ? -1 : 1) : a.tenant < b.tenant ? -1 : 1));
            const tenants = imports.map((entry) => entry.tenant);
            const requestIds = imports.map((entry) => entry.requestId);
            await task.none(
              'INSERT INTO imports (tenant, request_id) SELECT * FROM unnest($1::text[], $2::text[]) AS u(tenant, id) ' +
                'ORDER BY tenant COLLATE "C", id COLLATE "C" ON CONFLICT (tenant, request_id) DO NOTHING',
              [tenants, requestIds],
            );
            const rows = await task.any<ImportRow>(
              'SELECT i.* FROM imports i JOIN unnest($1::text[], $2::text[]) AS u(tenant, id) ON i.tenant = u.tenant AND i.request_id = u.id ' +
                'ORDER BY i.tenant COLLATE "C", i.request_id COLLATE "C" FOR UPDATE OF i',
              [tenants, requestIds],
            );
            const lineages = new Map(rows.map((row) => [keyOf(row.tenant, row.request_id), fromRow(row).lineage]));
            for (const event of events) {
              const key = keyOf(event.tenant, event.requestId);
              const lineage = lineages.get(key) ?? emptyLineage(event.requestId, event.tenant);
              lineages.set(key, lineage);
              applyEvent(lineage, event, effects);
            }
            const updates: string[] = [];
            for (const { tenant, requestId } of imports) {
              const lineage = lineages.get(keyOf(tenant, requestId))!;
              settle(lineage, effects);
              // Column names come from snakeCaseLineage; every value is formatted by pg-promise.
              const { request_id: _requestId, ...values } = snakeCaseLineage(lineage, date);
              const assignments = Object.keys(values).map((column) => `${column} = $(${column})`);
              updates.push(
                pgp.as.format(`UPDATE imports SET ${assignments.join(', ')}, updated_at = now() WHERE tenant = $(tenant) AND request_id = $(request_id)`, {
                  ...values,
                  request_id: requestId,
                }),
              );
            }
            await task.none(updates.join(';\n'));
          }
          await advanceStoredOffset(task, batch, next);
          await hooks.beforeCommit?.();
          return { skipped: false, applied: events.length, effects };
        });
      } catch (error) {
        throw unavailable(`applying ${batch.topic}[${batch.partition}] up to ${batch.nextOffset}`, error);
      }
    },

    async find(requestId, tenant) {
      const rows =
        tenant === undefined
          ? await db.any<ImportRow>('SELECT * FROM imports WHERE request_id = $1 ORDER BY tenant', [requestId])
          : await db.any<ImportRow>('SELECT * FROM imports WHERE tenant = $1 AND request_id = $2', [tenant, requestId]);
      return rows.map(fromRow);
    },

    async list(query) {
      const conditions: string[] = [];
      if (query.tenant !== undefined) conditions.push(pgp.as.format('tenant = $1', [query.tenant]));
      if (query.status !== undefined) conditions.push(pgp.as.format('status = $1', [query.status]));
      const where = conditions.length === 0 ? '' : `WHERE ${conditions.join(' AND ')} `;
      const rows = await db.any<ImportRow>(`SELECT * FROM imports ${where}ORDER BY received_at DESC NULLS LAST, request_id DESC, tenant DESC LIMIT $1`, [
        query.limit,
      ]);
      return rows.map(fromRow);
    },

    errorPage: (query) => readReportPage(db, query),
    errorCounts: (tenant, requestId) => countReportEntries(db, tenant, requestId),
    sweepErrors: (retentionDays) => sweepReport(db, retentionDays),

    async ping() {
      const row = await db.one<{ imports: string | null; report: string | null; runs: string | null }>(
        "SELECT to_regclass('imports')::text AS imports, to_regclass('import_error_report')::text AS report, to_regclass('replay_runs')::text AS runs",
      );
      const missing = [row.imports === null ? 'imports' : '', row.report === null ? 'import_error_report' : '', row.runs === null ? 'replay_runs' : ''].filter(
        Boolean,
      );
      if (missing.length > 0) throw new Error(`table ${missing.join(' and ')} does not exist: run the migrations (npm run migrate up)`);
    },
  };
}
