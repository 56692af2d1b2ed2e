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
