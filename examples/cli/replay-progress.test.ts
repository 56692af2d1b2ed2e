import t from 'tap';
import { runSummary, runVerdict, type RunProgress } from './replay-progress.js';

function progress(replays: RunProgress['replays']): RunProgress {
  return { files: replays.length, files_done: 0, emitted: 0, failed: 0, records_done: 0, records_expected: 0, replays };
}

t.test('a run is over once each replay is complete, failed in the pipeline, or not sent', async (t) => {
  const replay = (state: string, status: string | null, error_code: string | null = null) => ({
    request_id: 'req-00000001',
    replay_request_id: 'req-00000001-rabc',
    state,
    status,
    error_code,
  });
  t.same(runVerdict(progress([replay('emitted', 'complete')])), { settled: true, failures: [] });
  t.same(runVerdict(progress([replay('emitted', 'extracting'), replay('emitted', 'complete')])).settled, false, 'one still in the pipeline');
  t.same(runVerdict(progress([replay('pending', null)])).settled, false);
  t.same(runVerdict(progress([replay('emitted', null)])).settled, false, 'sent, not seen by the lineage yet');

  const failed = runVerdict(progress([replay('emitted', 'failed', 'S3_OBJECT_MISSING'), replay('emitted', 'complete')]));
  t.equal(failed.settled, true, 'a failed import is a final state');
  t.same(failed.failures, ['FAIL  req-00000001  its replay req-00000001-rabc failed: S3_OBJECT_MISSING']);

  const refused = runVerdict(progress([replay('failed', null, 'ARCHIVE_OBJECT_MISSING')]));
  t.same(refused, { settled: true, failures: ['FAIL  req-00000001  not replayed: ARCHIVE_OBJECT_MISSING'] });
});

t.test('npm run replay ends, exit code 1, when a replayed import failed in the pipeline', async (t) => {
  const { createServer } = await import('node:http');
  const { execFile } = await import('node:child_process');
  const runProgress = progress([
    { request_id: 'req-00000001', replay_request_id: 'req-00000001-rabc123', state: 'emitted', status: 'failed', error_code: 'S3_OBJECT_MISSING' },
    { request_id: 'req-00000002', replay_request_id: 'req-00000002-rabc123', state: 'emitted', status: 'complete', error_code: null },
  ]);
  // The monitoring's answers, as GET /replays/<run> gives them once both replays settled.
  const server = createServer((req, res) => {
    res.setHeader('content-type', 'application/json');
    if (req.method === 'POST') {
      res.statusCode = 202;
      res.end(JSON.stringify({ run_id: 'abc123', files: 2 }));
    } else {
      res.end(JSON.stringify({ ...runProgress, files_done: 2, emitted: 2, records_done: 3, records_expected: 4, updated: 1, unchanged: 2 }));
    }
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.teardown(() => new Promise<void>((resolve) => server.close(() => resolve())));
  const { port } = server.address() as { port: number };
  const result = await new Promise<{ code: number | null; stdout: string }>((resolve) => {
    const child = execFile(
      process.execPath,
      ['--import', 'tsx', 'examples/cli/replay.ts', '--tenant', 'acme', '--url', `http://127.0.0.1:${port}`],
      (_error, stdout) => resolve({ code: child.exitCode, stdout }),
    );
  });
  t.equal(result.code, 1);
  t.match(result.stdout, 'FAIL  req-00000001  its replay req-00000001-rabc123 failed: S3_OBJECT_MISSING');
  t.match(result.stdout, '2 of 2 files replayed, 3 of 4 records accounted for (updated 1, unchanged 2), 1 failed');
});

t.test('the summary says how many records the replays updated and left unchanged', async (t) => {
  const done = { ...progress([]), files: 3, emitted: 3, records_done: 30, records_expected: 30 };
  t.equal(runSummary({ ...done, updated: 4, unchanged: 26 }, 0), '3 of 3 files replayed, 30 of 30 records accounted for (updated 4, unchanged 26), 0 failed');
  t.equal(runSummary(done, 0), '3 of 3 files replayed, 30 of 30 records accounted for (updated 0, unchanged 0), 0 failed', 'an older monitoring: 0');
});
