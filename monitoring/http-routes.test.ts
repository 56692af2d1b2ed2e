import t, { type Test } from 'tap';
import { request } from 'undici';
import { closeListener, listen } from '../core/http.js';
import { createLogger } from '../core/logger.js';
import { loadUws } from '../core/uws.js';
import { MonitoringAccess } from './access.js';
import { registerRoutes } from './http-routes.js';
import { emptyLineage, type Lineage } from './lineage.js';
import type { LineageStore, StoredImport } from './lineage-store.js';
import { fakeReplayDeps, fakeS3, MemoryRunStore } from './replay.fixture.js';
import type { ReplayItem } from './replay-store.js';

const t0 = Date.UTC(2026, 11, 1, 10);
const body = '{"name":"a"}\n{"name":"b"}\n';
const tokens = { acme: 'acme-token-1', globex: 'globex-token-2' };

function importOf(tenant: string, requestId: string, at: number): ReplayItem {
  return {
    tenant,
    requestId,
    receivedAt: at,
    acceptedAt: at,
    filename: 'a.ndjson',
    rawObject: `s3://imports/${tenant}/files/${requestId}.json`,
    recordsExpected: 2,
  };
}

/** A lineage store that knows these imports, and nothing else. */
function fakeStore(imports: Lineage[]): LineageStore {
  const stored = (lineage: Lineage): StoredImport => ({ lineage, updatedAt: t0 });
  return {
    find: async (requestId: string, tenant?: string) =>
      imports.filter((one) => one.requestId === requestId && (tenant === undefined || one.tenant === tenant)).map(stored),
    list: async () => imports.map(stored),
    errorPage: async () => [],
    errorCounts: async () => ({ validation: 0, processing: 0, rejected: 0 }),
  } as unknown as LineageStore;
}

interface Server {
  url: string;
  runs: MemoryRunStore;
  /** Lets every held send through. */
  release(): void;
}

/**
 * The routes on a real uWS server over the fakes. With `hold`, every announcement waits for
 * release(): a run is still running while the test looks at it.
 */
async function serve(t: Test, options: { imports?: ReplayItem[]; hold?: boolean; cookieSecure?: boolean; lineages?: Lineage[] } = {}): Promise<Server> {
  const runs = new MemoryRunStore();
  runs.imports = options.imports ?? [];
  const objects = new Map(runs.imports.map((one) => [`imports/${one.tenant}/files/${one.requestId}.json`, body]));
  let release = () => undefined as void;
  const released = new Promise<void>((resolve) => (release = resolve));
  const { deps } = fakeReplayDeps(runs, fakeS3(objects).s3, { gate: options.hold === true ? () => released : undefined });
  const uws = loadUws();
  const app = uws.uws.App();
  const stopping = new AbortController();
  const tracked = new Set<Promise<unknown>>();
  registerRoutes(app, {
    store: fakeStore(options.lineages ?? []),
    access: new MonitoringAccess(tokens, 'operator-token-3'),
    logger: createLogger({ level: 'silent' } as never, 'routes-test'),
    pageLimit: 50,
    cookieSecure: options.cookieSecure ?? false,
    replay: { deps, bucket: 'imports', signal: stopping.signal, track: (run) => tracked.add(run) },
  });
  const socket = await listen(app, '127.0.0.1', 0);
  t.teardown(async () => {
    stopping.abort();
    release();
    await Promise.all(tracked);
    closeListener(uws, socket);
  });
  return { url: `http://127.0.0.1:${uws.uws.us_socket_local_port(socket)}`, runs, release: () => release() };
}

async function call(server: Server, method: 'GET' | 'POST', path: string, headers: Record<string, string> = {}, form?: string) {
  const response = await request(`${server.url}${path}`, { method, headers, body: form });
  const text = await response.body.text();
  let json: any;
  try {
    json = JSON.parse(text);
  } catch {
    json = undefined;
  }
  return { status: response.statusCode, headers: response.headers, text, json };
}

const as = (token: string) => ({ authorization: `Bearer ${token}` });

/** Polls the run until `done` holds (each answer is one more look, not a timer). */
async function waitForRun(server: Server, runId: string, token: string, done: (json: any) => boolean): Promise<any> {
  for (;;) {
    const answer = await call(server, 'GET', `/replays/${runId}?tenant=acme`, as(token));
    if (answer.status === 200 && done(answer.json)) return answer.json;
    await new Promise((resolve) => setImmediate(resolve));
  }
}

t.test('a run exists with its whole list before the start answers: the first poll has the real total', async (t) => {
  const server = await serve(t, { imports: [importOf('acme', 'req-00000001', t0), importOf('acme', 'req-00000002', t0 + 1000)], hold: true });
  const started = await call(server, 'POST', '/tenants/acme/replay', as(tokens.acme));
  t.equal(started.status, 202);
  t.match(started.json, { tenant: 'acme', files: 2, files_done: 0, records_expected: 4 });
  const first = await call(server, 'GET', `/replays/${started.json.run_id}?tenant=acme`, as(tokens.acme));
  t.equal(first.status, 200, 'no 404 right after the start');
  t.match(first.json, { files: 2, files_done: 0, records_expected: 4, running: true });
  server.release();
  t.match(await waitForRun(server, started.json.run_id, tokens.acme, (json) => json.running === false), { files: 2, files_done: 2, emitted: 2 });
});

t.test('a resumed run replays the files of its window, not a new listing of every import', async (t) => {
  const imports = [importOf('acme', 'req-00000001', t0), importOf('acme', 'req-00000002', t0 + 1000), importOf('acme', 'req-00000003', t0 + 86_400_000)];
  const server = await serve(t, { imports, hold: true });
  const until = new Date(t0 + 3_600_000).toISOString();
  const started = await call(server, 'POST', `/tenants/acme/replay?until=${until}`, as(tokens.acme));
  t.match(started.json, { files: 2, until });
  const runId = started.json.run_id as string;
  const stop = await call(server, 'POST', `/replays/${runId}/stop?tenant=acme`, as(tokens.acme));
  t.match(stop.json, { run_id: runId, stopping: true });
  server.release();
  const stopped = await waitForRun(server, runId, tokens.acme, (json) => json.running === false);
  t.equal(stopped.files, 2);

  const resumed = await call(server, 'POST', `/tenants/acme/replay?run=${runId}`, as(tokens.acme));
  t.equal(resumed.status, 202);
  t.match(resumed.json, { run_id: runId, files: 2, until });
  const done = await waitForRun(server, runId, tokens.acme, (json) => json.running === false && json.pending === 0);
  t.same(
    done.replays.map((replay: { request_id: string }) => replay.request_id),
    ['req-00000001', 'req-00000002'],
    'the import outside the window is not in the run',
  );
  t.match(done, { files: 2, emitted: 2, until });
  const unknown = await call(server, 'POST', '/tenants/acme/replay?run=nosuchrun1', as(tokens.acme));
  t.same([unknown.status, unknown.json.error.code], [404, 'REPLAY_RUN_UNKNOWN']);
});

t.test("a tenant neither sees nor stops another tenant's run", async (t) => {
  const server = await serve(t, { imports: [importOf('acme', 'req-00000001', t0)], hold: true });
  const started = await call(server, 'POST', '/tenants/acme/replay', as(tokens.acme));
  const runId = started.json.run_id as string;
  for (const path of [`/replays/${runId}`, `/replays/${runId}?tenant=acme`]) {
    const seen = await call(server, 'GET', path, as(tokens.globex));
    t.same([seen.status, seen.json.error.code], [404, 'REPLAY_RUN_UNKNOWN'], `GET ${path}`);
    const stop = await call(server, 'POST', `${path.replace(runId, `${runId}/stop`)}`, as(tokens.globex));
    t.same([stop.status, stop.json.error.code], [404, 'REPLAY_RUN_UNKNOWN'], `POST stop ${path}`);
  }
  const resume = await call(server, 'POST', `/tenants/globex/replay?run=${runId}`, as(tokens.globex));
  t.same([resume.status, resume.json.error.code], [404, 'REPLAY_RUN_UNKNOWN'], "resuming it as one's own");
  t.match((await call(server, 'GET', `/replays/${runId}?tenant=acme`, as(tokens.acme))).json, { running: true }, 'still running');
  t.match((await call(server, 'GET', `/replays/${runId}`, as('operator-token-3'))).json, { tenant: 'acme', running: true }, 'the operator sees it');
  server.release();
});

t.test("a browser gets a run's page: a <progress> of its files; a replay's import page shows its run's", async (t) => {
  const server = await serve(t, { imports: [importOf('acme', 'req-00000001', t0), importOf('acme', 'req-00000002', t0 + 1000)] });
  const started = await call(server, 'POST', '/tenants/acme/replay', as(tokens.acme));
  const runId = started.json.run_id as string;
  await waitForRun(server, runId, tokens.acme, (json) => json.running === false);
  server.runs.lineage.set(`req-00000001-r${runId}`, { status: 'complete', done: 2, loaded: { inserted: 0, updated: 1, unchanged: 1 } });
  server.runs.lineage.set(`req-00000002-r${runId}`, { status: 'complete', done: 2, loaded: { inserted: 0, updated: 0, unchanged: 2 } });
  const page = await call(server, 'GET', `/replays/${runId}?tenant=acme`, { ...as(tokens.acme), accept: 'text/html' });
  t.equal(page.status, 200);
  t.match(page.headers['content-type'], 'text/html');
  t.match(page.text, '<progress id="files-progress" value="2" max="2">2 of 2 files</progress>');
  t.match(page.text, '<dd id="loaded">0 inserted, updated 1, unchanged 3</dd>');
  t.match(page.text, `href="../imports/req-00000001-r${runId}?tenant=acme"`, 'each replay links to its import page');
  t.notMatch(page.text, '<script', 'no script');
  t.match(
    (await call(server, 'GET', `/replays/${runId}?tenant=acme`, as(tokens.acme))).json,
    {
      files_done: 2,
      updated: 1,
      unchanged: 3,
      replays: [
        { updated: 1, unchanged: 1 },
        { updated: 0, unchanged: 2 },
      ],
    },
    'JSON for an API client, with the counts',
  );

  // The replay's own import page, as the lineage knows it.
  const replay = { ...emptyLineage(`req-00000001-r${runId}`, 'acme'), replayOf: 'req-00000001', receivedAt: t0, recordsExpected: 2 };
  const withLineage = await serve(t, { imports: [importOf('acme', 'req-00000001', t0)], lineages: [replay] });
  withLineage.runs.files.set(runId, server.runs.files.get(runId)!);
  withLineage.runs.runs.set(runId, server.runs.runs.get(runId)!);
  const importPage = await call(withLineage, 'GET', `/imports/req-00000001-r${runId}?tenant=acme`, { ...as(tokens.acme), accept: 'text/html' });
  t.match(importPage.text, `<a id="replay-run" href="../replays/${runId}?tenant=acme">${runId}</a> <progress id="files-progress" value="2" max="2">`);
});

t.test('the sign-in form of an import page posts to /login and comes back to the page', async (t) => {
  const server = await serve(t);
  const page = await call(server, 'GET', '/imports/req-00000001?tenant=acme', { accept: 'text/html' });
  t.equal(page.status, 401);
  t.match(page.text, '<form method="post" action="../login">');
  t.match(page.text, '<input type="hidden" name="return" value="imports/req-00000001?tenant=acme">');
  const root = await call(server, 'GET', '/', { accept: 'text/html' });
  t.match(root.text, '<form method="post" action="./login">');

  const signIn = await call(
    server,
    'POST',
    '/login',
    { 'content-type': 'application/x-www-form-urlencoded', 'sec-fetch-site': 'same-origin' },
    `token=${tokens.acme}&return=${encodeURIComponent('imports/req-00000001?tenant=acme')}`,
  );
  t.equal(signIn.status, 303);
  t.equal(signIn.headers.location, './imports/req-00000001?tenant=acme', 'relative to /login: /imports/req-00000001');
  t.equal(signIn.headers['set-cookie'], 'etl_monitoring_token=acme-token-1; Path=/; HttpOnly; SameSite=Strict');
  for (const hostile of ['//evil.example/x', 'https://evil.example/', '/\\evil', 'javascript:alert(1)']) {
    const answer = await call(
      server,
      'POST',
      '/login',
      { 'content-type': 'application/x-www-form-urlencoded' },
      `token=${tokens.acme}&return=${encodeURIComponent(hostile)}`,
    );
    t.equal(answer.headers.location, './', `${hostile} goes to the list page`);
  }
});

t.test('cross-site POSTs are refused; the cookie is Secure over HTTPS or when so configured', async (t) => {
  const lineage = { ...emptyLineage('req-00000001', 'acme'), receivedAt: t0, recordsExpected: 2, rawObject: 's3://imports/acme/files/req-00000001.json' };
  const server = await serve(t, { imports: [importOf('acme', 'req-00000001', t0)], lineages: [lineage] });
  const form = { 'content-type': 'application/x-www-form-urlencoded' };
  const cookie = { cookie: `etl_monitoring_token=${tokens.acme}` };
  for (const [name, headers] of [
    ['Sec-Fetch-Site cross-site', { 'sec-fetch-site': 'cross-site' }],
    ['Sec-Fetch-Site same-site', { 'sec-fetch-site': 'same-site' }],
    ['an Origin of another host', { origin: 'https://evil.example' }],
    ['Origin null', { origin: 'null' }],
  ] as const) {
    for (const path of ['/imports/req-00000001/replay?tenant=acme', '/login', '/logout', '/tenants/acme/replay']) {
      const answer = await call(server, 'POST', path, { ...form, ...cookie, ...headers }, `token=${tokens.acme}`);
      t.same([answer.status, answer.json?.error?.code], [403, 'CROSS_SITE_REQUEST'], `${name}: POST ${path}`);
    }
  }
  t.equal((await server.runs.tenantItems('acme')).length, 1);
  t.equal(server.runs.runs.size, 0, 'no run was started');

  const host = new URL(server.url).host;
  const sameOrigin = await call(server, 'POST', '/imports/req-00000001/replay?tenant=acme', { ...form, ...cookie, origin: `http://${host}` });
  t.equal(sameOrigin.status, 303, "the page's own button (Origin of this host)");
  const viaFetchSite = await call(server, 'POST', '/login', { ...form, 'sec-fetch-site': 'same-origin', 'x-forwarded-proto': 'https' }, `token=${tokens.acme}`);
  t.equal(viaFetchSite.status, 303);
  t.equal(viaFetchSite.headers['set-cookie'], 'etl_monitoring_token=acme-token-1; Path=/; HttpOnly; SameSite=Strict; Secure', 'over HTTPS (a proxy)');
  const cli = await call(server, 'POST', '/imports/req-00000001/replay?tenant=acme', as(tokens.acme));
  t.equal(cli.status, 202, 'a client that is no browser (no Origin, no Sec-Fetch-Site)');

  const always = await serve(t, { cookieSecure: true });
  const signIn = await call(always, 'POST', '/login', { ...form, 'sec-fetch-site': 'none' }, `token=${tokens.globex}`);
  t.match(signIn.headers['set-cookie'], /; HttpOnly; SameSite=Strict; Secure$/, 'MONITORING_COOKIE_SECURE');
});
