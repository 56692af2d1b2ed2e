import t from 'tap';
import type { RunProgress } from './replay-store.js';
import { filesProgress, renderRunPage, runIdOfReplay } from './run-page.js';

const progress: RunProgress & { running: boolean } = {
  run_id: 'abc123',
  tenant: 'acme',
  since: '2026-12-01T00:00:00.000Z',
  until: null,
  files: 3,
  files_done: 1,
  emitted: 1,
  failed: 0,
  pending: 2,
  records_done: 10,
  records_expected: 30,
  inserted: 0,
  updated: 2,
  unchanged: 8,
  replays: [
    {
      request_id: '<b>req-1',
      replay_request_id: '<b>req-1-rabc123',
      state: 'emitted',
      status: 'complete',
      error_code: null,
      inserted: 0,
      updated: 2,
      unchanged: 8,
    },
  ],
  running: true,
};

t.test('the run page: a <progress> of files done, the counts, each replay; refreshed while it runs', async (t) => {
  const html = renderRunPage(progress);
  t.match(html, '<progress id="files-progress" value="1" max="3">1 of 3 files</progress>');
  t.match(html, '<dd id="loaded">0 inserted, updated 2, unchanged 8</dd>');
  t.match(html, '<dd id="records">10 of 30 accounted for</dd>');
  t.match(html, '<meta http-equiv="refresh" content="2">', 'looks again while running');
  t.notMatch(renderRunPage({ ...progress, running: false }), 'http-equiv="refresh"', 'not once it stopped');
  t.match(html, '&lt;b&gt;req-1', 'request ids escaped');
  t.notMatch(html, '<b>req-1');
  t.match(html, 'href="../imports/%3Cb%3Ereq-1-rabc123?tenant=acme"');
  t.notMatch(html, '<script');
});

t.test('a run of no files shows an empty bar, not a division by zero', async (t) => {
  t.match(filesProgress({ files: 0, files_done: 0 }), '<progress id="files-progress" value="0" max="1">0 of 0 files</progress>');
});

t.test('the run id of a replay import', async (t) => {
  t.equal(runIdOfReplay('req-1-rabc123', 'req-1'), 'abc123');
  t.equal(runIdOfReplay('req-1-rabc123-rdef456', 'req-1-rabc123'), 'def456', 'a replay of a replay');
  t.equal(runIdOfReplay('req-1', null), undefined, 'not a replay');
  t.equal(runIdOfReplay('other-rabc123', 'req-1'), undefined);
  t.equal(runIdOfReplay('req-1-rAB', 'req-1'), undefined, 'not a run id');
});
