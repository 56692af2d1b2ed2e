/**
 * The error report of an import, as pure data and functions: which lineage event becomes an
 * entry, the page cursor, and the NDJSON and CSV forms of the download. The SQL is in
 * error-report-store.ts.
 */
import type { LineageEvent } from './lineage.js';

export const reportKinds = ['validation', 'processing', 'rejected'] as const;
export type ReportKind = (typeof reportKinds)[number];

export interface Violation {
  path: string;
  keyword: string;
  message: string;
}

/** Where a message sits in Kafka. */
export interface Position {
  topic: string;
  partition: number;
  offset: number;
}

/** One entry of the report: one error event. */
export interface ReportEntry {
  tenant: string;
  requestId: string;
  /** validation: broke the contract; processing: a stage could not process it; rejected: the database refused the row. */
  kind: ReportKind;
  stage: string;
  code: string;
  message: string;
  recordIndex: number | null;
  recordKey: string | null;
  violations: Violation[] | null;
  /** The message that carried the record or file. */
  source: Position;
  /** The error event itself. An entry is stored once per error: once per event, and once per (kind, stage, source, record index). */
  event: Position;
  detectedAt: number;
}

/** A validation error's code: its violations say the rest. */
export const validationCode = 'CONTRACT_VIOLATION';

/** The entry an event makes, or undefined for events that are not errors. */
export function reportEntryOf(event: LineageEvent, position: Position): ReportEntry | undefined {
  const base = { tenant: event.tenant, requestId: event.requestId, event: position, detectedAt: event.at };
  if (event.kind === 'invalid') {
    const first = event.violations[0];
    return {
      ...base,
      kind: 'validation',
      stage: 'validate',
      code: validationCode,
      message:
        first === undefined
          ? 'the record broke the contract'
          : event.violations.length === 1
            ? `${first.path || '/'}: ${first.message}`
            : `${first.path || '/'}: ${first.message} (and ${event.violations.length - 1} more)`,
      recordIndex: event.recordIndex,
      recordKey: event.recordKey,
      violations: event.violations,
      source: event.source,
    };
  }
  if (event.kind === 'processing-error') {
    return {
      ...base,
      // A row the database refused is a load ProcessingError with a PostgreSQL code (PG_<sqlstate>).
      kind: event.stage === 'load' && event.code.startsWith('PG_') ? 'rejected' : 'processing',
      stage: event.stage,
      code: event.code,
      message: event.message,
      recordIndex: event.recordIndex,
      recordKey: event.recordKey,
      violations: null,
      source: event.source,
    };
  }
  return undefined;
}

/**
 * Entries are ordered by record index (file-level errors, which have none, first), then by the
 * order they were stored. The cursor is the last entry of a page: `<index>.<id>`.
 */
export interface Cursor {
  recordIndex: number;
  id: string;
}

export function encodeCursor(cursor: Cursor): string {
  return `${cursor.recordIndex}.${cursor.id}`;
}

const maxBigint = 2n ** 63n - 1n;

export function decodeCursor(text: string): Cursor | undefined {
  const match = /^(-1|0|[1-9][0-9]{0,15})\.([1-9][0-9]{0,18})$/.exec(text);
  // Ids are bigint: one past its range is no id an earlier page gave (and PostgreSQL would refuse it).
  if (match === null || BigInt(match[2]!) > maxBigint) return undefined;
  return { recordIndex: Number(match[1]), id: match[2]! };
}

/** An entry as the API shows it. */
export interface ReportEntryJson {
  kind: ReportKind;
  stage: string;
  code: string;
  message: string;
  record_index: number | null;
  record_key: string | null;
  violations: Violation[] | null;
  source: { topic: string; partition: number; offset: number };
  detected_at: string;
}

export function toEntryJson(entry: ReportEntry): ReportEntryJson {
  return {
    kind: entry.kind,
    stage: entry.stage,
    code: entry.code,
    message: entry.message,
    record_index: entry.recordIndex,
    record_key: entry.recordKey,
    violations: entry.violations,
    source: { ...entry.source },
    detected_at: new Date(entry.detectedAt).toISOString(),
  };
}

export const reportFormats = ['json', 'ndjson', 'csv'] as const;
export type ReportFormat = (typeof reportFormats)[number];

export const reportContentTypes: Record<ReportFormat, string> = {
  json: 'application/json',
  ndjson: 'application/x-ndjson',
  csv: 'text/csv; charset=utf-8',
};

/** `?format=` wins; otherwise the first Accept type that names a format; JSON by default. */
export function chooseFormat(formatParam: string | undefined, accept: string | undefined): ReportFormat | undefined {
  if (formatParam !== undefined) return (reportFormats as readonly string[]).includes(formatParam) ? (formatParam as ReportFormat) : undefined;
  for (const part of (accept ?? '').split(',')) {
    const type = part.split(';')[0]!.trim().toLowerCase();
    if (type === 'text/csv') return 'csv';
    if (type === 'application/x-ndjson' || type === 'application/ndjson') return 'ndjson';
    if (type === 'application/json') return 'json';
  }
  return 'json';
}

export function ndjsonLine(entry: ReportEntry): string {
  return `${JSON.stringify(toEntryJson(entry))}\n`;
}

export const csvColumns = [
  'record_index',
  'record_key',
  'kind',
  'stage',
  'code',
  'path',
  'keyword',
  'message',
  'source_topic',
  'source_partition',
  'source_offset',
  'detected_at',
] as const;

/** RFC 4180: a field with a comma, quote or line break is quoted, quotes doubled. */
export function csvField(value: string | number | null): string {
  if (value === null) return '';
  const text = String(value);
  // A leading =, +, - or @ makes spreadsheets run the cell as a formula: a tab before it stops that.
  const safe = /^[=+\-@]/.test(text) && typeof value === 'string' ? `\t${text}` : text;
  return /[",\r\n\t]/.test(safe) ? `"${safe.replace(/"/g, '""')}"` : safe;
}

export function csvHeader(): string {
  return `${csvColumns.join(',')}\r\n`;
}

/** One CSV row per violation of a validation error; one row for any other error. */
export function csvRows(entry: ReportEntry): string {
  const rows = entry.violations === null || entry.violations.length === 0 ? [null] : entry.violations;
  return rows
    .map((violation) =>
      [
        entry.recordIndex,
        entry.recordKey,
        entry.kind,
        entry.stage,
        entry.code,
        violation?.path ?? null,
        violation?.keyword ?? null,
        violation?.message ?? entry.message,
        entry.source.topic,
        entry.source.partition,
        entry.source.offset,
        new Date(entry.detectedAt).toISOString(),
      ]
        .map(csvField)
        .join(','),
    )
    .map((row) => `${row}\r\n`)
    .join('');
}
