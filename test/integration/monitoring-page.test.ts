/**
 * The monitoring page in a real browser (Debian's headless Chromium through playwright-core):
 * after a real import it lists the import with its status, updates in place by polling (a
 * new import appears and statuses change without a reload), and renders hostile user input
 * (a filename) as text.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { chromium, type Browser, type Page } from 'playwright-core';
import t from 'tap';
import { request } from 'undici';
import { createLogger } from '../../core/logger.js';
import { javaPartitionOf } from '../../core/murmur2.js';
import { topics } from '../../core/pipeline.js';
import { loadIngressConfig, startIngress } from '../../ingress/index.js';
import { loadMonitoringConfig, startMonitoring } from '../../monitoring/index.js';
import { measureLag } from '../../topology/lib/lag.js';
import { eventually, freePort, testKafka, uniqueName } from './helpers.js';

const chromiumPath = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
if (!existsSync(chromiumPath)) {
  // The stack installs Debian's chromium package; without it this test cannot run.
  throw new Error(`no Chromium at ${chromiumPath}: apt-get install -y chromium (or set CHROMIUM_PATH)`);
}

const sample = readFileSync(new URL('../../examples/data/json/companies-sample.ndjson', import.meta.url));

const ingressConfig = loadIngressConfig({ ...process.env, INGRESS_PORT: '0', INGRESS_HOST: '127.0.0.1', LOG_LEVEL: process.env.ITEST_LOG_LEVEL ?? 'warn' });
const ingress = await startIngress(ingressConfig, createLogger(ingressConfig.log, 'ingress-itest'));
t.teardown(() => ingress.close());

const monitoringConfig = loadMonitoringConfig({
  ...process.env,
  MONITORING_PORT: '0',
  MONITORING_HOST: '127.0.0.1',
  LOG_LEVEL: process.env.ITEST_LOG_LEVEL ?? 'warn',
});
const monitoring = await startMonitoring(monitoringConfig, createLogger(monitoringConfig.log, 'monitoring-itest'));
t.teardown(() => monitoring.close());
const monitoringUrl = `http://127.0.0.1:${monitoring.port}`;
await eventually('the monitoring to be ready', async () => ((await request(`${monitoringUrl}/readiness`)).statusCode === 200 ? true : undefined), 90_000);

let processor: { child: ChildProcess; exited: Promise<number | null> } | undefined;
t.teardown(async () => {
  if (processor !== undefined && processor.child.exitCode === null && processor.child.signalCode === null) {
    processor.child.kill('SIGTERM');
    const timer = setTimeout(() => processor?.child.kill('SIGKILL'), 20_000);
    await processor.exited;
    clearTimeout(timer);
  }
});

async function startProcessor(): Promise<void> {
  const port = await freePort();
  const child = spawn(process.execPath, ['--import', 'tsx', 'topology/main.ts', 'run'], {
    env: { ...process.env, PROCESSOR_PORT: String(port), PROCESSOR_HOST: '127.0.0.1', LOG_LEVEL: process.env.ITEST_LOG_LEVEL ?? 'warn' },
    stdio: ['ignore', 'inherit', 'inherit'],
  });
  processor = { child, exited: new Promise((resolve) => child.once('exit', (code) => resolve(code))) };
  // Listening is enough: the page test waits for the import's outcome itself (on a shared
  // stack the processor's groups may rebalance for a while before it is ready).
  await eventually('the processor to listen', async () => ((await request(`http://127.0.0.1:${port}/liveness`)).statusCode === 200 ? true : undefined), 60_000);
}

async function importFile(tenant: string, body: Buffer | string, headers: Record<string, string>): Promise<{ status: number; json: any }> {
  const response = await request(`http://127.0.0.1:${ingress.port}/import/${tenant}`, { method: 'POST', body, headers });
  return { status: response.statusCode, json: await response.body.json() };
}

async function launch(): Promise<Browser> {
  return chromium.launch({
    executablePath: chromiumPath,
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
  });
}

/**
 * A fresh tenant whose files land on the FileExtractSuccess partition the extract stage is
 * least behind on (files are keyed by tenant): the stack is shared, and a backlog of other
 * files on one partition must not decide whether this test finishes in time.
 */
async function quietTenant(prefix: string): Promise<string> {
  const kafka = testKafka();
  const admin = kafka.admin();
  const offsets = kafka.groupOffsets('etl-extract');
  await admin.connect();
  try {
    const lags = await measureLag(admin, offsets, topics.fileExtractSuccess.name);
    const quietest = lags.reduce((best, candidate) => (candidate.lag < best.lag ? candidate : best)).partition;
    for (let attempt = 0; attempt < 200; attempt++) {
      const tenant = uniqueName(prefix);
      if (javaPartitionOf(tenant, lags.length) === quietest) return tenant;
    }
    return uniqueName(prefix);
  } finally {
    await offsets.close();
    await admin.disconnect();
  }
}

const statusOf = (page: Page, requestId: string) => page.locator(`tr[data-request-id="${requestId}"] td.status`);

t.test('the page lists a real import, updates it live without reloading, and escapes user input', async (t) => {
  const tenant = await quietTenant('page');
  const browser = await launch();
  t.teardown(() => browser.close());
  const page = await browser.newPage();
  const consoleErrors: string[] = [];
  page.on('console', (message) => {
    if (message.type() === 'error') consoleErrors.push(message.text());
  });
  page.on('pageerror', (error) => consoleErrors.push(error.message));
  let navigations = 0;
  page.on('framenavigated', (frame) => {
    if (frame === page.mainFrame()) navigations++;
  });
  // The page is open before anything of this tenant exists.
  const response = await page.goto(`${monitoringUrl}/?tenant=${tenant}`);
  t.equal(response?.status(), 200);
  t.equal(await page.title(), 'Imports — ETL monitoring');
  t.equal(await page.locator('#imports-body td.empty').textContent(), 'No imports yet.');
  // A marker that a reload would wipe out.
  await page.evaluate('window.__notReloaded = true');

  const hostileName = `<img src=x onerror="window.__xss=1">.ndjson`;
  const first = await importFile(tenant, sample, { 'content-type': 'application/x-ndjson', 'x-filename': encodeURIComponent(hostileName) });
  t.equal(first.status, 202);
  const firstId = first.json.request_id as string;

  // The import shows up by itself; every status the row goes through is noted.
  const row = page.locator(`tr[data-request-id="${firstId}"]`);
  await row.waitFor({ timeout: 30_000 });
  const seen: string[] = [];
  let watching = true;
  // Stops with the test even when an assertion below throws (a live timer keeps the file running).
  t.teardown(() => void (watching = false));
  const watcher = (async () => {
    while (watching) {
      const status = await statusOf(page, firstId)
        .textContent({ timeout: 1000 })
        .catch(() => null);
      if (status !== null && seen.at(-1) !== status) seen.push(status);
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  })();
  t.equal(await row.locator('td.request-id').textContent(), firstId, 'shows the request id');
  t.equal(await row.locator('td.tenant').textContent(), tenant);
  const initialStatus = (await statusOf(page, firstId).textContent()) ?? '';
  t.ok(['received', 'extracting', 'extracted', 'complete'].includes(initialStatus), `shows the status (${initialStatus})`);
  t.equal(await row.locator('td.filename').textContent(), hostileName, 'the hostile filename is text');
  t.equal(await page.locator('td.filename img').count(), 0, 'no element was injected');

  // A second import appears without a reload, above the first (newest first).
  const second = await importFile(tenant, '{"name": broken', { 'content-type': 'application/json', 'x-filename': 'second.json' });
  t.equal(second.status, 400);
  const secondId = second.json.error.request_id as string;
  await statusOf(page, secondId)
    .filter({ hasText: /^failed$/ })
    .waitFor({ timeout: 60_000 });
  t.same(
    await page.locator('#imports-body tr').evaluateAll((rows) => rows.map((element) => element.getAttribute('data-request-id'))),
    [secondId, firstId],
    'newest first',
  );
  t.equal(await page.locator(`tr[data-request-id="${secondId}"] td.error`).textContent(), second.json.error.code, 'shows the error code');
  t.match((await page.locator('#poll-state').textContent()) ?? '', /^updated /, 'the poll indicator shows the last update');

  // The pipeline runs: the first row's status changes on the page by itself.
  await startProcessor();
  await statusOf(page, firstId)
    .filter({ hasText: /^complete$/ })
    .waitFor({ timeout: 200_000 });
  t.equal(await row.locator('td.extracted').textContent(), '60');
  t.equal(await row.locator('td.invalid').textContent(), '3');
  t.equal(await row.locator('td.loaded').textContent(), '57');
  t.equal(await row.getAttribute('data-status'), 'complete');
  watching = false;
  await watcher;
  t.comment(`statuses seen on the page: ${seen.join(' → ')}`);
  t.equal(seen.at(-1), 'complete');

  t.equal(await page.evaluate('window.__notReloaded === true'), true, 'the page was not reloaded');
  t.equal(navigations, 1, 'one navigation: the first load');
  t.equal(await page.evaluate('typeof window.__xss'), 'undefined', 'the hostile filename ran nothing');
  t.same(consoleErrors, [], 'no script errors (and no CSP violations)');

  // From the list to the import's page: its timeline, counts, raw file and errors.
  await row.locator('td.request-id a').click();
  await page.waitForURL(`**/imports/${firstId}?tenant=${tenant}`);
  t.equal(await page.title(), `Import ${firstId} — ETL monitoring`);
  t.equal(await page.locator('#status').textContent(), 'complete');
  t.equal(await page.locator('#filename').textContent(), `${hostileName} (${sample.length} bytes)`, 'the hostile filename is text here too');
  t.match((await page.locator('#raw-object').textContent()) ?? '', new RegExp(`^s3://[^/]+/.*${tenant}`), 'where the raw file is');
  t.same(await page.locator('#timeline li').evaluateAll((items) => items.map((item) => [item.getAttribute('data-step'), item.className])), [
    ['received', 'done'],
    ['extracted', 'done'],
    ['completed', 'done'],
  ]);
  t.equal(await page.locator('tr[data-count="invalid"] td').textContent(), '3');
  t.equal(await page.locator('tr[data-count="loaded"] td').textContent(), '57');
  const entries = page.locator('#errors tr.error-entry');
  t.equal(await entries.count(), 3, 'the three invalid records');
  t.same(await entries.evaluateAll((items) => items.map((item) => item.getAttribute('data-kind'))), ['validation', 'validation', 'validation']);
  t.ok((await entries.first().locator('td.path').textContent()) !== null, 'each with the path it broke');
  const csvHref = await page.locator('#errors-csv').getAttribute('href');
  const csv = await page.request.get(new URL(csvHref!, page.url()).toString());
  t.equal(csv.status(), 200);
  t.match(csv.headers()['content-type'], /^text\/csv/);
  t.equal(
    (await csv.text()).split('\r\n').filter(Boolean)[0],
    'record_index,record_key,kind,stage,code,path,keyword,message,source_topic,source_partition,source_offset,detected_at',
  );
  // Start a replay from the page: the browser lands on the replay's page, linked to the original.
  await page.locator('#replay').click();
  await page.waitForURL(new RegExp(`/imports/${firstId}-r[a-z0-9]+\\?tenant=${tenant}$`));
  // Until the monitoring has seen the replay's announcement the page says so and looks again.
  t.equal(await page.locator('#replay-of').textContent({ timeout: 60_000 }), firstId, 'the replay names its original');
  await page
    .locator('#status')
    .filter({ hasText: /^(received|extracting|extracted|complete)$/ })
    .waitFor();
  await page.locator('#replay-of').click();
  await page.waitForURL(`**/imports/${firstId}?tenant=${tenant}`);
  await page.locator('#back').click();
  await page.waitForURL(`**/?tenant=${tenant}`);
  await page.locator(`tr[data-request-id="${firstId}"]`).waitFor();
  t.equal(await page.evaluate('typeof window.__xss'), 'undefined', 'nothing ran on either page');
  t.same(
    consoleErrors.filter((message) => !/responded with a status of 404/.test(message)),
    [],
    "no script errors (and no CSP violations) on the import pages (the replay's page answers 404 until it is known)",
  );
});
