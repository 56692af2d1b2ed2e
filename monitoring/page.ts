/**
 * GET / — a plain HTML page of recent imports and their state, rendered on the server (so it
 * works without JavaScript) and refreshed in place by polling the JSON API every 2 s.
 *
 * Tenants, filenames and error messages are user input: the server escapes everything it
 * writes into HTML, and the script only ever sets textContent. The page's one script and one
 * style are static, so a Content-Security-Policy can allow exactly them by hash and nothing else.
 */
import { createHash } from 'node:crypto';
import { importStatuses, type ImportJson } from './lineage.js';
import type { ListQuery } from './lineage-store.js';

export const pollIntervalMs = 2000;

export function escapeHtml(value: unknown): string {
  return String(value).replaceAll('&', '&amp;').replaceAll('<', '&lt;').replaceAll('>', '&gt;').replaceAll('"', '&quot;').replaceAll("'", '&#39;');
}

/** The same text the script shows: `2025-01-02 03:04:05 UTC`. */
export function formatTime(iso: string | null): string {
  return iso === null ? '—' : iso.replace('T', ' ').replace(/(\.\d+)?Z$/, ' UTC');
}

const dash = (value: number | null) => (value === null ? '—' : String(value));

/** One row's cells, in column order; the script builds the same from the JSON. */
export function rowCells(item: ImportJson): Array<{ name: string; text: string }> {
  return [
    { name: 'request-id', text: item.request_id },
    { name: 'tenant', text: item.tenant },
    { name: 'status', text: item.status },
    { name: 'filename', text: item.filename ?? '' },
    { name: 'extracted', text: dash(item.extracted) },
    { name: 'invalid', text: String(item.invalid) },
    { name: 'loaded', text: String(item.loaded) },
    { name: 'received', text: formatTime(item.received_at) },
    { name: 'error', text: item.error_code ?? '' },
  ];
}

function renderRow(item: ImportJson): string {
  const cells = rowCells(item)
    .map((cell) => {
      if (cell.name === 'request-id') {
        return `<td class="request-id"><a href="imports/${encodeURIComponent(item.request_id)}?tenant=${encodeURIComponent(item.tenant)}">${escapeHtml(cell.text)}</a></td>`;
      }
      const extra = cell.name === 'status' ? ` status-${escapeHtml(item.status)}` : '';
      const title = cell.name === 'error' && item.error_message !== null ? ` title="${escapeHtml(item.error_message)}"` : '';
      return `<td class="${cell.name}${extra}"${title}>${escapeHtml(cell.text)}</td>`;
    })
    .join('');
  return `<tr data-request-id="${escapeHtml(item.request_id)}" data-status="${escapeHtml(item.status)}">${cells}</tr>`;
}

/** The style of every monitoring page (one style, so one hash in the Content-Security-Policy). */
export const pageStyle = `
body { font-family: system-ui, sans-serif; margin: 1.5rem; color: #222; }
h1 { font-size: 1.3rem; margin: 0 0 .8rem; }
form { margin-bottom: 1rem; display: flex; gap: .6rem; align-items: center; flex-wrap: wrap; }
table { border-collapse: collapse; width: 100%; font-size: .9rem; }
.table-scroll { overflow-x: auto; }
th, td { text-align: left; padding: .3rem .6rem; border-bottom: 1px solid #ddd; white-space: nowrap; }
th { background: #f4f4f4; }
td.extracted, td.invalid, td.loaded { text-align: right; font-variant-numeric: tabular-nums; }
td.request-id { font-family: ui-monospace, monospace; }
td.status { font-weight: 600; }
.status-complete { color: #17692a; }
.status-failed { color: #b3261e; }
.status-received, .status-extracting, .status-extracted { color: #8a5a00; }
#poll-state { color: #666; font-size: .85rem; margin-left: auto; }
#poll-state.error { color: #b3261e; }
h2 { font-size: 1.05rem; margin: 1.4rem 0 .5rem; }
nav { margin-bottom: .8rem; }
dl.facts { display: grid; grid-template-columns: max-content 1fr; gap: .2rem 1rem; margin: 0; }
dl.facts dt { color: #666; }
dl.facts dd { margin: 0; }
#timeline li { margin: .2rem 0; }
#timeline li.pending { color: #999; }
#timeline .elapsed { color: #666; font-size: .85rem; }
#counts { width: auto; }
#counts td { text-align: right; font-variant-numeric: tabular-nums; }
.error { color: #b3261e; }
`;

const script = `
(function () {
  'use strict';
  var cellNames = ['request-id', 'tenant', 'status', 'filename', 'extracted', 'invalid', 'loaded', 'received', 'error'];
  var params = new URLSearchParams(window.location.search);
  var query = new URLSearchParams();
  ['tenant', 'status', 'limit'].forEach(function (name) {
    var value = params.get(name);
    if (value !== null && value !== '') query.set(name, value);
  });
  var body = document.getElementById('imports-body');
  var state = document.getElementById('poll-state');
  var table = document.getElementById('imports');
  var limit = table.getAttribute('data-limit');
  if (!query.has('limit') && limit) query.set('limit', limit);
  var url = new URL('imports', window.location.href);
  url.search = query.toString();

  function time(iso) {
    return iso === null ? '\\u2014' : iso.replace('T', ' ').replace(/(\\.\\d+)?Z$/, ' UTC');
  }
  function dash(value) {
    return value === null || value === undefined ? '\\u2014' : String(value);
  }
  function texts(item) {
    return [item.request_id, item.tenant, item.status, item.filename || '', dash(item.extracted), String(item.invalid),
      String(item.loaded), time(item.received_at), item.error_code || ''];
  }
  function row(item) {
    var tr = document.createElement('tr');
    tr.setAttribute('data-request-id', item.request_id);
    tr.setAttribute('data-status', item.status);
    texts(item).forEach(function (text, i) {
      var td = document.createElement('td');
      td.className = cellNames[i] + (cellNames[i] === 'status' ? ' status-' + item.status : '');
      if (cellNames[i] === 'request-id') {
        var a = document.createElement('a');
        a.href = 'imports/' + encodeURIComponent(item.request_id) + '?tenant=' + encodeURIComponent(item.tenant);
        a.textContent = text;
        td.appendChild(a);
      } else {
        td.textContent = text;
      }
      if (cellNames[i] === 'error' && item.error_message) td.title = item.error_message;
      tr.appendChild(td);
    });
    return tr;
  }
  function render(imports) {
    var rows = imports.map(row);
    if (rows.length === 0) {
      var tr = document.createElement('tr');
      var td = document.createElement('td');
      td.colSpan = cellNames.length;
      td.className = 'empty';
      td.textContent = 'No imports yet.';
      tr.appendChild(td);
      rows = [tr];
    }
    body.replaceChildren.apply(body, rows);
  }
  function poll() {
    fetch(url, { headers: { accept: 'application/json' }, cache: 'no-store' })
      .then(function (response) {
        if (!response.ok) throw new Error('HTTP ' + response.status);
        return response.json();
      })
      .then(function (json) {
        render(json.imports);
        state.className = '';
        state.textContent = 'updated ' + new Date().toLocaleTimeString();
      })
      .catch(function (error) {
        state.className = 'error';
        state.textContent = 'update failed: ' + error.message;
      })
      .then(function () {
        window.setTimeout(poll, ${pollIntervalMs});
      });
  }
  window.setTimeout(poll, ${pollIntervalMs});
})();
`;

const hash = (text: string) => `'sha256-${createHash('sha256').update(text, 'utf8').digest('base64')}'`;

/** Allows the page's own script and style (by hash), fetches to itself, and nothing else. */
export const contentSecurityPolicy = [
  "default-src 'none'",
  `script-src ${hash(script)}`,
  `style-src ${hash(pageStyle)}`,
  "connect-src 'self'",
  "form-action 'self'",
  "base-uri 'none'",
  "frame-ancestors 'none'",
].join('; ');

/** Every page's start, up to <body>: `<title>` is "<title> — ETL monitoring". */
export function pageHead(title: string, extra = ''): string {
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">${extra}
<title>${escapeHtml(title)} — ETL monitoring</title>
<style>${pageStyle}</style>
</head>
<body>`;
}

/**
 * The sign-in form a browser gets when tokens are required and it sent none (or a wrong one).
 * `root` is the way from the page asked for to the site's root (`../` on /imports/<id>), so the
 * form posts to the sign-in route wherever it is shown; `returnTo` is that page, relative to the
 * root, where the browser goes once signed in.
 */
export function renderLoginPage(options: { error?: string; root?: string; returnTo?: string } = {}): string {
  const error = options.error === undefined ? '' : `<p class="error" role="alert">${escapeHtml(options.error)}</p>`;
  const back = options.returnTo === undefined || options.returnTo === '' ? '' : `\n<input type="hidden" name="return" value="${escapeHtml(options.returnTo)}">`;
  return `${pageHead('Sign in')}
<h1>Sign in</h1>
${error}
<form method="post" action="${escapeHtml(options.root ?? './')}login">${back}
<label>Token <input name="token" type="password" autocomplete="current-password" size="40" required></label>
<button type="submit">Sign in</button>
</form>
<p>A tenant's token shows that tenant's imports; the operator's token shows every tenant's.</p>
</body>
</html>
`;
}

export function renderPage(imports: readonly ImportJson[], query: ListQuery, options: { error?: string; signOut?: boolean } = {}): string {
  const rows = imports.length === 0 ? `<tr><td colspan="9" class="empty">No imports yet.</td></tr>` : imports.map(renderRow).join('\n');
  const statusOptions = ['', ...importStatuses]
    .map((status) => `<option value="${status}"${query.status === status ? ' selected' : ''}>${status === '' ? 'any status' : status}</option>`)
    .join('');
  const error = options.error === undefined ? '' : `<p class="error" role="alert">${escapeHtml(options.error)}</p>`;
  return `${pageHead('Imports')}
<h1>Imports</h1>
${error}
<form method="get" action="">
<label>Tenant <input name="tenant" value="${escapeHtml(query.tenant ?? '')}" size="20"></label>
<label>Status <select name="status">${statusOptions}</select></label>
<button type="submit">Filter</button>
<span id="poll-state" aria-live="polite">live: refreshed every ${pollIntervalMs / 1000} s</span>
</form>
${options.signOut === true ? '<form method="post" action="logout"><button id="sign-out" type="submit">Sign out</button></form>' : ''}
<div class="table-scroll">
<table id="imports" data-limit="${query.limit}">
<thead><tr><th>Request id</th><th>Tenant</th><th>Status</th><th>File</th><th>Extracted</th><th>Invalid</th><th>Loaded</th><th>Received</th><th>Error</th></tr></thead>
<tbody id="imports-body">
${rows}
</tbody>
</table>
</div>
<script>${script}</script>
</body>
</html>
`;
}
