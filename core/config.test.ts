import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { loadConfig } from './config.js';
import { ConfigError } from './errors.js';
import { defaultPartitions } from './pipeline.js';

t.test('every setting has a documented default matching the local stack', async (t) => {
  const config = loadConfig({});
  t.same(config.kafka.brokers, ['127.0.0.1:9092', '127.0.0.1:9093', '127.0.0.1:9094']);
  t.equal(config.registry.url, 'http://127.0.0.1:8081/apis/ccompat/v7');
  t.equal(config.s3.endpoint, 'http://127.0.0.1:9000');
  t.equal(config.postgres.port, 5433);
  t.equal(config.postgres.database, 'etl');
  t.equal(config.uwsAllowJsFallback, false);
});

t.test('environment variables override the defaults', async (t) => {
  const config = loadConfig({ KAFKA_BROKERS: 'k1:1, k2:2', PGPORT: '6000', S3_FORCE_PATH_STYLE: 'false' });
  t.same(config.kafka.brokers, ['k1:1', 'k2:2']);
  t.equal(config.postgres.port, 6000);
  t.equal(config.s3.forcePathStyle, false);
});

t.test('a bad value is reported with the name of its variable, all at once', async (t) => {
  const error = t.throws(() => loadConfig({ PGPORT: 'five', KAFKA_BROKERS: 'nohost', SCHEMA_REGISTRY_URL: 'ftp://x', LOG_LEVEL: 'loud' })) as ConfigError;
  t.type(error, ConfigError);
  t.equal(error.code, 'ERR_CONFIG');
  t.equal(error.problems.length, 4);
  t.match(error.message, /PGPORT="five": expected an integer/);
  t.match(error.message, /KAFKA_BROKERS="nohost"/);
  t.match(error.message, /SCHEMA_REGISTRY_URL="ftp:\/\/x"/);
  t.match(error.message, /LOG_LEVEL="loud"/);
});

t.test('credentials can come from mounted files (NAME_FILE)', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'etl-config-'));
  writeFileSync(join(dir, 'secret'), 's3cr3t\n');
  const config = loadConfig({ S3_SECRET_ACCESS_KEY_FILE: join(dir, 'secret') });
  t.equal(config.s3.secretAccessKey, 's3cr3t');
  t.throws(() => loadConfig({ PGPASSWORD_FILE: join(dir, 'missing') }), /PGPASSWORD_FILE: cannot read/);
});

t.test('PIPELINE_PARTITIONS: 3 by default, any integer >= 1, anything else refused by name', async (t) => {
  t.equal(loadConfig({}).pipeline.partitions, defaultPartitions);
  t.equal(defaultPartitions, 3, "the design's count");
  t.equal(loadConfig({ PIPELINE_PARTITIONS: '1' }).pipeline.partitions, 1);
  t.equal(loadConfig({ PIPELINE_PARTITIONS: ' 12 ' }).pipeline.partitions, 12);
  const refused: Array<[string, RegExp]> = [
    ['0', /PIPELINE_PARTITIONS=0: must be >= 1/],
    ['-1', /PIPELINE_PARTITIONS=-1: must be >= 1/],
    ['abc', /PIPELINE_PARTITIONS="abc": expected an integer/],
    ['2.5', /PIPELINE_PARTITIONS="2.5": expected an integer/],
  ];
  for (const [value, message] of refused) {
    const error = t.throws(() => loadConfig({ PIPELINE_PARTITIONS: value }), `PIPELINE_PARTITIONS=${value} is refused`) as ConfigError;
    t.type(error, ConfigError);
    t.equal(error.code, 'ERR_CONFIG');
    t.same(error.problems.length, 1, `${value}: one problem`);
    t.match(error.message, message, `${value}: the message names the variable`);
  }
});

t.test('KAFKA_DEBUG takes librdkafka debug contexts and refuses unknown ones by name', async (t) => {
  t.same(loadConfig({}).kafka.debug, []);
  t.same(loadConfig({ KAFKA_DEBUG: 'eos, cgrp' }).kafka.debug, ['eos', 'cgrp']);
  const error = t.throws(() => loadConfig({ KAFKA_DEBUG: 'eos,txn' })) as ConfigError;
  t.match(error.message, /KAFKA_DEBUG="eos,txn": unknown librdkafka debug context txn/);
});
