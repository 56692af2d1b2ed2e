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
 * A run is a list of files stored before it starts (replay-store.ts): each goes pending →
 * emitting → emitted, taken by one process at a time, so a run stopped and started again with
 * the same run id emits only what is left, and two processes never emit the same file.
 */
import { randomBytes, createHash } from 'node:crypto';
import { hostname } from 'node:os';
import type { Readable } from 'node:stream';
import { GetBucketLifecycleConfigurationCommand, GetObjectCommand, HeadObjectCommand, type LifecycleRule, type S3Client } from '@aws-sdk/client-s3';
import { statusOf } from '../core/error-codes.js';
import { PipelineError } from '../core/errors.js';
import type { EventCodec } from '../core/event-codec.js';
import { avroContentType } from '../core/event-codec.js';
import { PiecePlanner } from '../core/file-pieces.js';
import { JsonScanner } from '../core/json-stream.js';
import { fileKey, rawObjectKey, topics } from '../core/pipeline.js';
import type { FileExtractSuccess } from '../schemas/index.js';
import type { Lineage } from './lineage.js';
import type { PlannedFile, ReplayItem, ReplayRunStore } from './replay-store.js';

export type { ReplayItem } from './replay-store.js';

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
  runs: ReplayRunStore;
  codec: EventCodec;
  /** Sends one event (acks=all, idempotent producer). */
  send(topic: string, message: { key: string; value: Buffer; headers: Record<string, string> }): Promise<void>;
  /** Target piece size, as the ingress's INGRESS_PIECE_BYTES. */
  pieceBytes: number;
  maxDepth: number;
  maxLineBytes: number;
  /** Who takes files (one per process: host, pid and a random part). */
  claimant: string;
  /** A claim not renewed for this long is taken over: its process died while emitting the file. */
  claimLeaseMs: number;
}

/** A claimant id for this process. */
export function newClaimant(): string {
  return `${hostname()}:${process.pid}:${randomBytes(3).toString('hex')}`;
}

export interface FileOutcome {
  item: ReplayItem;
  replayRequestId: string;
  state: 'emitted' | 'failed';
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
    rawObject: lineage.rawObject,
    recordsExpected: lineage.recordsExpected,
  };
}

/** The files a run lists for these items, in order; one whose replay id would be too long starts failed. */
export function planFiles(runId: string, items: readonly ReplayItem[]): PlannedFile[] {
  return items.map((item, position) => {
    const replayId = replayRequestId(item.requestId, runId);
    if (replayId !== undefined) return { ...item, position, replayRequestId: replayId };
    return {
      ...item,
      position,
      replayRequestId: '',
      refusal: { code: 'REPLAY_ID_TOO_LONG', message: `request id ${item.requestId} leaves no room for the replay suffix (128 characters at most)` },
    };
  });
}

/** The prefix a lifecycle rule applies to ('' for every object). */
function rulePrefix(rule: LifecycleRule): string {
  return rule.Filter?.Prefix ?? rule.Filter?.And?.Prefix ?? rule.Prefix ?? '';
}

/**
 * The enabled expiry rule that removed `key`: of the rules whose prefix the key starts with, the
 * one that expires soonest (it is the one that acted). Undefined when no rule covers the key.
 */
export function expiryRuleOf(rules: readonly LifecycleRule[], key: string): { id: string | undefined; prefix: string; days: number } | undefined {
  let found: { id: string | undefined; prefix: string; days: number } | undefined;
  for (const rule of rules) {
    const days = rule.Expiration?.Days;
    if (rule.Status !== 'Enabled' || days === undefined || !key.startsWith(rulePrefix(rule))) continue;
    if (found === undefined || days < found.days) found = { id: rule.ID, prefix: rulePrefix(rule), days };
  }
  return found;
}

/** What removed the object, in words, for the "object is gone" answer: the one rule that applies to it. */
async function removalOf(s3: S3Client, bucket: string, key: string): Promise<string> {
  let rules: LifecycleRule[];
  try {
    rules = (await s3.send(new GetBucketLifecycleConfigurationCommand({ Bucket: bucket }))).Rules ?? [];
  } catch {
    return 'the bucket has no lifecycle configuration: the object was deleted';
  }
  const rule = expiryRuleOf(rules, key);
  if (rule === undefined) return 'no lifecycle rule of the bucket expires it: the object was deleted';
  const name = rule.id === undefined ? '' : ` ${rule.id}`;
  return `the bucket's lifecycle rule${name} expires ${rule.prefix === '' ? 'every object' : `objects under ${rule.prefix}`} after ${rule.days} days`;
}

/** The bucket and key of an import's file: its stored raw_object, else where the ingress puts an original's. */
export function objectOf(item: ReplayItem, bucket: string): { bucket: string; key: string } {
  const match = /^s3:\/\/([^/]+)\/(.+)$/.exec(item.rawObject ?? '');
  if (match !== null) return { bucket: match[1]!, key: match[2]! };
  return { bucket, key: rawObjectKey(item.tenant, item.requestId, item.receivedAt) };
}

/** Reads the archived file, checks it, and announces the replay. Returns its record count. */
export async function emitReplay(deps: ReplayDeps, defaultBucket: string, item: ReplayItem, replayId: string): Promise<number> {
  const { bucket, key } = objectOf(item, defaultBucket);
  let head;
  try {
    head = await deps.s3.send(new HeadObjectCommand({ Bucket: bucket, Key: key }));
  } catch (error) {
    if ((error as { name?: string }).name === 'NotFound' || (error as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode === 404) {
      throw new ReplayError(
        'ARCHIVE_OBJECT_MISSING',
        `the archive no longer holds s3://${bucket}/${key} of import ${item.requestId}: ${await removalOf(deps.s3, bucket, key)}`,
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

/** Why a file failed, with the HTTP status the API answers it with. */
export function failureOf(error: unknown): { code: string; message: string; status: number } {
  const code = error instanceof PipelineError ? error.code : 'REPLAY_FAILED';
  // A file that does not parse is not "unavailable": its code's own status (the catalogue's).
  const status = error instanceof ReplayError ? error.status : error instanceof PipelineError && !error.retriable ? (statusOf(code) ?? 503) : 503;
  return { code, message: (error as Error).message, status };
}

/**
 * Replays the run's files (stored by createRun), one at a time, each taken with a claim so no
 * other process emits it too. A file claimed by a process that died during its send is sent
 * again once its lease ran out: if that first send had reached Kafka, that one file is announced
 * twice (its rows stay the same; its counts double). `onFile` learns every outcome; the run ends
 * when no file is left to take, or between two files once `signal` aborts.
 */
export async function runReplay(
  deps: ReplayDeps,
  bucket: string,
  runId: string,
  onFile: (outcome: FileOutcome) => void = () => undefined,
  signal?: AbortSignal,
): Promise<FileOutcome[]> {
  const outcomes: FileOutcome[] = [];
  while (signal?.aborted !== true) {
    const file = await deps.runs.claimNext(runId, deps.claimant, deps.claimLeaseMs);
    if (file === undefined) break;
    const renew = setInterval(() => void deps.runs.renewClaims(runId, deps.claimant).catch(() => undefined), Math.max(100, Math.floor(deps.claimLeaseMs / 3)));
    let outcome: FileOutcome;
    try {
      const records = await emitReplay(deps, bucket, file, file.replayRequestId);
      await deps.runs.finish(runId, file.requestId, deps.claimant, { state: 'emitted' });
      outcome = { item: file, replayRequestId: file.replayRequestId, state: 'emitted', records };
    } catch (error) {
      const failure = failureOf(error);
      await deps.runs.finish(runId, file.requestId, deps.claimant, { state: 'failed', code: failure.code, message: failure.message });
      outcome = { item: file, replayRequestId: file.replayRequestId, state: 'failed', error: failure };
    } finally {
      clearInterval(renew);
    }
    outcomes.push(outcome);
    onFile(outcome);
  }
  return outcomes;
}
