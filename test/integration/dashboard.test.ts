/**
 * The Grafana dashboard against the services' live /metrics: every metric its PromQL reads
 * is one the service with that prefix exports (ingress_*, processor_*, monitoring_*; Node's
 * default process_* / nodejs_* ones from each). The services run in-process on port 0
 * against the real stack (processor and monitoring in their own consumer groups, as
 * test/integration/processor.test.ts and monitoring.test.ts do).
 */
import { readFileSync } from 'node:fs';
import t from 'tap';
import { request } from 'undici';
import { createLogger } from '../../core/logger.js';
import { loadIngressConfig, startIngress } from '../../ingress/index.js';
import { loadMonitoringConfig, startMonitoring } from '../../monitoring/index.js';
import { loadProcessorConfig } from '../../topology/config.js';
import { startProcessor } from '../../topology/processor.js';

type Json = any;
const dashboard = JSON.parse(readFileSync(new URL('../../deployments/grafana/dashboards/pipeline.json', import.meta.url), 'utf8'));

const keywords = new Set(['and', 'or', 'unless', 'bool', 'offset', 'inf', 'nan', 'Inf', 'NaN', 'atan2']);

/** The metric names a PromQL expression reads (the same reading as test/deployments.test.ts). */
function promqlMetrics(expr: string): string[] {
  const stripped = expr
    .replace(/"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|`[^`]*`/g, '""')
    .replace(/\{[^}]*\}/g, ' ')
    .replace(/\[[^\]]*\]/g, ' ')
    .replace(/\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)/g, ' ')
    .replace(/\$\{?\w+\}?/g, ' ');
  const names: string[] = [];
  for (const match of stripped.matchAll(/[a-zA-Z_:][a-zA-Z0-9_:]*/g)) {
    if (/[0-9.]/.test(stripped[match.index - 1] ?? ' ')) continue;
    if (/^\s*\(/.test(stripped.slice(match.index + match[0].length))) continue;
    if (keywords.has(match[0])) continue;
    names.push(match[0]);
  }
  return names;
}

function dashboardMetrics(): Set<string> {
  const names = new Set<string>();
  const visit = (panels: Json[]) => {
    for (const panel of panels ?? []) {
      for (const target of panel.targets ?? []) for (const name of promqlMetrics(target.expr ?? '')) names.add(name);
      visit(panel.panels);
    }
  };
  visit(dashboard.panels);
  for (const variable of dashboard.templating?.list ?? []) {
    const metric = /label_values\(\s*([a-zA-Z_:][a-zA-Z0-9_:]*)\s*,/.exec(variable.query?.query ?? variable.query ?? '')?.[1];
    if (metric) names.add(metric);
  }
  names.delete('up'); // written by Prometheus, not by a service
  return names;
}

/** Sample names a /metrics text can carry: each family, with _bucket/_sum/_count for histograms. */
async function exported(url: string): Promise<Set<string>> {
  const response = await request(`${url}/metrics`);
  const text = await response.body.text();
  if (response.statusCode !== 200) throw new Error(`GET ${url}/metrics: ${response.statusCode} ${text}`);
  const names = new Set<string>();
  for (const match of text.matchAll(/^# TYPE (\S+) (\S+)$/gm)) {
    const [, name, type] = match as unknown as [string, string, string];
    names.add(name);
    if (type === 'histogram') for (const suffix of ['_bucket', '_sum', '_count']) names.add(`${name}${suffix}`);
    if (type === 'summary') for (const suffix of ['_sum', '_count']) names.add(`${name}${suffix}`);
  }
  return names;
}

const used = dashboardMetrics();
const shared = [...used].filter((name) => /^(process|nodejs)_/.test(name));
const quiet = { LOG_LEVEL: 'warn' };

t.test('the dashboard reads metrics of every service', async (t) => {
  for (const prefix of ['ingress_', 'processor_', 'monitoring_']) {
    t.ok(
      [...used].some((name) => name.startsWith(prefix)),
      `some ${prefix}* metric`,
    );
  }
  t.same(
    [...used].filter((name) => !/^(ingress|processor|monitoring|process|nodejs)_/.test(name)),
    [],
    'no metric of an unknown source',
  );
});

t.test("ingress: the dashboard's ingress_* metrics are on its /metrics", async (t) => {
  const config = loadIngressConfig({ ...process.env, ...quiet, INGRESS_PORT: '0', INGRESS_HOST: '127.0.0.1' });
  const ingress = await startIngress(config, createLogger(config.log, 'ingress-itest'));
  t.teardown(() => ingress.close());
  const names = await exported(`http://127.0.0.1:${ingress.port}`);
  const expected = [...used].filter((name) => name.startsWith('ingress_'));
  t.ok(expected.length >= 8, `${expected.length} ingress metrics on the dashboard`);
  t.same(
    expected.filter((name) => !names.has(name)),
    [],
    'every one exported',
  );
  t.same(
    shared.filter((name) => !names.has(name)),
    [],
    'and the process metrics',
  );
});

t.test("processor: the dashboard's processor_* metrics are on its /metrics", async (t) => {
  // One stage is enough: every metric family is registered at start, whatever runs.
  const config = loadProcessorConfig({ ...process.env, ...quiet, PROCESSOR_PORT: '0', PROCESSOR_HOST: '127.0.0.1', PROCESSOR_STAGES: 'extract' });
  const processor = await startProcessor(config, createLogger(config.log, 'processor-itest'));
  t.teardown(() => processor.close());
  const names = await exported(`http://127.0.0.1:${processor.port}`);
  const expected = [...used].filter((name) => name.startsWith('processor_'));
  t.ok(expected.length >= 6, `${expected.length} processor metrics on the dashboard`);
  t.same(
    expected.filter((name) => !names.has(name)),
    [],
    'every one exported',
  );
  t.same(
    shared.filter((name) => !names.has(name)),
    [],
    'and the process metrics',
  );
});

t.test("monitoring: the dashboard's monitoring_* metrics are on its /metrics", async (t) => {
  const config = loadMonitoringConfig({ ...process.env, ...quiet, MONITORING_PORT: '0', MONITORING_HOST: '127.0.0.1' });
  const monitoring = await startMonitoring(config, createLogger(config.log, 'monitoring-itest'));
  t.teardown(() => monitoring.close());
  const names = await exported(`http://127.0.0.1:${monitoring.port}`);
  const expected = [...used].filter((name) => name.startsWith('monitoring_'));
  t.ok(expected.length >= 8, `${expected.length} monitoring metrics on the dashboard`);
  t.same(
    expected.filter((name) => !names.has(name)),
    [],
    'every one exported',
  );
  t.same(
    shared.filter((name) => !names.has(name)),
    [],
    'and the process metrics',
  );
});
