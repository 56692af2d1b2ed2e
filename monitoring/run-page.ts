/**
 * GET /replays/:run_id with Accept: text/html — a replay run as a page, rendered on the server
 * without any script: a <progress> of its files done, its records and what the replays changed
 * (updated, unchanged), and each file with a link to its replay's import page. While the run
 * goes on the page looks again every 2 s by itself (a meta refresh).
 */
import { escapeHtml, pageHead } from './page.js';
import type { RunProgress } from './replay-store.js';

/** The run id of a replay import (`<original>-r<run id>`, monitoring/replay.ts), if it is one. */
export function runIdOfReplay(requestId: string, replayOf: string | null): string | undefined {
  if (replayOf === null || !requestId.startsWith(`${replayOf}-r`)) return undefined;
  const runId = requestId.slice(replayOf.length + 2);
  return /^[a-z0-9]{6,24}$/.test(runId) ? runId : undefined;
}

/** `<progress>` of files done out of the run's files, with the same figures as text for a reader that shows no bar. */
export function filesProgress(progress: Pick<RunProgress, 'files' | 'files_done'>): string {
  return (
    `<progress id="files-progress" value="${progress.files_done}" max="${Math.max(progress.files, 1)}">` +
    `${progress.files_done} of ${progress.files} files</progress> <span id="files-done">${progress.files_done} of ${progress.files} files done</span>`
  );
}

export function renderRunPage(progress: RunProgress & { running: boolean }): string {
  const tenant = encodeURIComponent(progress.tenant);
  const rows = progress.replays
    .map(
      (replay) =>
        `<tr class="replay" data-state="${escapeHtml(replay.state)}">` +
        `<td><a href="../imports/${encodeURIComponent(replay.request_id)}?tenant=${tenant}">${escapeHtml(replay.request_id)}</a></td>` +
        `<td><a href="../imports/${encodeURIComponent(replay.replay_request_id)}?tenant=${tenant}">${escapeHtml(replay.replay_request_id)}</a></td>` +
        `<td>${escapeHtml(replay.state)}</td><td>${escapeHtml(replay.status ?? '—')}</td>` +
        `<td>${replay.inserted}</td><td>${replay.updated}</td><td>${replay.unchanged}</td><td>${escapeHtml(replay.error_code ?? '')}</td></tr>`,
    )
    .join('\n');
  const window = [progress.since === null ? null : `since ${progress.since}`, progress.until === null ? null : `until ${progress.until}`]
    .filter(Boolean)
    .join(', ');
  return `${pageHead(`Replay run ${progress.run_id}`, progress.running ? '\n<meta http-equiv="refresh" content="2">' : '')}
<nav><a id="back" href="../?tenant=${tenant}">← Imports of ${escapeHtml(progress.tenant)}</a></nav>
<h1>Replay run <code>${escapeHtml(progress.run_id)}</code> <span id="run-state">${progress.running ? 'running' : 'not running'}</span></h1>
<p id="run-progress">${filesProgress(progress)}</p>
<dl class="facts">
<dt>Tenant</dt><dd>${escapeHtml(progress.tenant)}${window === '' ? '' : ` (${escapeHtml(window)})`}</dd>
<dt>Files</dt><dd id="files">${progress.emitted} replayed, ${progress.failed} not replayed, ${progress.pending} to go</dd>
<dt>Records</dt><dd id="records">${progress.records_done} of ${progress.records_expected} accounted for</dd>
<dt>Loaded</dt><dd id="loaded">${progress.inserted} inserted, updated ${progress.updated}, unchanged ${progress.unchanged}</dd>
</dl>
<h2>Files</h2>
<div class="table-scroll">
<table id="replays">
<thead><tr><th>Import</th><th>Replay</th><th>State</th><th>Status</th><th>Inserted</th><th>Updated</th><th>Unchanged</th><th>Error</th></tr></thead>
<tbody>
${rows}
</tbody>
</table>
</div>
</body>
</html>
`;
}
