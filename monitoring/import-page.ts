/**
 * GET /imports/:request_id with Accept: text/html — one import as a page, rendered on the
 * server without any script: its timeline, its counts, where the raw file is, and the first
 * entries of its error report with links to all of them. It shares the list page's style (and so
 * its Content-Security-Policy).
 */
import type { ReportEntryJson } from './error-report.js';
import type { ImportJson } from './lineage.js';
import { escapeHtml, formatTime, pageHead } from './page.js';
import type { RunProgress } from './replay-store.js';
import { filesProgress } from './run-page.js';

/** Entries of the error report the page shows; the links give the rest. */
export const pageErrorLimit = 20;

/** Whether the client asked for a page rather than JSON: text/html is the first type it accepts. */
export function wantsHtml(accept: string | undefined): boolean {
  const first = (accept ?? '').split(',')[0]!.split(';')[0]!.trim().toLowerCase();
  return first === 'text/html' || first === 'application/xhtml+xml';
}

/** `+1.2 s`, `+3 min 4 s`: the time a step took after the file was received. */
export function elapsed(fromIso: string | null, toIso: string | null): string {
  if (fromIso === null || toIso === null) return '';
  const ms = Math.max(0, Date.parse(toIso) - Date.parse(fromIso));
  if (ms < 60_000) return `+${(ms / 1000).toFixed(1)} s`;
  const minutes = Math.floor(ms / 60_000);
  return `+${minutes} min ${Math.round((ms % 60_000) / 1000)} s`;
}

export interface TimelineStep {
  step: 'received' | 'extracted' | 'completed' | 'failed';
  label: string;
  at: string | null;
}

/** Received → extracted → loaded, or where it failed; a step not reached yet has no time. */
export function timeline(item: ImportJson): TimelineStep[] {
  const steps: TimelineStep[] = [
    { step: 'received', label: 'Received by the ingress', at: item.received_at },
    { step: 'extracted', label: 'Extracted (every piece)', at: item.extracted_at },
  ];
  if (item.failed_at !== null) steps.push({ step: 'failed', label: `Failed: ${item.error_code ?? 'error'}`, at: item.failed_at });
  else steps.push({ step: 'completed', label: 'Every record loaded or reported', at: item.completed_at });
  return steps;
}

const dash = (value: number | null) => (value === null ? '—' : String(value));

/** `run`: the replay run this import belongs to (a replay), its progress shown with a link to its page. */
export function renderImportPage(
  item: ImportJson,
  report: { counts: Record<string, number>; first: readonly ReportEntryJson[] },
  run?: Pick<RunProgress, 'run_id' | 'files' | 'files_done'>,
): string {
  const id = encodeURIComponent(item.request_id);
  const tenant = encodeURIComponent(item.tenant);
  // Relative to /imports/<id>: the page works behind a path prefix too.
  const errorsUrl = (format: string) => `${id}/errors?tenant=${tenant}${format === 'json' ? '' : `&format=${format}`}`;
  const total = Object.values(report.counts).reduce((sum, count) => sum + count, 0);
  const steps = timeline(item)
    .map(
      (step) =>
        `<li data-step="${step.step}" class="${step.at === null ? 'pending' : 'done'}">${escapeHtml(step.label)}` +
        ` <time>${escapeHtml(formatTime(step.at))}</time>` +
        (step.step === 'received' ? '' : ` <span class="elapsed">${escapeHtml(elapsed(item.received_at, step.at))}</span>`) +
        '</li>',
    )
    .join('\n');
  const counts: Array<[string, string, string]> = [
    ['records-expected', 'Records in the file (ingress)', dash(item.records_expected)],
    ['extracted', `Extracted (${item.pieces_extracted} of ${item.pieces ?? '?'} pieces)`, dash(item.extracted)],
    ['invalid', 'Invalid (broke the contract)', String(item.invalid)],
    ['loaded', `Loaded (${item.inserted} inserted, ${item.updated} updated, ${item.unchanged} unchanged)`, String(item.loaded)],
    ['rejected', 'Refused by the database', String(item.rejected)],
    ['unprocessed', 'Lost to a processing error', String(item.unprocessed)],
  ];
  const countRows = counts
    .map(([name, label, value]) => `<tr data-count="${name}"><th scope="row">${escapeHtml(label)}</th><td>${escapeHtml(value)}</td></tr>`)
    .join('\n');
  const errorRows = report.first
    .map((entry) => {
      const first = entry.violations?.[0];
      return (
        `<tr class="error-entry" data-kind="${escapeHtml(entry.kind)}">` +
        `<td class="record-index">${escapeHtml(entry.record_index ?? '—')}</td>` +
        `<td>${escapeHtml(entry.record_key ?? '')}</td>` +
        `<td>${escapeHtml(entry.kind)}</td>` +
        `<td>${escapeHtml(entry.code)}</td>` +
        `<td class="path">${escapeHtml(first?.path ?? '')}</td>` +
        `<td>${escapeHtml(entry.message)}</td>` +
        '</tr>'
      );
    })
    .join('\n');
  const errors =
    total === 0
      ? '<p class="no-errors">No errors: every record was loaded or is on its way.</p>'
      : `<p class="error-summary">${total} error${total === 1 ? '' : 's'} (${report.counts.validation ?? 0} invalid, ${report.counts.rejected ?? 0} refused by the database, ${report.counts.processing ?? 0} processing)` +
        `${total > report.first.length ? `, the first ${report.first.length} below` : ''}. ` +
        `All of them: <a id="errors-json" href="${errorsUrl('json')}">JSON</a> · <a id="errors-ndjson" href="${errorsUrl('ndjson')}">NDJSON</a> · <a id="errors-csv" href="${errorsUrl('csv')}">CSV</a></p>
<div class="table-scroll">
<table id="errors">
<thead><tr><th>Record</th><th>Key</th><th>Kind</th><th>Code</th><th>Path</th><th>Message</th></tr></thead>
<tbody>
${errorRows}
</tbody>
</table>
</div>`;
  const failure = item.error_code === null ? '' : `<p class="error" role="alert">${escapeHtml(item.error_code)}: ${escapeHtml(item.error_message ?? '')}</p>`;
  return `${pageHead(`Import ${item.request_id}`)}
<nav><a id="back" href="../?tenant=${tenant}">← Imports of ${escapeHtml(item.tenant)}</a></nav>
<h1>Import <code>${escapeHtml(item.request_id)}</code> <span id="status" class="status-${escapeHtml(item.status)}">${escapeHtml(item.status)}</span></h1>
${failure}
<dl class="facts">
<dt>Tenant</dt><dd id="tenant">${escapeHtml(item.tenant)}</dd>
<dt>File</dt><dd id="filename">${escapeHtml(item.filename ?? '—')} (${escapeHtml(dash(item.size))} bytes)</dd>
<dt>Raw file</dt><dd id="raw-object"><code>${escapeHtml(item.raw_object ?? '—')}</code></dd>
${item.replay_of === null ? '' : `<dt>Replay of</dt><dd><a id="replay-of" href="${encodeURIComponent(item.replay_of)}?tenant=${tenant}">${escapeHtml(item.replay_of)}</a></dd>`}
${
  run === undefined
    ? ''
    : `<dt>Replay run</dt><dd><a id="replay-run" href="../replays/${encodeURIComponent(run.run_id)}?tenant=${tenant}">${escapeHtml(run.run_id)}</a> ${filesProgress(run)}</dd>`
}
<dt>Updated</dt><dd>${escapeHtml(formatTime(item.updated_at))} · <a href="${id}?tenant=${tenant}">refresh</a></dd>
</dl>
${
  item.raw_object === null
    ? ''
    : `<form method="post" action="${id}/replay?tenant=${tenant}"><button id="replay" type="submit">Replay this file</button> runs the processor again on the archived file, as a new import</form>`
}
<h2>Timeline</h2>
<ol id="timeline">
${steps}
</ol>
<h2>Counts</h2>
<table id="counts">
<tbody>
${countRows}
</tbody>
</table>
<h2>Errors</h2>
${errors}
</body>
</html>
`;
}

/**
 * A browser asking for an import the monitoring does not know (yet): an import just sent or a
 * replay just started shows up within seconds, so the page looks again every 2 s by itself.
 */
export function renderNotKnownPage(requestId: string, tenant: string | undefined): string {
  const back = tenant === undefined ? '../' : `../?tenant=${encodeURIComponent(tenant)}`;
  return `${pageHead(`Import ${requestId}`, '\n<meta http-equiv="refresh" content="2">')}
<nav><a id="back" href="${back}">← Imports</a></nav>
<h1>Import <code>${escapeHtml(requestId)}</code></h1>
<p id="not-known">No import ${escapeHtml(requestId)}${tenant === undefined ? '' : ` of tenant ${escapeHtml(tenant)}`} is known yet. One just sent or replayed shows up within seconds: this page looks again every 2 s.</p>
</body>
</html>
`;
}
