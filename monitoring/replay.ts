/**
 * Replay: the processor runs again on files the archive (S3) already holds, without the client
 * sending them. A replay is a new import — request id `<original>-r<run>` — announced with a
 * FileExtractSuccess that points to the original's object, names it in `replay_of` and carries
 * its `accepted_at`. The sink orders copies of a company by (accepted_at, request id, record
 * index): the replay's id sorts just after its original's (it extends it), so a replay overwrites
 * its own original's rows (a changed contract applies) but never a later import's.
 *
 * The object is read once as a stream, to check it against the sha256 the ingress stored and to
 * plan its pieces as the ingress did (a large file spreads over the replicas again).
 *
 * A run is a list of files in `replay_files` (PostgreSQL): each goes pending → emitting →
 * emitted, so a run stopped and started again with the same run id emits only what is left.
 */
import { randomBytes, createHash } from 'node:crypto';
import type { Readable } from 'node:stream';
import { GetBucketLifecycleConfigurationCommand, GetObjectCommand, HeadObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import { PipelineError } from '../core/errors.js';
import type { EventCodec } from '../core/event-codec.js';
import { avroContentType } from '../core/event-codec.js';
import { PiecePlanner } from '../core/file-pieces.js';
import { JsonScanner } from '../core/json-stream.js';
import { fileKey, rawObjectKey, topics } from '../core/pipeline.js';
import type { Postgres } from '../core/postgres.js';
import type { FileExtractSuccess } from '../schemas/index.js';
import type { Lineage } from './lineage.js';

/** Why a file cannot be replayed; `status` is the HTTP answer the API gives. */
export class ReplayError extends PipelineError {
  constructor(
    code: 'REPLAY_NOTHING_TO_REPLAY' | 'ARCHIVE_OBJECT_MISSING' | 'ARCHIVE_OBJECT_CHANGED' | 'REPLAY_ID_TOO_LONG' | 'REPLAY_RUN_UNKNOWN',
    message: string,
    readonly status: number,
  ) {
    super(code, message);
  }
}

export interface ReplayDeps {
  s3: S3Client;
  postgres: Postgres;
  codec: EventCodec;
  /** Sends one event (acks=all, idempotent producer). */
  send(topic: string, message: { key: string; value: Buffer; headers: Record<string, string> }): Promise<void>;
  /** Target piece size, as the ingress's INGRESS_PIECE_BYTES. */
  pieceBytes: number;
  maxDepth: number;
  maxLineBytes: number;
}

/** A file a run replays: an import the lineage knows was received and stored. */
export interface ReplayItem {
  tenant: string;
  requestId: string;
  receivedAt: number;
  acceptedAt: number | null;
  filename: string | null;
}

export interface FileOutcome {
  item: ReplayItem;
  replayRequestId: string;
  state: 'emitted' | 'skipped' | 'failed';
  records?: number;
  /** Why it failed, with the HTTP status the API answers it with. */
  error?: { code: string; message: string; status: number };
}

/** A run id that sorts by time (so a later run's replays win over an earlier run's): base36 ms + 4 hex. */
export function newRunId(now = Date.now()): string {
  return `${now.toString(36)}${randomBytes(2).toString('hex')}`;
}

/** `<original>-r<run>`; undefined when that would pass the 128 characters a request id may have. */
export function replayRequestId(original: string, runId: string): string | undefined {
  const id = `${original}-r${runId}`;
  return id.length <= 128 ? id : undefined;
}

/** The file of an import, if it has one to replay (received, not refused). */
export function replayItemOf(lineage: Lineage): ReplayItem | undefined {
  if (lineage.receivedAt === null || lineage.recordsExpected === null) return undefined;
  return {
    tenant: lineage.tenant,
    requestId: lineage.requestId,
    receivedAt: lineage.receivedAt,
    acceptedAt: lineage.acceptedAt,
    filename: lineage.filename,
  };
}

/** The imports of a tenant received in [since, until), oldest first, replays left out. */
export async function tenantReplayItems(postgres: Postgres, tenant: string, since?: number, until?: number): Promise<ReplayItem[]> {
  const rows = await postgres.db.any<{ request_id: string; received_at: Date; accepted_at: Date | null; filename: string | null }>(
    'SELECT request_id, received_at, accepted_at, filename FROM imports WHERE tenant = $1 AND replay_of IS NULL AND records_expected IS NOT NULL ' +
      'AND received_at >= $2 AND received_at < $3 ORDER BY received_at, request_id',
    [tenant, new Date(since ?? 0), new Date(until ?? 8.64e15)],
  );
  return rows.map((row) => ({
    tenant,
    requestId: row.request_id,
    receivedAt: row.received_at.getTime(),
    acceptedAt: row.accepted_at?.getTime() ?? null,
    filename: row.filename,
  }));
}

/** What the bucket's lifecycle rules remove, in words, for the "object is gone" answer. */
async function lifecycleSummary(s3: S3Client, bucket: string): Promise<string> {
  try {
    const config = await s3.send(new GetBucketLifecycleConfigurationCommand({ Bucket: bucket }));
    const rules = (config.Rules ?? [])
      .filter((rule) => rule.Status === 'Enabled' && rule.Expiration?.Days !== undefined)
      .map((rule) => `${rule.Filter?.Prefix ?? rule.Prefix ?? '(all)'} after ${rule.Expiration!.Days} days`);
    return rules.length === 0 ? 'the bucket has no expiry rule: the object was deleted' : `the bucket's lifecycle expires ${rules.join(', ')}`;
  } catch {
    return 'the bucket has no lifecycle configuration: the object was deleted';
  }
}

/** Reads the archived file, checks it, and announces the replay. Returns its record count. */
async function emitReplay(deps: ReplayDeps, bucket: string, item: ReplayItem, replayId: string): Promise<number> {
  const key = rawObjectKey(item.tenant, item.requestId, item.receivedAt);
  let head;
  try {
    head = await deps.s3.send(new HeadObjectCommand({ Bucket: bucket, Key: key }));
  } catch (error) {
    if ((error as { name?: string }).name === 'NotFound' || (error as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode === 404) {
      throw new ReplayError(
        'ARCHIVE_OBJECT_MISSING',
        `the archive no longer holds s3://${bucket}/${key} of import ${item.requestId}: ${await lifecycleSummary(deps.s3, bucket)}`,
        410,
      );
    }
    throw error;
  }
  const meta = head.Metadata ?? {};
  const object = await deps.s3.send(new GetObjectCommand({ Bucket: bucket, Key: key, IfMatch: head.ETag }));
  const format = meta.format === 'ndjson' ? 'ndjson' : 'json';
  const pieces = new PiecePlanner(deps.pieceBytes);
  const scanner = new JsonScanner({
    expect: format,
    maxDepth: deps.maxDepth,
    maxLineBytes: deps.maxLineBytes,
    onRecordBounds: (index, start, end) => pieces.record(index, start, end),
  });
  const hash = createHash('sha256');
  for await (const chunk of object.Body as Readable) {
    scanner.write(chunk as Buffer);
    hash.update(chunk as Buffer);
  }
  const scan = scanner.end();
  const sha256 = hash.digest('hex');
  if (meta.sha256 !== undefined && meta.sha256 !== sha256) {
    throw new ReplayError('ARCHIVE_OBJECT_CHANGED', `s3://${bucket}/${key} is not the file the ingress stored (sha256 ${sha256}, stored ${meta.sha256})`, 409);
  }
  const now = Date.now();
  const event: FileExtractSuccess = {
    request_id: replayId,
    tenant: item.tenant,
    bucket,
    key,
    etag: head.ETag ?? '',
    size: Number(head.ContentLength ?? scan.bytes),
    sha256,
    record_count: scan.records,
    format: scan.format,
    content_type: head.ContentType ?? null,
    original_filename: item.filename,
    received_at: now,
    // The original's: the replay orders among other imports exactly where its original did.
    accepted_at: item.acceptedAt ?? item.receivedAt,
    pieces: pieces.finish(scan.format),
    replay_of: item.requestId,
  };
  await deps.send(topics.fileExtractSuccess.name, {
    key: fileKey(item.tenant, replayId),
    value: await deps.codec.encode(topics.fileExtractSuccess.name, event),
    headers: { request_id: replayId, event_type: 'FileExtractSuccess', 'content-type': avroContentType, replay_of: item.requestId },
  });
  return scan.records;
}

async function setState(postgres: Postgres, runId: string, item: ReplayItem, state: string, error?: { code: string; message: string }): Promise<void> {
  await postgres.db.none(
    'UPDATE replay_files SET state = $4, error_code = $5, error_message = $6, updated_at = now() WHERE run_id = $1 AND tenant = $2 AND request_id = $3',
    [runId, item.tenant, item.requestId, state, error?.code ?? null, error?.message ?? null],
  );
}

/**
 * Replays the files of a run, in order, one at a time. A file this run already emitted is
 * skipped. One left `emitting` by a run killed during that file's send is sent again: if the
 * first send had reached Kafka, that one file is announced twice (its rows stay the same; its
 * counts double). `onFile` learns every outcome.
 */
export async function runReplay(
  deps: ReplayDeps,
  bucket: string,
  runId: string,
  items: readonly ReplayItem[],
  onFile: (outcome: FileOutcome, done: number, total: number) => void = () => undefined,
  signal?: AbortSignal,
): Promise<FileOutcome[]> {
  const outcomes: FileOutcome[] = [];
  for (const item of items) {
    if (signal?.aborted) break;
    const replayId = replayRequestId(item.requestId, runId);
    let outcome: FileOutcome;
    if (replayId === undefined) {
      outcome = {
        item,
        replayRequestId: '',
        state: 'failed',
        error: {
          code: 'REPLAY_ID_TOO_LONG',
          message: `request id ${item.requestId} leaves no room for the replay suffix (128 characters at most)`,
          status: 409,
        },
      };
    } else {
      await deps.postgres.db.none(
        "INSERT INTO replay_files (run_id, tenant, request_id, replay_request_id, state) VALUES ($1, $2, $3, $4, 'pending') ON CONFLICT DO NOTHING",
        [runId, item.tenant, item.requestId, replayId],
      );
      const { state } = await deps.postgres.db.one<{ state: string }>('SELECT state FROM replay_files WHERE run_id = $1 AND tenant = $2 AND request_id = $3', [
        runId,
        item.tenant,
        item.requestId,
      ]);
      if (state === 'emitted') {
        outcome = { item, replayRequestId: replayId, state: 'skipped' };
      } else {
        await setState(deps.postgres, runId, item, 'emitting');
        try {
          const records = await emitReplay(deps, bucket, item, replayId);
          await setState(deps.postgres, runId, item, 'emitted');
          outcome = { item, replayRequestId: replayId, state: 'emitted', records };
        } catch (error) {
          const failure = {
            code: error instanceof PipelineError ? error.code : 'REPLAY_FAILED',
            message: (error as Error).message,
            status: error instanceof ReplayError ? error.status : 503,
          };
          await setState(deps.postgres, runId, item, 'failed', failure);
          outcome = { item, replayRequestId: replayId, state: 'failed', error: failure };
        }
      }
    }
    outcomes.push(outcome);
    onFile(outcome, outcomes.length, items.length);
  }
  return outcomes;
}

export interface RunProgress {
  run_id: string;
  files: number;
  emitted: number;
  failed: number;
  pending: number;
  /** Records of the emitted replays whose fate the lineage knows (loaded, invalid, refused, lost). */
  records_done: number;
  records_expected: number;
  replays: Array<{ request_id: string; replay_request_id: string; state: string; status: string | null; error_code: string | null }>;
}

/** A run's progress: its files' states, and the lineage of each replay. */
export async function runProgress(postgres: Postgres, runId: string, tenant?: string): Promise<RunProgress | undefined> {
  const rows = await postgres.db.any<{
    request_id: string;
    replay_request_id: string;
    state: string;
    error_code: string | null;
    status: string | null;
    done: string | null;
    expected: string | null;
  }>(
    'SELECT f.request_id, f.replay_request_id, f.state, f.error_code, i.status, ' +
      '(i.loaded + i.invalid + i.rejected + i.unprocessed) AS done, i.records_expected AS expected ' +
      'FROM replay_files f LEFT JOIN imports i ON i.tenant = f.tenant AND i.request_id = f.replay_request_id ' +
      'WHERE f.run_id = $1 AND ($2::text IS NULL OR f.tenant = $2) ORDER BY f.request_id',
    [runId, tenant ?? null],
  );
  if (rows.length === 0) return undefined;
  const count = (state: string) => rows.filter((row) => row.state === state).length;
  return {
    run_id: runId,
    files: rows.length,
    emitted: count('emitted'),
    failed: count('failed'),
    pending: rows.length - count('emitted') - count('failed'),
    records_done: rows.reduce((sum, row) => sum + Number(row.done ?? 0), 0),
    records_expected: rows.reduce((sum, row) => sum + Number(row.expected ?? 0), 0),
    replays: rows.map((row) => ({
      request_id: row.request_id,
      replay_request_id: row.replay_request_id,
      state: row.state,
      status: row.status,
      error_code: row.error_code,
    })),
  };
}
