import t from 'tap';
import type { ReportEntryJson } from './error-report.js';
import { elapsed, renderImportPage, renderNotKnownPage, timeline, wantsHtml } from './import-page.js';
import type { ImportJson } from './lineage.js';

const item: ImportJson = {
  request_id: 'req-0001-abcd',
  tenant: 'acme',
  status: 'complete',
  filename: '<script>alert(1)</script>.json',
  size: 1234,
  raw_object: 's3://raw/acme/req-0001-abcd.json',
  replay_of: null,
  accepted_at: '2026-12-03T10:00:00.100Z',
  records_expected: 60,
  extracted: 60,
  pieces: 2,
  pieces_extracted: 2,
  invalid: 3,
  loaded: 57,
  inserted: 53,
  updated: 1,
  unchanged: 3,
  rejected: 0,
  unprocessed: 0,
  error_code: null,
  error_message: null,
  received_at: '2026-12-03T10:00:00.000Z',
  extracted_at: '2026-12-03T10:00:01.500Z',
  completed_at: '2026-12-03T10:02:05.000Z',
  failed_at: null,
  updated_at: '2026-12-03T10:02:05.000Z',
};

const entry: ReportEntryJson = {
  kind: 'validation',
  stage: 'validate',
  code: 'CONTRACT_VIOLATION',
  message: '/email_address: must match format "email" <b>',
  record_index: 7,
  record_key: 'acme-7',
  violations: [{ path: '/email_address', keyword: 'format', message: 'must match format "email"' }],
  source: { topic: 'RecordExtracted', partition: 1, offset: 3 },
  detected_at: '2026-12-03T10:00:02.000Z',
};

t.test('a browser gets the page, an API client JSON', async (t) => {
  t.ok(wantsHtml('text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8'));
  t.notOk(wantsHtml('*/*'));
  t.notOk(wantsHtml('application/json, text/html'));
  t.notOk(wantsHtml(undefined));
});

t.test('timeline: received, extracted, then completed or failed, with the time each took', async (t) => {
  t.same(
    timeline(item).map((step) => step.step),
    ['received', 'extracted', 'completed'],
  );
  t.same(
    timeline({ ...item, failed_at: '2026-12-03T10:00:03.000Z', error_code: 'S3_OBJECT_MISSING', completed_at: null }).map((step) => step.label),
    ['Received by the ingress', 'Extracted (every piece)', 'Failed: S3_OBJECT_MISSING'],
  );
  t.equal(elapsed(item.received_at, item.extracted_at), '+1.5 s');
  t.equal(elapsed(item.received_at, item.completed_at), '+2 min 5 s');
  t.equal(elapsed(item.received_at, null), '', 'a step not reached has no duration');
});

t.test('the page: counts, where the file is, the first errors and links to all of them; user input escaped', async (t) => {
  const html = renderImportPage(item, { counts: { validation: 3, processing: 0, rejected: 0 }, first: [entry] });
  t.match(html, '<span id="status" class="status-complete">complete</span>');
  t.match(html, '<code>s3://raw/acme/req-0001-abcd.json</code>');
  t.match(html, '<tr data-count="loaded"><th scope="row">Loaded (53 inserted, 1 updated, 3 unchanged)</th><td>57</td></tr>');
  t.match(html, 'Extracted (2 of 2 pieces)');
  t.match(html, '3 errors (3 invalid, 0 refused by the database, 0 processing), the first 1 below.');
  t.match(html, 'href="req-0001-abcd/errors?tenant=acme&format=csv"');
  t.match(html, 'href="../?tenant=acme"');
  t.notMatch(html, '<script>', 'no script at all, and the filename is text');
  t.match(html, '&lt;script&gt;alert(1)&lt;/script&gt;.json');
  t.match(html, 'must match format &quot;email&quot; &lt;b&gt;');
  const clean = renderImportPage({ ...item, invalid: 0 }, { counts: { validation: 0, processing: 0, rejected: 0 }, first: [] });
  t.match(clean, 'class="no-errors"');
  t.notMatch(clean, 'id="errors"');
});

t.test('a stored file has a replay button; a replay links to its original', async (t) => {
  const counts = { validation: 0, processing: 0, rejected: 0 };
  t.match(renderImportPage(item, { counts, first: [] }), '<form method="post" action="req-0001-abcd/replay?tenant=acme"><button id="replay"');
  t.notMatch(renderImportPage({ ...item, raw_object: null }, { counts, first: [] }), 'id="replay"', 'nothing to replay without a file');
  t.match(
    renderImportPage({ ...item, replay_of: 'req-0000-zzzz' }, { counts, first: [] }),
    '<a id="replay-of" href="req-0000-zzzz?tenant=acme">req-0000-zzzz</a>',
  );
});

t.test('an import not known yet: a page that looks again by itself', async (t) => {
  const html = renderNotKnownPage('req-<x>', 'acme');
  t.match(html, '<meta http-equiv="refresh" content="2">');
  t.match(html, 'req-&lt;x&gt;');
  t.match(html, 'href="../?tenant=acme"');
});
