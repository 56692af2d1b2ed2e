import { createHash } from 'node:crypto';
import t from 'tap';
import { emptyLineage, toJson, type ImportJson } from './lineage.js';
import { contentSecurityPolicy, escapeHtml, formatTime, renderLoginPage, renderPage } from './page.js';

function item(overrides: Partial<ImportJson> = {}): ImportJson {
  return { ...toJson(emptyLineage('req-00000001', 'acme')), ...overrides };
}

t.test('escapeHtml escapes the five HTML-significant characters', async (t) => {
  t.equal(escapeHtml(`<a href="x" onclick='y'>&</a>`), '&lt;a href=&quot;x&quot; onclick=&#39;y&#39;&gt;&amp;&lt;/a&gt;');
  t.equal(escapeHtml(42), '42');
});

t.test('user input never reaches the page unescaped', async (t) => {
  const hostile = '<img src=x onerror=alert(1)>"\'&';
  const html = renderPage(
    [item({ tenant: hostile, filename: `</td><script>alert(2)</script>`, error_code: hostile, error_message: `" onmouseover="alert(3)` })],
    { limit: 50 },
    { error: '<b>bad</b>' },
  );
  t.notMatch(html, /<img/);
  t.notMatch(html, /<script>alert/);
  t.notMatch(html, /" onmouseover="/);
  t.notMatch(html, /<b>bad/);
  t.match(html, /&lt;img src=x onerror=alert\(1\)&gt;&quot;&#39;&amp;/);
  t.match(html, /title="&quot; onmouseover=&quot;alert\(3\)"/);
  t.equal(html.match(/<script>/g)?.length, 1, 'only the page script');
});

t.test('rows carry the request id and status for the script and for tests', async (t) => {
  const html = renderPage([item({ status: 'complete', extracted: 60, invalid: 3, loaded: 57, received_at: '2025-01-02T03:04:05.678Z' })], {
    tenant: 'acme',
    status: 'complete',
    limit: 20,
  });
  t.match(html, /<tr data-request-id="req-00000001" data-status="complete">/);
  t.match(html, /<td class="status status-complete">complete<\/td>/);
  t.match(html, /<td class="extracted">60<\/td><td class="invalid">3<\/td><td class="loaded">57<\/td>/);
  t.match(html, /2025-01-02 03:04:05 UTC/);
  t.match(html, /<a href="imports\/req-00000001\?tenant=acme">/, 'the link names the import: request id and tenant');
  t.match(html, /<input name="tenant" value="acme"/);
  t.match(html, /<option value="complete" selected>/);
  t.match(html, /data-limit="20"/);
  t.match(renderPage([], { limit: 50 }), /No imports yet/);
});

t.test('the Content-Security-Policy allows exactly the inline script and style', async (t) => {
  const html = renderPage([], { limit: 50 });
  const script = /<script>([\s\S]*?)<\/script>/.exec(html)![1]!;
  const style = /<style>([\s\S]*?)<\/style>/.exec(html)![1]!;
  const hash = (text: string) => `'sha256-${createHash('sha256').update(text).digest('base64')}'`;
  t.match(contentSecurityPolicy, `script-src ${hash(script)}`);
  t.match(contentSecurityPolicy, `style-src ${hash(style)}`);
  t.match(contentSecurityPolicy, "default-src 'none'");
  t.match(contentSecurityPolicy, "connect-src 'self'");
  t.notMatch(script, /innerHTML/, 'the script only sets textContent');
});

t.test('formatTime', async (t) => {
  t.equal(formatTime(null), '—');
  t.equal(formatTime('2025-01-02T03:04:05.678Z'), '2025-01-02 03:04:05 UTC');
  t.equal(formatTime('2025-01-02T03:04:05Z'), '2025-01-02 03:04:05 UTC');
});

t.test('the sign-in form posts to the sign-in route from wherever it is shown, and carries the page to return to', async (t) => {
  t.match(renderLoginPage(), '<form method="post" action="./login">');
  const html = renderLoginPage({ root: '../', returnTo: 'imports/req-1?tenant=a&b="x"' });
  t.match(html, '<form method="post" action="../login">');
  t.match(html, '<input type="hidden" name="return" value="imports/req-1?tenant=a&amp;b=&quot;x&quot;">');
});
