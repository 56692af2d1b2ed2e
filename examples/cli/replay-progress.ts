/**
 * How `npm run replay` reads a run's progress (GET /replays/<run>): when the run is over, and
 * what failed. A file is settled once its replay could not be sent, or its replay import reached
 * a final status: complete or failed.
 */

/** The fields of a run's progress this command reads (README, "Replay from the archive"). */
export interface RunProgress {
  files: number;
  files_done: number;
  emitted: number;
  failed: number;
  records_done: number;
  records_expected: number;
  /** Absent from a monitoring older than the unchanged count. */
  updated?: number;
  unchanged?: number;
  replays: Array<{ request_id: string; replay_request_id: string; state: string; status?: string | null; error_code?: string | null }>;
}

export interface RunVerdict {
  /** Every file is settled: the command can end. */
  settled: boolean;
  /** One line per file that could not be replayed, or whose replay failed in the pipeline. */
  failures: string[];
}

export function runVerdict(progress: RunProgress): RunVerdict {
  const failures: string[] = [];
  let settled = true;
  for (const replay of progress.replays) {
    if (replay.state === 'failed') {
      failures.push(`FAIL  ${replay.request_id}  not replayed: ${replay.error_code ?? 'unknown error'}`);
    } else if (replay.state === 'emitted' && replay.status === 'failed') {
      failures.push(`FAIL  ${replay.request_id}  its replay ${replay.replay_request_id} failed: ${replay.error_code ?? 'unknown error'}`);
    } else if (!(replay.state === 'emitted' && replay.status === 'complete')) {
      settled = false;
    }
  }
  return { settled, failures };
}

/** The run's last line: files and records, and what the replays changed. */
export function runSummary(progress: RunProgress, failed: number): string {
  return (
    `${progress.emitted} of ${progress.files} files replayed, ${progress.records_done} of ${progress.records_expected} records accounted for ` +
    `(updated ${progress.updated ?? 0}, unchanged ${progress.unchanged ?? 0}), ${failed} failed`
  );
}
