/**
 * Fakes for the replay's seams, for unit tests: the run store in memory (what replay-store.ts
 * keeps in PostgreSQL, claims included) and an S3 client that holds objects in a map.
 */
import { createHash } from 'node:crypto';
import { GetBucketLifecycleConfigurationCommand, GetObjectCommand, HeadObjectCommand, type LifecycleRule, type S3Client } from '@aws-sdk/client-s3';
import { Readable } from 'node:stream';
import type { EventCodec } from '../core/event-codec.js';
import type { ReplayDeps } from './replay.js';
import { summarizeRun, type FileState, type PlannedFile, type ReplayItem, type ReplayRun, type ReplayRunStore, type RunProgress } from './replay-store.js';

interface StoredFile extends PlannedFile {
  state: FileState;
  claimedBy: string | null;
  claimedAt: number;
  errorCode: string | null;
}

export class MemoryRunStore implements ReplayRunStore {
  readonly runs = new Map<string, ReplayRun>();
  readonly files = new Map<string, StoredFile[]>();
  /** The imports tenantItems lists, whatever the window asked (a test sets it). */
  imports: ReplayItem[] = [];
  /** Lineage of the replays: status and records done, by replay request id. */
  readonly lineage = new Map<string, { status: string; done: number; errorCode?: string; loaded?: { inserted: number; updated: number; unchanged: number } }>();
  now = () => Date.now();

  async tenantItems(tenant: string, since?: number, until?: number): Promise<ReplayItem[]> {
    return this.imports.filter((item) => item.tenant === tenant && item.receivedAt >= (since ?? 0) && item.receivedAt < (until ?? 8.64e15));
  }

  async createRun(run: ReplayRun, files: readonly PlannedFile[]): Promise<void> {
    if (this.runs.has(run.runId)) throw new Error(`duplicate key: run ${run.runId}`);
    this.runs.set(run.runId, run);
    this.files.set(
      run.runId,
      files.map((file) => ({
        ...file,
        state: file.refusal === undefined ? 'pending' : 'failed',
        claimedBy: null,
        claimedAt: 0,
        errorCode: file.refusal?.code ?? null,
      })),
    );
  }

  async findRun(runId: string, tenant?: string): Promise<ReplayRun | undefined> {
    const run = this.runs.get(runId);
    return run === undefined || (tenant !== undefined && run.tenant !== tenant) ? undefined : run;
  }

  async retryFailed(runId: string): Promise<void> {
    for (const file of this.files.get(runId) ?? []) {
      if (file.state === 'failed' && file.errorCode !== 'REPLAY_ID_TOO_LONG') {
        file.state = 'pending';
        file.errorCode = null;
      }
    }
  }

  async claimNext(runId: string, claimant: string, leaseMs: number): Promise<PlannedFile | undefined> {
    const file = (this.files.get(runId) ?? []).find(
      (candidate) => candidate.state === 'pending' || (candidate.state === 'emitting' && candidate.claimedAt < this.now() - leaseMs),
    );
    if (file === undefined) return undefined;
    file.state = 'emitting';
    file.claimedBy = claimant;
    file.claimedAt = this.now();
    return { ...file };
  }

  async renewClaims(runId: string, claimant: string): Promise<void> {
    for (const file of this.files.get(runId) ?? []) if (file.claimedBy === claimant && file.state === 'emitting') file.claimedAt = this.now();
  }

  async finish(
    runId: string,
    requestId: string,
    claimant: string,
    outcome: { state: 'emitted' } | { state: 'failed'; code: string; message: string },
  ): Promise<void> {
    const file = (this.files.get(runId) ?? []).find((candidate) => candidate.requestId === requestId);
    if (file === undefined || file.claimedBy !== claimant || file.state !== 'emitting') return;
    file.state = outcome.state;
    file.errorCode = outcome.state === 'failed' ? outcome.code : null;
  }

  async progress(runId: string, tenant?: string): Promise<RunProgress | undefined> {
    const run = await this.findRun(runId, tenant);
    if (run === undefined) return undefined;
    const iso = (ms: number | null) => (ms === null ? null : new Date(ms).toISOString());
    return summarizeRun(
      { runId, tenant: run.tenant, since: iso(run.since), until: iso(run.until) },
      (this.files.get(runId) ?? []).map((file) => {
        const lineage = this.lineage.get(file.replayRequestId);
        return {
          requestId: file.requestId,
          replayRequestId: file.replayRequestId,
          state: file.state,
          errorCode: file.state === 'failed' ? file.errorCode : lineage?.status === 'failed' ? (lineage.errorCode ?? null) : null,
          status: lineage?.status ?? null,
          recordsDone: lineage?.done ?? 0,
          recordsExpected: file.recordsExpected ?? 0,
          loaded: lineage?.loaded,
        };
      }),
    );
  }
}

/** An S3 client with objects in a map; `calls` lists every key asked for. */
export function fakeS3(objects: Map<string, string>, rules?: LifecycleRule[]): { s3: S3Client; calls: string[] } {
  const calls: string[] = [];
  const s3 = {
    async send(command: unknown) {
      if (command instanceof HeadObjectCommand || command instanceof GetObjectCommand) {
        const key = `${command.input.Bucket}/${command.input.Key}`;
        calls.push(key);
        const body = objects.get(key);
        if (body === undefined) throw Object.assign(new Error('NotFound'), { name: 'NotFound', $metadata: { httpStatusCode: 404 } });
        if (command instanceof HeadObjectCommand) {
          return {
            ETag: '"e"',
            ContentLength: Buffer.byteLength(body),
            ContentType: 'application/x-ndjson',
            Metadata: { format: 'ndjson', sha256: createHash('sha256').update(body).digest('hex') },
          };
        }
        return { Body: Readable.from([Buffer.from(body)]) };
      }
      if (command instanceof GetBucketLifecycleConfigurationCommand) {
        if (rules === undefined) throw Object.assign(new Error('NoSuchLifecycleConfiguration'), { name: 'NoSuchLifecycleConfiguration' });
        return { Rules: rules };
      }
      throw new Error(`fake S3: unexpected ${String((command as object).constructor.name)}`);
    },
  };
  return { s3: s3 as unknown as S3Client, calls };
}

export interface SentEvent {
  topic: string;
  key: string;
  headers: Record<string, string>;
}

/** Replay deps over the fakes; `sent` collects what was announced. `gate`, when set, holds each send until it resolves. */
export function fakeReplayDeps(
  runs: ReplayRunStore,
  s3: S3Client,
  options: { claimant?: string; gate?: () => Promise<void> } = {},
): { deps: ReplayDeps; sent: SentEvent[] } {
  const sent: SentEvent[] = [];
  const codec = { encode: async () => Buffer.from('event') } as unknown as EventCodec;
  return {
    sent,
    deps: {
      s3,
      runs,
      codec,
      send: async (topic, message) => {
        await options.gate?.();
        sent.push({ topic, key: message.key, headers: message.headers });
      },
      pieceBytes: 1024 * 1024,
      maxDepth: 64,
      maxLineBytes: 1024 * 1024,
      claimant: options.claimant ?? 'test-claimant',
      claimLeaseMs: 60_000,
    },
  };
}
