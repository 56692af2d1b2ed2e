import pino from 'pino';
import { Writable } from 'node:stream';
import t from 'tap';
import { kafkaLogger } from './kafka.js';

function capture() {
  const lines: Array<{ level: number; msg: string; component?: string }> = [];
  const stream = new Writable({
    write(chunk, _encoding, done) {
      lines.push(JSON.parse(String(chunk)) as { level: number; msg: string });
      done();
    },
  });
  return { logger: pino({ level: 'debug' }, stream), lines };
}

t.test("librdkafka's syslog severities map to the service's log levels", async (t) => {
  const { logger, lines } = capture();
  const kafka = kafkaLogger(logger);
  kafka.info('broker down', { severity: 3 });
  kafka.info('throttled', { severity: 4 });
  kafka.error('metadata', { severity: 6 });
  kafka.error('protocol detail', { severity: 7 });
  kafka.warn('from the JavaScript layer');
  t.same(
    lines.map((line) => [line.msg, line.level, line.component]),
    [
      ['broker down', 50, 'kafka'],
      ['throttled', 40, 'kafka'],
      ['metadata', 30, 'kafka'],
      ['protocol detail', 20, 'kafka'],
      ['from the JavaScript layer', 40, 'kafka'],
    ],
  );
});

t.test('without a service logger the client logs nothing', async (t) => {
  t.doesNotThrow(() => kafkaLogger(undefined).error('ignored'));
});
