/**
 * Tenant tokens on the monitoring, against the real PostgreSQL and HTTP server: a tenant's token
 * sees only its own imports, errors and list; another tenant's import is 404 (as if it did not
 * exist); the operator sees all; no token is 401 (the sign-in form for a browser), and the form's
 * cookie then works like the header.
 */
import t from 'tap';
import { request } from 'undici';
import { topics } from '../../core/pipeline.js';
import { createPostgres } from '../../core/postgres.js';
import { createLineageStore, loadMonitoringConfig } from '../../monitoring/index.js';
import type { LineageEvent } from '../../monitoring/lineage.js';
import { uniqueName } from './helpers.js';
import { startInProcess } from './monitoring-helpers.js';

const [acme, globex] = [uniqueName('acme'), uniqueName('globex')];
const tokens = { acme: `tok-${uniqueName('a')}`, globex: `tok-${uniqueName('g')}`, operator: `op-${uniqueName('o')}` };
const { url } = await startInProcess(t, {
  MONITORING_TENANT_TOKENS: `${acme}:${tokens.acme},${globex}:${tokens.globex}`,
  MONITORING_OPERATOR_TOKEN: tokens.operator,
});

// One import per tenant (and one request id both used), written as the monitoring's sink would.
const postgres = createPostgres(loadMonitoringConfig().postgres);
t.teardown(() => postgres.close());
const store = createLineageStore(postgres);
const [acmeImport, globexImport, sharedId] = [uniqueName('req'), uniqueName('req'), uniqueName('req')];
const received = (tenant: string, requestId: string): LineageEvent => ({
  kind: 'received',
  requestId,
  tenant,
  at: Date.now(),
  filename: `${tenant}.ndjson`,
  size: 10,
  recordsExpected: 1,
});
const invalid = (tenant: string, requestId: string): LineageEvent => ({
  kind: 'invalid',
  requestId,
  tenant,
  at: Date.now(),
  recordIndex: 0,
  recordKey: null,
  violations: [{ path: '/name', keyword: 'minLength', message: 'must NOT have fewer than 1 characters' }],
  source: { topic: topics.recordExtracted.name, partition: 0, offset: 0 },
});
const events = [
  received(acme, acmeImport),
  received(globex, globexImport),
  received(acme, sharedId),
  received(globex, sharedId),
  invalid(globex, globexImport),
];
const first = 2e12 + Math.floor(Math.random() * 1e6) * 100;
await store.applyBatch({
  consumerGroup: uniqueName('itest.access'),
  topic: topics.fileExtractSuccess.name,
  partition: 0,
  nextOffset: String(first + events.length),
  events: events.map((event, i) => ({ offset: String(first + i), event })),
});

async function get(path: string, headers: Record<string, string> = {}): Promise<{ status: number; json: any; text: string; headers: Record<string, unknown> }> {
  const response = await request(`${url}${path}`, { headers });
  const text = await response.body.text();
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    json = undefined;
  }
  return { status: response.statusCode, json, text, headers: response.headers };
}
const as = (token: string) => ({ authorization: `Bearer ${token}` });

t.test('no token, or a wrong one: 401 with the scheme to use; operational routes stay open', async (t) => {
  for (const headers of [{}, as('wrong')]) {
    const answer = await get(`/imports/${acmeImport}`, headers);
    t.equal(answer.status, 401);
    t.equal(answer.json.error.code, 'UNAUTHORIZED');
    t.match(answer.headers['www-authenticate'], /^Bearer /);
  }
  t.equal((await get('/imports')).status, 401);
  t.equal((await get(`/imports/${acmeImport}/errors`)).status, 401);
  const page = await get('/', { accept: 'text/html' });
  t.equal(page.status, 401);
  t.match(page.text, '<form method="post" action="./login">', 'a browser gets the sign-in form');
  const importPage = await get(`/imports/${acmeImport}?tenant=acme`, { accept: 'text/html' });
  t.equal(importPage.status, 401);
  t.match(importPage.text, '<form method="post" action="../login">', "an import page's form posts to /login, not /imports/login");
  t.match(importPage.text, `<input type="hidden" name="return" value="imports/${acmeImport}?tenant=acme">`);
  t.equal((await get('/liveness')).status, 200);
  t.equal((await get('/readiness')).status, 200);
});

t.test("a tenant's token: its own imports; another tenant's are 404, not 403", async (t) => {
  const own = await get(`/imports/${acmeImport}`, as(tokens.acme));
  t.equal(own.status, 200);
  t.equal(own.json.tenant, acme);
  for (const path of [
    `/imports/${globexImport}`,
    `/imports/${globexImport}?tenant=${globex}`,
    `/imports/${globexImport}/errors`,
    `/imports/${globexImport}/errors?tenant=${globex}&format=csv`,
  ]) {
    const answer = await get(path, as(tokens.acme));
    t.equal(answer.status, 404, path);
    t.equal(answer.json.error.code, 'IMPORT_NOT_FOUND', path);
  }
  const unknown = await get(`/imports/${uniqueName('none')}`, as(tokens.acme));
  t.same([unknown.status, unknown.json.error.code], [404, 'IMPORT_NOT_FOUND'], 'the same answer as an id nobody has');
  const shared = await get(`/imports/${sharedId}`, as(tokens.acme));
  t.equal(shared.status, 200, 'an id both tenants used is not ambiguous for a tenant: it is its own');
  t.equal(shared.json.tenant, acme);

  const listed = await get('/imports?limit=500', as(tokens.acme));
  t.equal(listed.status, 200);
  t.ok(listed.json.imports.length >= 2);
  t.ok(
    listed.json.imports.every((item: any) => item.tenant === acme),
    'only its own imports are listed',
  );
  t.same((await get(`/imports?tenant=${globex}`, as(tokens.acme))).json.imports, [], "asking for another tenant's list gives nothing");
  const page = await get(`/?tenant=${globex}`, { ...as(tokens.acme), accept: 'text/html' });
  t.equal(page.status, 200);
  t.notMatch(page.text, globexImport);

  const errors = await get(`/imports/${globexImport}/errors`, as(tokens.globex));
  t.equal(errors.status, 200, 'globex sees its own errors');
  t.equal(errors.json.counts.validation, 1);
});

t.test('the operator token sees every tenant', async (t) => {
  t.equal((await get(`/imports/${globexImport}`, as(tokens.operator))).json.tenant, globex);
  t.equal((await get(`/imports/${acmeImport}?tenant=${acme}`, as(tokens.operator))).status, 200);
  const ambiguous = await get(`/imports/${sharedId}`, as(tokens.operator));
  t.equal(ambiguous.status, 409, 'for the operator the shared id names two imports');
  const tenants = new Set((await get('/imports?limit=500', as(tokens.operator))).json.imports.map((item: any) => item.tenant));
  t.ok(tenants.has(acme) && tenants.has(globex));
});

t.test('the sign-in form: a valid token becomes an HttpOnly cookie that works like the header; sign out clears it', async (t) => {
  const wrong = await request(`${url}/login`, { method: 'POST', body: 'token=nope', headers: { 'content-type': 'application/x-www-form-urlencoded' } });
  t.equal(wrong.statusCode, 401);
  t.match(await wrong.body.text(), 'That token is not valid here.');
  const signIn = await request(`${url}/login`, {
    method: 'POST',
    body: new URLSearchParams({ token: tokens.globex }).toString(),
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
  });
  await signIn.body.dump();
  t.equal(signIn.statusCode, 303);
  t.equal(signIn.headers.location, './');
  const cookie = String(signIn.headers['set-cookie']);
  t.match(cookie, /HttpOnly/);
  t.match(cookie, /SameSite=Strict/);
  const pair = cookie.split(';')[0]!;
  const page = await get(`/imports/${globexImport}`, { cookie: pair, accept: 'text/html' });
  t.equal(page.status, 200);
  t.match(page.text, `Import <code>${globexImport}</code>`);
  t.equal((await get(`/imports/${acmeImport}`, { cookie: pair })).status, 404, "the cookie's tenant, not another");
  const signOut = await request(`${url}/logout`, { method: 'POST', headers: { cookie: pair } });
  await signOut.body.dump();
  t.equal(signOut.statusCode, 303);
  t.match(String(signOut.headers['set-cookie']), /Max-Age=0/);

  // Back to the page asked for; Secure behind a TLS-terminating proxy; another site's form refused.
  const back = await request(`${url}/login`, {
    method: 'POST',
    body: new URLSearchParams({ token: tokens.globex, return: `imports/${globexImport}?tenant=globex` }).toString(),
    headers: { 'content-type': 'application/x-www-form-urlencoded', 'sec-fetch-site': 'same-origin', 'x-forwarded-proto': 'https' },
  });
  await back.body.dump();
  t.equal(back.statusCode, 303);
  t.equal(back.headers.location, `./imports/${globexImport}?tenant=globex`);
  t.match(String(back.headers['set-cookie']), /; Secure$/);
  const forged = await request(`${url}/login`, {
    method: 'POST',
    body: new URLSearchParams({ token: tokens.globex }).toString(),
    headers: { 'content-type': 'application/x-www-form-urlencoded', origin: 'https://evil.example' },
  });
  t.equal(forged.statusCode, 403);
  t.equal(((await forged.body.json()) as any).error.code, 'CROSS_SITE_REQUEST');
  t.equal(forged.headers['set-cookie'], undefined, 'no cookie for a cross-site sign-in');
});
