import t from 'tap';
import { JsonScanError } from '../core/json-stream.js';
import { emitReplay, expiryRuleOf, failureOf, objectOf, planFiles, ReplayError, runReplay } from './replay.js';
import { fakeReplayDeps, fakeS3, MemoryRunStore } from './replay.fixture.js';
import type { ReplayItem } from './replay-store.js';

const t0 = Date.UTC(2026, 11, 1, 10);
const body = '{"name":"a"}\n{"name":"b"}\n';

function item(requestId: string, overrides: Partial<ReplayItem> = {}): ReplayItem {
  return {
    tenant: 'acme',
    requestId,
    receivedAt: t0,
    acceptedAt: t0,
    filename: 'a.ndjson',
    rawObject: `s3://imports/acme/files/2026/12/01/${requestId}.json`,
    recordsExpected: 2,
    ...overrides,
  };
}

t.test("a replay of a replay reads the stored raw_object (its original's file), not a key made from its own id", async (t) => {
  const original = 'req-00000001';
  const replay = `${original}-rmabc1234`;
  const { s3, calls } = fakeS3(new Map([[`imports/acme/files/2026/12/01/${original}.json`, body]]));
  const { deps, sent } = fakeReplayDeps(new MemoryRunStore(), s3);
  const records = await emitReplay(deps, 'imports', item(replay, { rawObject: `s3://imports/acme/files/2026/12/01/${original}.json` }), `${replay}-rmdef5678`);
  t.equal(records, 2);
  t.same(calls, [`imports/acme/files/2026/12/01/${original}.json`, `imports/acme/files/2026/12/01/${original}.json`]);
  t.equal(sent[0]?.headers.replay_of, replay);
  t.same(
    objectOf(item(original, { rawObject: null }), 'imports'),
    { bucket: 'imports', key: `acme/files/2026/12/01/${original}.json` },
    'an import without one: the ingress layout',
  );
});

t.test('the object is gone: the answer names the one lifecycle rule that applies to it', async (t) => {
  const rules = [
    { ID: 'tmp', Status: 'Enabled', Filter: { Prefix: 'tmp/' }, Expiration: { Days: 1 } },
    { ID: 'acme-files', Status: 'Enabled', Filter: { Prefix: 'acme/files/' }, Expiration: { Days: 30 } },
    { ID: 'globex', Status: 'Enabled', Filter: { Prefix: 'globex/' }, Expiration: { Days: 7 } },
    { ID: 'off', Status: 'Disabled', Filter: { Prefix: 'acme/' }, Expiration: { Days: 2 } },
  ] as const;
  const { s3 } = fakeS3(new Map(), [...rules]);
  const { deps } = fakeReplayDeps(new MemoryRunStore(), s3);
  const error = await emitReplay(deps, 'imports', item('req-00000002'), 'req-00000002-rx').catch((caught: unknown) => caught);
  t.ok(error instanceof ReplayError);
  t.match(error, { code: 'ARCHIVE_OBJECT_MISSING', status: 410 });
  const message = (error as Error).message;
  t.match(message, "the bucket's lifecycle rule acme-files expires objects under acme/files/ after 30 days");
  for (const other of ['tmp/', 'globex/', '7 days', '1 days', '2 days']) t.notMatch(message, other, `${other} is not named`);

  t.same(expiryRuleOf([...rules], 'acme/files/x.json'), { id: 'acme-files', prefix: 'acme/files/', days: 30 });
  t.same(
    expiryRuleOf([{ Status: 'Enabled', Expiration: { Days: 90 } }, ...rules], 'acme/files/x.json'),
    { id: 'acme-files', prefix: 'acme/files/', days: 30 },
    'the soonest rule acts',
  );
  t.equal(expiryRuleOf([...rules], 'initech/x.json'), undefined);
  const none: unknown = await emitReplay(
    fakeReplayDeps(new MemoryRunStore(), fakeS3(new Map(), [rules[2]]).s3).deps,
    'imports',
    item('req-00000003'),
    'x',
  ).catch((caught: unknown) => caught as Error);
  t.match((none as Error).message, 'no lifecycle rule of the bucket expires it: the object was deleted');
});

t.test('a file that does not parse answers its code with the catalogue status, not 503', async (t) => {
  t.same(failureOf(new JsonScanError('INVALID_JSON', 3, 'not JSON')), { code: 'INVALID_JSON', message: 'not JSON', status: 400 });
  t.same(failureOf(new ReplayError('ARCHIVE_OBJECT_CHANGED', 'changed', 409)).status, 409);
  t.same(failureOf(new Error('socket hang up')), { code: 'REPLAY_FAILED', message: 'socket hang up', status: 503 });
  const { s3 } = fakeS3(new Map([['imports/acme/files/2026/12/01/req-00000004.json', '{"name": broken\n']]));
  const runs = new MemoryRunStore();
  const { deps } = fakeReplayDeps(runs, s3);
  await runs.createRun({ runId: 'run0001', tenant: 'acme', since: null, until: null }, planFiles('run0001', [item('req-00000004')]));
  const [outcome] = await runReplay(deps, 'imports', 'run0001');
  t.match(outcome, { state: 'failed', error: { code: 'INVALID_JSON', status: 400 } });
});

t.test('a run replays the files it stored, each taken once even by two claimants at once', async (t) => {
  const ids = ['req-00000011', 'req-00000012', 'req-00000013', 'req-00000014'];
  const { s3 } = fakeS3(new Map(ids.map((id) => [`imports/acme/files/2026/12/01/${id}.json`, body])));
  const runs = new MemoryRunStore();
  await runs.createRun(
    { runId: 'run0002', tenant: 'acme', since: null, until: null },
    planFiles(
      'run0002',
      ids.map((id) => item(id)),
    ),
  );
  const a = fakeReplayDeps(runs, s3, { claimant: 'a' });
  const b = fakeReplayDeps(runs, s3, { claimant: 'b' });
  const [byA, byB] = await Promise.all([runReplay(a.deps, 'imports', 'run0002'), runReplay(b.deps, 'imports', 'run0002')]);
  const emitted = [...byA, ...byB].map((outcome) => outcome.item.requestId).sort();
  t.same(emitted, ids, 'every file once');
  t.equal(a.sent.length + b.sent.length, ids.length, 'no file announced twice');
  t.ok(byA.length > 0 && byB.length > 0, 'both claimants took files');
  t.match(await runs.progress('run0002'), { files: 4, files_done: 4, emitted: 4, pending: 0, records_expected: 8 });
  t.same(await runReplay(a.deps, 'imports', 'run0002'), [], 'run again: nothing left to emit');
});

t.test('a claim is left alone while it is fresh and taken over once its process stopped renewing it', async (t) => {
  let clock = 1_000_000;
  const runs = new MemoryRunStore();
  runs.now = () => clock;
  await runs.createRun({ runId: 'run0003', tenant: 'acme', since: null, until: null }, planFiles('run0003', [item('req-00000021')]));
  t.ok(await runs.claimNext('run0003', 'dead', 60_000));
  t.equal(await runs.claimNext('run0003', 'other', 60_000), undefined, 'held by a live claim');
  clock += 60_001;
  t.match(await runs.claimNext('run0003', 'other', 60_000), { requestId: 'req-00000021' }, 'taken over after the lease');
  await runs.finish('run0003', 'req-00000021', 'dead', { state: 'emitted' });
  t.match(await runs.progress('run0003'), { emitted: 0, pending: 1 }, "the dead claimant's late finish changes nothing");
});

t.test('a request id with no room for the suffix is listed failed, and never retried', async (t) => {
  const long = 'x'.repeat(125);
  const [file] = planFiles('run0004', [item(long)]);
  t.match(file, { replayRequestId: '', refusal: { code: 'REPLAY_ID_TOO_LONG' } });
  const runs = new MemoryRunStore();
  await runs.createRun({ runId: 'run0004', tenant: 'acme', since: null, until: null }, [file!]);
  await runs.retryFailed('run0004');
  t.match(await runs.progress('run0004'), { files: 1, failed: 1, replays: [{ state: 'failed', error_code: 'REPLAY_ID_TOO_LONG' }] });
});
