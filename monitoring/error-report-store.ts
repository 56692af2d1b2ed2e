/**
 * The error report's table (sinks/postgres/migrations/0007_import_error_report): entries are
 * added in the lineage batch's own transaction, read a page at a time in record order, and
 * deleted once older than the retention.
 */
import type { IDatabase, ITask } from 'pg-promise';
import type { Cursor, ReportEntry, ReportKind, Violation } from './error-report.js';

interface ReportRow {
  id: string;
  tenant: string;
  request_id: string;
  kind: ReportKind;
  stage: string;
  code: string;
  message: string;
  record_index: string | null;
  record_key: string | null;
  violations: Violation[] | null;
  source_topic: string;
  source_partition: number;
  source_offset: string;
  event_topic: string;
  event_partition: number;
  event_offset: string;
  detected_at: Date;
}

export interface StoredEntry {
  id: string;
  entry: ReportEntry;
}

function fromRow(row: ReportRow): StoredEntry {
  return {
    id: row.id,
    entry: {
      tenant: row.tenant,
      requestId: row.request_id,
      kind: row.kind,
      stage: row.stage,
      code: row.code,
      message: row.message,
      recordIndex: row.record_index === null ? null : Number(row.record_index),
      recordKey: row.record_key,
      violations: row.violations,
      source: { topic: row.source_topic, partition: row.source_partition, offset: Number(row.source_offset) },
      event: { topic: row.event_topic, partition: row.event_partition, offset: Number(row.event_offset) },
      detectedAt: row.detected_at.getTime(),
    },
  };
}

/**
 * Adds the entries; runs inside the lineage batch's transaction. An entry already stored is
 * skipped: the same event (a batch applied again), or the same error emitted again by a stage
 * that processed its message twice (0009_error_report_identity: kind, stage and source record).
 */
export async function insertReportEntries(task: ITask<unknown>, entries: readonly ReportEntry[]): Promise<void> {
  if (entries.length === 0) return;
  const column = <T>(pick: (entry: ReportEntry) => T) => entries.map(pick);
  await task.none(
    'INSERT INTO import_error_report (tenant, request_id, kind, stage, code, message, record_index, record_key, violations, ' +
      'source_topic, source_partition, source_offset, event_topic, event_partition, event_offset, detected_at) ' +
      'SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::bigint[], $8::text[], ' +
      '$9::jsonb[], $10::text[], $11::int[], $12::bigint[], $13::text[], $14::int[], $15::bigint[], $16::timestamptz[]) ' +
      'ON CONFLICT DO NOTHING',
    [
      column((entry) => entry.tenant),
      column((entry) => entry.requestId),
      column((entry) => entry.kind),
      column((entry) => entry.stage),
      column((entry) => entry.code),
      column((entry) => entry.message),
      column((entry) => (entry.recordIndex === null ? null : String(entry.recordIndex))),
      column((entry) => entry.recordKey),
      column((entry) => (entry.violations === null ? null : JSON.stringify(entry.violations))),
      column((entry) => entry.source.topic),
      column((entry) => entry.source.partition),
      column((entry) => String(entry.source.offset)),
      column((entry) => entry.event.topic),
      column((entry) => entry.event.partition),
      column((entry) => String(entry.event.offset)),
      column((entry) => new Date(entry.detectedAt)),
    ],
  );
}

/** One page of an import's entries after `after`, in record order. */
export async function readReportPage(
  db: IDatabase<unknown>,
  query: { tenant: string; requestId: string; after?: Cursor; limit: number },
): Promise<StoredEntry[]> {
  const rows =
    query.after === undefined
      ? await db.any<ReportRow>('SELECT * FROM import_error_report WHERE tenant = $1 AND request_id = $2 ORDER BY coalesce(record_index, -1), id LIMIT $3', [
          query.tenant,
          query.requestId,
          query.limit,
        ])
      : await db.any<ReportRow>(
          'SELECT * FROM import_error_report WHERE tenant = $1 AND request_id = $2 AND (coalesce(record_index, -1), id) > ($3::bigint, $4::bigint) ' +
            'ORDER BY coalesce(record_index, -1), id LIMIT $5',
          [query.tenant, query.requestId, String(query.after.recordIndex), query.after.id, query.limit],
        );
  return rows.map(fromRow);
}

/** Entries of an import by kind. */
export async function countReportEntries(db: IDatabase<unknown>, tenant: string, requestId: string): Promise<Record<ReportKind, number>> {
  const rows = await db.any<{ kind: ReportKind; count: string }>(
    'SELECT kind, count(*) AS count FROM import_error_report WHERE tenant = $1 AND request_id = $2 GROUP BY kind',
    [tenant, requestId],
  );
  const counts: Record<ReportKind, number> = { validation: 0, processing: 0, rejected: 0 };
  for (const row of rows) counts[row.kind] = Number(row.count);
  return counts;
}

/** Deletes entries stored more than `retentionDays` ago, `batch` rows per statement; returns how many. */
export async function sweepReport(db: IDatabase<unknown>, retentionDays: number, batch = 10_000): Promise<number> {
  let deleted = 0;
  for (;;) {
    const result = await db.result(
      'DELETE FROM import_error_report WHERE id IN (SELECT id FROM import_error_report WHERE stored_at < now() - make_interval(days => $1) LIMIT $2)',
      [retentionDays, batch],
    );
    deleted += result.rowCount;
    if (result.rowCount < batch) return deleted;
  }
}
