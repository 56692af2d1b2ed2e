/**
 * The lineage of one import, as pure data and functions: which event says what, how an
 * event changes an import, and which status the counts add up to. The SQL store and the
 * sink only load, lock and save; everything decided here is unit-tested without a database.
 *
 * Events of different topics arrive in any order (each topic has its own consumer group),
 * so an import's row is created by whichever event comes first, and every event only adds
 * counts or fills fields: the result does not depend on the order.
 */
import { topics } from '../core/pipeline.js';
import type { FileExtracted, FileExtractError, FileExtractSuccess, ProcessingError, RecordsLoaded, ValidationError } from '../schemas/index.js';

export const importStatuses = ['received', 'extracting', 'extracted', 'complete', 'failed'] as const;
export type ImportStatus = (typeof importStatuses)[number];

/** An import's lineage; times are epoch milliseconds (null until known). */
export interface Lineage {
  requestId: string;
  tenant: string;
  status: ImportStatus;
  filename: string | null;
  size: number | null;
  /** Where the ingress stored the file: `s3://<bucket>/<key>` (null until it is received). */
  rawObject: string | null;
  /** When the ingress accepted the file (orders copies of a company); a replay carries its original's. */
  acceptedAt: number | null;
  /** The import this one replays (null for a file a client sent). */
  replayOf: string | null;
  /** Records the ingress counted (FileExtractSuccess.record_count). */
  recordsExpected: number | null;
  /** Records the extract stage produced so far (FileExtracted.record_count, added over the file's pieces). */
  extracted: number | null;
  /** Pieces the file was split into (FileExtracted.piece_count); null until the first piece is extracted. */
  pieces: number | null;
  /** Pieces whose FileExtracted was seen. */
  piecesExtracted: number;
  invalid: number;
  /** inserted + updated + unchanged: the records the database took */
  loaded: number;
  inserted: number;
  updated: number;
  /** Records that changed no data (the stored copy of their company was the same, or newer). */
  unchanged: number;
  rejected: number;
  /** Records a validate/load stage could not process (ProcessingError), counted nowhere else. */
  unprocessed: number;
  errorCode: string | null;
  errorMessage: string | null;
  receivedAt: number | null;
  extractedAt: number | null;
  completedAt: number | null;
  failedAt: number | null;
  /** Latest event time seen: the completion time once everything is accounted for. */
  lastEventAt: number | null;
}

interface EventBase {
  requestId: string;
  tenant: string;
  /** When the event happened (its own timestamp). */
  at: number;
}

export type LineageEvent =
  | (EventBase & {
      kind: 'received';
      filename: string | null;
      size: number;
      recordsExpected: number;
      rawObject?: string;
      acceptedAt?: number | null;
      replayOf?: string | null;
    })
  | (EventBase & { kind: 'rejected'; filename: string | null; size: number; code: string; message: string })
  | (EventBase & { kind: 'extracted'; extracted: number; receivedAt: number; piece: number; pieces: number })
  | (EventBase & {
      kind: 'invalid';
      recordIndex: number;
      recordKey: string | null;
      violations: Array<{ path: string; keyword: string; message: string }>;
      source: { topic: string; partition: number; offset: number };
    })
  | (EventBase & { kind: 'loaded'; batchId: string; inserted: number; updated: number; unchanged: number; rejected: number })
  | (EventBase & {
      kind: 'processing-error';
      stage: string;
      code: string;
      message: string;
      recordIndex: number | null;
      recordKey: string | null;
      /** Where the failed message was: counting a record-level error once needs it. */
      source: { topic: string; partition: number; offset: number };
      /** How the error counts: the whole file failed, one record is lost, or nothing (already counted). */
      effect: 'fail' | 'unprocessed' | 'none';
    });

/** Epoch milliseconds from an Avro timestamp-millis, whichever way the decoder returned it. */
export function toMillis(value: unknown): number {
  if (value instanceof Date) return value.getTime();
  if (typeof value === 'bigint') return Number(value);
  const number = Number(value);
  return Number.isFinite(number) ? number : Date.now();
}

function count(value: unknown): number {
  const number = Number(value);
  return Number.isFinite(number) && number > 0 ? Math.trunc(number) : 0;
}

/**
 * How a ProcessingError counts. split or extract: the file (or a piece of it) could not be read,
 * the import failed. A record the database refused (load, reason PG_*) is already in
 * RecordsLoaded.rejected. Any
 * other record-level error of validate or load means one record that will never arrive.
 */
export function processingErrorEffect(stage: string, reasonCode: string): 'fail' | 'unprocessed' | 'none' {
  if (stage === 'split' || stage === 'extract') return 'fail';
  if (stage === 'load' && reasonCode.startsWith('PG_')) return 'none';
  if (stage === 'validate' || stage === 'load') return 'unprocessed';
  return 'none';
}

/** The lineage event a decoded message of an event topic carries, or undefined when it names no import. */
export function toLineageEvent(topic: string, value: unknown): LineageEvent | undefined {
  const v = value as Record<string, unknown>;
  const requestId = typeof v.request_id === 'string' ? v.request_id : '';
  if (requestId === '') return undefined;
  const tenant = typeof v.tenant === 'string' ? v.tenant : '';
  /** What every event says: its kind, its import and when it happened. */
  const about = <Kind extends LineageEvent['kind']>(kind: Kind, at: unknown) => ({ kind, requestId, tenant, at: toMillis(at) });
  switch (topic) {
    case topics.fileExtractSuccess.name: {
      const event = value as FileExtractSuccess;
      return {
        ...about('received', event.received_at),
        filename: event.original_filename ?? null,
        size: count(event.size),
        recordsExpected: count(event.record_count),
        rawObject: `s3://${event.bucket}/${event.key}`,
        acceptedAt: event.accepted_at === null || event.accepted_at === undefined ? null : toMillis(event.accepted_at),
        replayOf: event.replay_of ?? null,
      };
    }
    case topics.fileExtractError.name: {
      const event = value as FileExtractError;
      return {
        ...about('rejected', event.received_at),
        filename: event.original_filename ?? null,
        size: count(event.bytes_received),
        code: String(event.reason_code),
        message: String(event.message),
      };
    }
    case topics.fileExtracted.name: {
      const event = value as FileExtracted;
      return {
        ...about('extracted', event.extracted_at),
        extracted: count(event.record_count),
        receivedAt: toMillis(event.received_at),
        piece: count(event.piece_index),
        pieces: Math.max(1, count(event.piece_count ?? 1)),
      };
    }
    case topics.validationError.name: {
      const event = value as ValidationError;
      return {
        ...about('invalid', event.detected_at),
        recordIndex: Number(event.record_index),
        recordKey: event.record_key ?? null,
        violations: (event.violations ?? []).map((violation) => ({
          path: String(violation.path),
          keyword: String(violation.keyword),
          message: String(violation.message),
        })),
        source: { topic: String(event.source_topic), partition: Number(event.source_partition), offset: Number(event.source_offset) },
      };
    }
    case topics.recordsLoaded.name: {
      const event = value as RecordsLoaded;
      return {
        ...about('loaded', event.loaded_at),
        batchId: String(event.batch_id),
        inserted: count(event.inserted),
        updated: count(event.updated),
        // Absent in events written before the field: none.
        unchanged: count(event.unchanged ?? 0),
        rejected: count(event.rejected),
      };
    }
    case topics.processingError.name: {
      const event = value as ProcessingError;
      const stage = String(event.stage);
      const code = String(event.reason_code);
      return {
        ...about('processing-error', event.failed_at),
        stage,
        code,
        message: String(event.message),
        recordIndex: event.record_index === null || event.record_index === undefined ? null : Number(event.record_index),
        recordKey: event.record_key ?? null,
        source: { topic: String(event.source_topic), partition: Number(event.source_partition), offset: Number(event.source_offset) },
        effect: processingErrorEffect(stage, code),
      };
    }
    default:
      return undefined;
  }
}

export function emptyLineage(requestId: string, tenant = ''): Lineage {
  return {
    requestId,
    tenant,
    status: 'received',
    filename: null,
    size: null,
    rawObject: null,
    acceptedAt: null,
    replayOf: null,
    recordsExpected: null,
    extracted: null,
    pieces: null,
    piecesExtracted: 0,
    invalid: 0,
    loaded: 0,
    inserted: 0,
    updated: 0,
    unchanged: 0,
    rejected: 0,
    unprocessed: 0,
    errorCode: null,
    errorMessage: null,
    receivedAt: null,
    extractedAt: null,
    completedAt: null,
    failedAt: null,
    lastEventAt: null,
  };
}

/** Records whose fate is known: loaded, invalid, refused by the database, or lost to an error. */
export function accountedFor(lineage: Lineage): number {
  return lineage.loaded + lineage.invalid + lineage.rejected + lineage.unprocessed;
}

/**
 * failed: the file was refused or could not be extracted. complete: the extract stage said
 * how many records each piece of the file held, and each of them is loaded, invalid or rejected.
 * extracted: that count is known for every piece, records are still on their way. extracting:
 * records are showing up downstream but a piece's extract summary is not seen yet. received: nothing after the
 * ingress yet.
 */
export function computeStatus(lineage: Lineage): ImportStatus {
  if (lineage.failedAt !== null) return 'failed';
  if (lineage.extracted !== null && lineage.piecesExtracted >= (lineage.pieces ?? 1)) {
    return accountedFor(lineage) >= lineage.extracted ? 'complete' : 'extracted';
  }
  return accountedFor(lineage) > 0 ? 'extracting' : 'received';
}

/** What applying events did, for the metrics (counted only after the transaction commits). */
export interface LineageEffects {
  filesReceived: Map<string, number>;
  filesRejected: Map<string, number>;
  recordsExtracted: Map<string, number>;
  recordsValid: Map<string, number>;
  recordsInvalid: Map<string, number>;
  recordsLoaded: Map<string, number>;
  recordsRejected: Map<string, number>;
  /** Imports that became complete: their tenant and received→completed seconds (when received is known). */
  completed: Array<{ tenant: string; latencySeconds: number | undefined }>;
  failed: Array<{ tenant: string }>;
}

export function emptyEffects(): LineageEffects {
  return {
    filesReceived: new Map(),
    filesRejected: new Map(),
    recordsExtracted: new Map(),
    recordsValid: new Map(),
    recordsInvalid: new Map(),
    recordsLoaded: new Map(),
    recordsRejected: new Map(),
    completed: [],
    failed: [],
  };
}

function add(map: Map<string, number>, tenant: string, n: number): void {
  if (n > 0) map.set(tenant, (map.get(tenant) ?? 0) + n);
}

function earliest(a: number | null, b: number): number {
  return a === null ? b : Math.min(a, b);
}

/**
 * Applies one event to an import's lineage, in place. Repeats must be filtered out before
 * (RecordsLoaded by batch_id, FileExtracted by piece, record-level ProcessingErrors by source
 * message): counts add.
 * Field-setting events are idempotent on their own.
 */
export function applyEvent(lineage: Lineage, event: LineageEvent, effects: LineageEffects = emptyEffects()): void {
  if (lineage.tenant === '' && event.tenant !== '') lineage.tenant = event.tenant;
  const tenant = lineage.tenant;
  lineage.lastEventAt = lineage.lastEventAt === null ? event.at : Math.max(lineage.lastEventAt, event.at);
  switch (event.kind) {
    case 'received':
      if (lineage.recordsExpected === null) add(effects.filesReceived, tenant, 1);
      lineage.recordsExpected = event.recordsExpected;
      lineage.size = event.size;
      lineage.filename ??= event.filename;
      lineage.rawObject ??= event.rawObject ?? null;
      lineage.acceptedAt ??= event.acceptedAt ?? null;
      lineage.replayOf ??= event.replayOf ?? null;
      lineage.receivedAt = earliest(lineage.receivedAt, event.at);
      break;
    case 'rejected':
      if (lineage.failedAt === null) add(effects.filesRejected, tenant, 1);
      lineage.size ??= event.size;
      lineage.filename ??= event.filename;
      lineage.receivedAt = earliest(lineage.receivedAt, event.at);
      lineage.failedAt = earliest(lineage.failedAt, event.at);
      lineage.errorCode = event.code;
      lineage.errorMessage = event.message;
      break;
    case 'extracted':
      add(effects.recordsExtracted, tenant, event.extracted);
      lineage.extracted = (lineage.extracted ?? 0) + event.extracted;
      lineage.pieces = event.pieces;
      lineage.piecesExtracted += 1;
      // The file is extracted when its last piece is.
      lineage.extractedAt = lineage.extractedAt === null ? event.at : Math.max(lineage.extractedAt, event.at);
      lineage.receivedAt = earliest(lineage.receivedAt, event.receivedAt);
      break;
    case 'invalid':
      lineage.invalid += 1;
      add(effects.recordsInvalid, tenant, 1);
      break;
    case 'loaded':
      lineage.inserted += event.inserted;
      lineage.updated += event.updated;
      lineage.unchanged += event.unchanged;
      lineage.loaded += event.inserted + event.updated + event.unchanged;
      lineage.rejected += event.rejected;
      add(effects.recordsLoaded, tenant, event.inserted + event.updated + event.unchanged);
      add(effects.recordsRejected, tenant, event.rejected);
      add(effects.recordsValid, tenant, event.inserted + event.updated + event.unchanged + event.rejected);
      break;
    case 'processing-error':
      if (event.effect === 'fail') {
        // The file-level failure is what the import shows, over any record-level error.
        const firstFailure = lineage.failedAt === null;
        lineage.failedAt = earliest(lineage.failedAt, event.at);
        if (firstFailure) {
          lineage.errorCode = event.code;
          lineage.errorMessage = event.message;
        }
      } else {
        if (event.effect === 'unprocessed') lineage.unprocessed += 1;
        if (lineage.errorCode === null) {
          lineage.errorCode = event.code;
          lineage.errorMessage = event.message;
        }
      }
      break;
  }
}

/**
 * Sets the status the counts add up to, and the completion time when the import just became
 * complete (then also notes it in `effects` for the latency histogram).
 */
export function settle(lineage: Lineage, effects: LineageEffects = emptyEffects()): void {
  const before = lineage.status;
  const after = computeStatus(lineage);
  lineage.status = after;
  if (after === 'complete' && before !== 'complete') {
    lineage.completedAt ??= lineage.lastEventAt ?? Date.now();
    const latencySeconds = lineage.receivedAt === null ? undefined : Math.max(0, (lineage.completedAt - lineage.receivedAt) / 1000);
    effects.completed.push({ tenant: lineage.tenant, latencySeconds });
  }
  if (after === 'failed' && before !== 'failed') effects.failed.push({ tenant: lineage.tenant });
}

const iso = (ms: number | null) => (ms === null ? null : new Date(ms).toISOString());

/**
 * A lineage under the snake_case names the HTTP API and the imports table share, its times
 * (epoch milliseconds) converted by `time`: ISO 8601 for the API, a Date for the table.
 */
export function snakeCaseLineage<Time>(lineage: Lineage, time: (ms: number | null) => Time) {
  return {
    request_id: lineage.requestId,
    tenant: lineage.tenant,
    status: lineage.status,
    filename: lineage.filename,
    size: lineage.size,
    raw_object: lineage.rawObject,
    replay_of: lineage.replayOf,
    accepted_at: time(lineage.acceptedAt),
    records_expected: lineage.recordsExpected,
    extracted: lineage.extracted,
    pieces: lineage.pieces,
    pieces_extracted: lineage.piecesExtracted,
    invalid: lineage.invalid,
    loaded: lineage.loaded,
    inserted: lineage.inserted,
    updated: lineage.updated,
    unchanged: lineage.unchanged,
    rejected: lineage.rejected,
    unprocessed: lineage.unprocessed,
    error_code: lineage.errorCode,
    error_message: lineage.errorMessage,
    received_at: time(lineage.receivedAt),
    extracted_at: time(lineage.extractedAt),
    completed_at: time(lineage.completedAt),
    failed_at: time(lineage.failedAt),
    last_event_at: time(lineage.lastEventAt),
  };
}

/** The JSON shape of an import in the HTTP API; `updated_at` is when its row last changed. */
export type ImportJson = Omit<ReturnType<typeof snakeCaseLineage<string | null>>, 'last_event_at'> & { updated_at: string | null };

export function toJson(lineage: Lineage, updatedAt: number | null = null): ImportJson {
  const { last_event_at: _lastEventAt, ...fields } = snakeCaseLineage(lineage, iso);
  return { ...fields, updated_at: iso(updatedAt) };
}
