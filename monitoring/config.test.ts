import t from 'tap';
import { ConfigError } from '../core/errors.js';
import { defaultLagGroups, loadMonitoringConfig, parseLagGroups } from './config.js';

t.test('defaults', async (t) => {
  const config = loadMonitoringConfig({});
  t.match(config.monitoring, {
    host: '127.0.0.1',
    port: 3002,
    groupPrefix: 'etl-monitoring-',
    batchMaxRecords: 1000,
    batchLingerMs: 200,
    lagIntervalMs: 5000,
    readinessCacheMs: 2000,
    pageLimit: 50,
    errorRetentionDays: 30,
  });
  t.same(config.monitoring.lagGroups, defaultLagGroups);
  t.same(
    config.monitoring.lagGroups.map((target) => `${target.group}=${target.topic}`),
    ['etl-split=FileExtractSuccess', 'etl-extract=FilePiece', 'etl-validate=RecordExtracted', 'etl-load=RecordValidated'],
    "each stage's group on the topic it reads",
  );
});

t.test('overrides and bad values, each named', async (t) => {
  const config = loadMonitoringConfig({ MONITORING_PORT: '0', MONITORING_HOST: '127.0.0.1', MONITORING_LAG_GROUPS: 'g1=TopicA, g2=TopicB' });
  t.equal(config.monitoring.port, 0);
  t.same(config.monitoring.lagGroups, [
    { group: 'g1', topic: 'TopicA' },
    { group: 'g2', topic: 'TopicB' },
  ]);
  try {
    loadMonitoringConfig({ MONITORING_PORT: 'x', MONITORING_LAG_GROUPS: 'nogroup', MONITORING_GROUP_PREFIX: 'a b', MONITORING_PAGE_LIMIT: '0' });
    t.fail('should throw');
  } catch (error) {
    t.ok(error instanceof ConfigError);
    const message = (error as Error).message;
    for (const name of ['MONITORING_PORT', 'MONITORING_LAG_GROUPS', 'MONITORING_GROUP_PREFIX', 'MONITORING_PAGE_LIMIT']) t.match(message, name);
  }
  t.same(parseLagGroups(['a=B', 'c', '=D']), { targets: [{ group: 'a', topic: 'B' }], bad: ['c', '=D'] });
});

t.test('a token shared by two tenants, or by a tenant and the operator, is refused naming the tenants, never the token', async (t) => {
  const refusal = (env: Record<string, string>) => {
    try {
      loadMonitoringConfig(env);
    } catch (error) {
      t.ok(error instanceof ConfigError);
      return (error as Error).message;
    }
    return undefined;
  };
  const shared = refusal({ MONITORING_TENANT_TOKENS: 'acme:secret-1,globex:secret-1,initech:secret-2' });
  t.match(shared, 'MONITORING_TENANT_TOKENS: tenants acme, globex have the same token');
  t.notMatch(shared, 'secret-1');
  t.notMatch(shared, 'initech');
  const operator = refusal({ MONITORING_TENANT_TOKENS: '{"acme":"secret-3"}', MONITORING_OPERATOR_TOKEN: 'secret-3' });
  t.match(operator, 'MONITORING_OPERATOR_TOKEN: is the token of tenant acme');
  t.notMatch(operator, 'secret-3');
  t.equal(refusal({ MONITORING_TENANT_TOKENS: 'acme:secret-1,globex:secret-2', MONITORING_OPERATOR_TOKEN: 'secret-3' }), undefined, 'distinct tokens start');
});

t.test('MONITORING_COOKIE_SECURE: off by default (Secure over HTTPS only), on when set', async (t) => {
  t.equal(loadMonitoringConfig({}).monitoring.cookieSecure, false);
  t.equal(loadMonitoringConfig({ MONITORING_COOKIE_SECURE: 'true' }).monitoring.cookieSecure, true);
});
