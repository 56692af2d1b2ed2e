/**
 * The replay runs' tables (sinks/postgres/migrations/0007 and 0008): `replay_runs` holds what a
 * run was asked for, `replay_files` every file it replays, listed in one transaction before the
 * start request is answered. A file is taken with one UPDATE ... WHERE state = 'pending'
 * (FOR UPDATE SKIP LOCKED picks it), so two processes never emit the same file.
 */
import type { Postgres } from '../core/postgres.js';

/** A file a run replays: an import the lineage knows was received and stored. */
export interface ReplayItem {
  tenant: string;
  requestId: string;
  receivedAt: number;
  acceptedAt: number | null;
  filename: string | null;
  /** Where the file is (`s3://bucket/key`): for a replay, its original's object. */
  rawObject: string | null;
  recordsExpected: number | null;
}

/** A file as a run lists it: its replay's request id ('' when none fits) and its place. */
export interface PlannedFile extends ReplayItem {
  position: number;
  replayRequestId: string;
  /** Set when the file cannot be replayed whatever happens (its request id is too long): it starts failed. */
  refusal?: { code: string; message: string };
}

export interface ReplayRun {
  runId: string;
  tenant: string;
  since: number | null;
  until: number | null;
}

export type FileState = 'pending' | 'emitting' | 'emitted' | 'failed';

export interface RunProgress {
  run_id: string;
  tenant: string;
  since: string | null;
  until: string | null;
  /** Every file of the run, listed when it started. */
  files: number;
  /** Files emitted or failed. */
  files_done: number;
  emitted: number;
  failed: number;
  /** Files not emitted yet (pending, or being emitted). */
  pending: number;
  /** Records of the replays whose fate the lineage knows (loaded, invalid, refused, lost). */
  records_done: number;
  /** Records of every file of the run, as the ingress counted them. */
  records_expected: number;
  /** The replays' loaded records so far (their lineage): new rows, rows whose data changed, rows left as they were. */
  inserted: number;
  updated: number;
  unchanged: number;
  replays: Array<{
    request_id: string;
    replay_request_id: string;
    state: FileState;
    /** The replay's import status, once the lineage knows it. */
    status: string | null;
    /** Why the file could not be replayed (state failed), or why its import failed (status failed). */
    error_code: string | null;
    inserted: number;
    updated: number;
    unchanged: number;
  }>;
}

export interface ReplayRunStore {
  /** The imports of a tenant received in [since, until), oldest first, replays left out. */
  tenantItems(tenant: string, since?: number, until?: number): Promise<ReplayItem[]>;
  /** Stores the run and its files (pending, or failed for a refusal), in one transaction. */
  createRun(run: ReplayRun, files: readonly PlannedFile[]): Promise<void>;
  /** The run of this id (of `tenant` when given). */
  findRun(runId: string, tenant?: string): Promise<ReplayRun | undefined>;
  /** Makes a resumed run try its failed files again (not the refused ones: they would fail the same way). */
  retryFailed(runId: string): Promise<void>;
  /**
   * Takes the run's next file nobody holds: a pending one, or one whose claim is older than
   * `leaseMs` (its process died while emitting it). Undefined when none is left.
   */
  claimNext(runId: string, claimant: string, leaseMs: number): Promise<PlannedFile | undefined>;
  /** Keeps the claimant's claims on the run's files fresh while it emits them. */
  renewClaims(runId: string, claimant: string): Promise<void>;
  /** The claimant's file is emitted, or failed; a claim another process took over is left alone. */
  finish(runId: string, requestId: string, claimant: string, outcome: { state: 'emitted' } | { state: 'failed'; code: string; message: string }): Promise<void>;
  progress(runId: string, tenant?: string): Promise<RunProgress | undefined>;
}

interface FileRow {
  tenant: string;
  request_id: string;
  replay_request_id: string;
  position: number;
  raw_object: string | null;
  received_at: Date | null;
  accepted_at: Date | null;
  filename: string | null;
  records_expected: string | null;
}

const iso = (value: Date | null): string | null => (value === null ? null : value.toISOString());

export function createReplayRunStore(postgres: Postgres): ReplayRunStore {
  const { db } = postgres;
  function claimOne(runId: string, claimant: string, leaseMs: number): Promise<FileRow | null> {
    // The row subquery runs once (an InitPlan); a join on it may be run again per row and,
    // skipping locked rows each time, take several files at once.
    return db.oneOrNone<FileRow>(
      "UPDATE replay_files SET state = 'emitting', claimed_by = $2, claimed_at = now(), updated_at = now() " +
        'WHERE run_id = $1 AND (tenant, request_id) = (SELECT tenant, request_id FROM replay_files ' +
        "WHERE run_id = $1 AND (state = 'pending' OR (state = 'emitting' AND claimed_at < now() - make_interval(secs => $3))) " +
        'ORDER BY position, request_id LIMIT 1 FOR UPDATE SKIP LOCKED) ' +
        'RETURNING tenant, request_id, replay_request_id, position, raw_object, received_at, accepted_at, filename, records_expected',
      [runId, claimant, leaseMs / 1000],
    );
  }

  return {
    async tenantItems(tenant, since, until) {
      const rows = await db.any<{
        request_id: string;
        received_at: Date;
        accepted_at: Date | null;
        filename: string | null;
        raw_object: string | null;
        records_expected: string | null;
      }>(
        'SELECT request_id, received_at, accepted_at, filename, raw_object, records_expected FROM imports ' +
          'WHERE tenant = $1 AND replay_of IS NULL AND records_expected IS NOT NULL AND received_at >= $2 AND received_at < $3 ' +
          'ORDER BY received_at, request_id',
        [tenant, new Date(since ?? 0), new Date(until ?? 8.64e15)],
      );
      return rows.map((row) => ({
        tenant,
        requestId: row.request_id,
        receivedAt: row.received_at.getTime(),
        acceptedAt: row.accepted_at?.getTime() ?? null,
        filename: row.filename,
        rawObject: row.raw_object,
        recordsExpected: row.records_expected === null ? null : Number(row.records_expected),
      }));
    },

    async createRun(run, files) {
      await db.tx('replay-run', async (task) => {
        await task.none('INSERT INTO replay_runs (run_id, tenant, since, until) VALUES ($1, $2, $3, $4)', [
          run.runId,
          run.tenant,
          run.since === null ? null : new Date(run.since),
          run.until === null ? null : new Date(run.until),
        ]);
        const column = <T>(pick: (file: PlannedFile) => T) => files.map(pick);
        await task.none(
          'INSERT INTO replay_files (run_id, tenant, request_id, replay_request_id, state, error_code, error_message, position, raw_object, ' +
            'received_at, accepted_at, filename, records_expected) ' +
            'SELECT $1, * FROM unnest($2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[], $8::int[], $9::text[], ' +
            '$10::timestamptz[], $11::timestamptz[], $12::text[], $13::bigint[])',
          [
            run.runId,
            column((file) => file.tenant),
            column((file) => file.requestId),
            column((file) => file.replayRequestId),
            column((file) => (file.refusal === undefined ? 'pending' : 'failed')),
            column((file) => file.refusal?.code ?? null),
            column((file) => file.refusal?.message ?? null),
            column((file) => file.position),
            column((file) => file.rawObject),
            column((file) => new Date(file.receivedAt)),
            column((file) => (file.acceptedAt === null ? null : new Date(file.acceptedAt))),
            column((file) => file.filename),
            column((file) => (file.recordsExpected === null ? null : String(file.recordsExpected))),
          ],
        );
      });
    },

    async findRun(runId, tenant) {
      const row = await db.oneOrNone<{ run_id: string; tenant: string; since: Date | null; until: Date | null }>(
        'SELECT run_id, tenant, since, until FROM replay_runs WHERE run_id = $1 AND ($2::text IS NULL OR tenant = $2)',
        [runId, tenant ?? null],
      );
      return row === null ? undefined : { runId: row.run_id, tenant: row.tenant, since: row.since?.getTime() ?? null, until: row.until?.getTime() ?? null };
    },

    async retryFailed(runId) {
      await db.none(
        "UPDATE replay_files SET state = 'pending', error_code = NULL, error_message = NULL, updated_at = now() " +
          "WHERE run_id = $1 AND state = 'failed' AND error_code IS DISTINCT FROM 'REPLAY_ID_TOO_LONG'",
        [runId],
      );
    },

    async claimNext(runId, claimant, leaseMs) {
      let row: FileRow | null = null;
      // A row another claimant took between this one's snapshot and its lock drops out of the
      // LIMIT 1 without the next one taking its place: look again while pending files are left.
      for (let attempt = 0; row === null && attempt < 10; attempt += 1) {
        row = await claimOne(runId, claimant, leaseMs);
        if (row !== null) break;
        const left = await db.one<{ left: boolean }>("SELECT EXISTS (SELECT 1 FROM replay_files WHERE run_id = $1 AND state = 'pending') AS left", [runId]);
        if (!left.left) break;
      }
      if (row === null) return undefined;
      return {
        tenant: row.tenant,
        requestId: row.request_id,
        replayRequestId: row.replay_request_id,
        position: row.position,
        rawObject: row.raw_object,
        receivedAt: row.received_at?.getTime() ?? 0,
        acceptedAt: row.accepted_at?.getTime() ?? null,
        filename: row.filename,
        recordsExpected: row.records_expected === null ? null : Number(row.records_expected),
      };
    },

    async renewClaims(runId, claimant) {
      await db.none("UPDATE replay_files SET claimed_at = now() WHERE run_id = $1 AND claimed_by = $2 AND state = 'emitting'", [runId, claimant]);
    },

    async finish(runId, requestId, claimant, outcome) {
      await db.none(
        'UPDATE replay_files SET state = $4, error_code = $5, error_message = $6, updated_at = now() ' +
          "WHERE run_id = $1 AND request_id = $2 AND claimed_by = $3 AND state = 'emitting'",
        [runId, requestId, claimant, outcome.state, outcome.state === 'failed' ? outcome.code : null, outcome.state === 'failed' ? outcome.message : null],
      );
    },

    async progress(runId, tenant) {
      const run = await db.oneOrNone<{ tenant: string; since: Date | null; until: Date | null }>(
        'SELECT tenant, since, until FROM replay_runs WHERE run_id = $1 AND ($2::text IS NULL OR tenant = $2)',
        [runId, tenant ?? null],
      );
      if (run === null) return undefined;
      const rows = await db.any<{
        request_id: string;
        replay_request_id: string;
        state: FileState;
        error_code: string | null;
        status: string | null;
        import_error: string | null;
        done: string | null;
        expected: string | null;
        inserted: string | null;
        updated: string | null;
        unchanged: string | null;
      }>(
        'SELECT f.request_id, f.replay_request_id, f.state, f.error_code, i.status, i.error_code AS import_error, ' +
          '(i.loaded + i.invalid + i.rejected + i.unprocessed) AS done, f.records_expected AS expected, i.inserted, i.updated, i.unchanged ' +
          'FROM replay_files f LEFT JOIN imports i ON i.tenant = f.tenant AND i.request_id = f.replay_request_id ' +
          'WHERE f.run_id = $1 AND f.tenant = $2 ORDER BY f.position, f.request_id',
        [runId, run.tenant],
      );
      return summarizeRun(
        { runId, tenant: run.tenant, since: iso(run.since), until: iso(run.until) },
        rows.map((row) => ({
          requestId: row.request_id,
          replayRequestId: row.replay_request_id,
          state: row.state,
          errorCode: row.state === 'failed' ? row.error_code : row.status === 'failed' ? row.import_error : null,
          status: row.status,
          recordsDone: Number(row.done ?? 0),
          recordsExpected: Number(row.expected ?? 0),
          loaded: { inserted: Number(row.inserted ?? 0), updated: Number(row.updated ?? 0), unchanged: Number(row.unchanged ?? 0) },
        })),
      );
    },
  };
}

/** A run's progress from its files' states and their replays' lineage. */
export function summarizeRun(
  run: { runId: string; tenant: string; since: string | null; until: string | null },
  files: ReadonlyArray<{
    requestId: string;
    replayRequestId: string;
    state: FileState;
    errorCode: string | null;
    status: string | null;
    recordsDone: number;
    recordsExpected: number;
    /** The replay's loaded records as its lineage counts them (none yet when absent). */
    loaded?: { inserted: number; updated: number; unchanged: number };
  }>,
): RunProgress {
  const loaded = (file: (typeof files)[number]) => file.loaded ?? { inserted: 0, updated: 0, unchanged: 0 };
  const total = (count: 'inserted' | 'updated' | 'unchanged') => files.reduce((sum, file) => sum + loaded(file)[count], 0);
  const count = (state: FileState) => files.filter((file) => file.state === state).length;
  const emitted = count('emitted');
  const failed = count('failed');
  return {
    run_id: run.runId,
    tenant: run.tenant,
    since: run.since,
    until: run.until,
    files: files.length,
    files_done: emitted + failed,
    emitted,
    failed,
    pending: files.length - emitted - failed,
    records_done: files.reduce((sum, file) => sum + file.recordsDone, 0),
    records_expected: files.reduce((sum, file) => sum + file.recordsExpected, 0),
    inserted: total('inserted'),
    updated: total('updated'),
    unchanged: total('unchanged'),
    replays: files.map((file) => ({
      request_id: file.requestId,
      replay_request_id: file.replayRequestId,
      state: file.state,
      status: file.status,
      error_code: file.errorCode,
      ...loaded(file),
    })),
  };
}
