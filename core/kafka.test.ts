import { logLevel, type LogEntry } from 'kafkajs';
import t from 'tap';
import { kafkaLogLevel } from './kafka.js';

const entry = (level: logLevel, error?: string): LogEntry => ({
  namespace: 'Connection',
  level,
  label: 'ERROR',
  log: { timestamp: '2026-11-28T00:00:00.000Z', message: 'Response AddPartitionsToTxn(key: 24, version: 1)', ...(error === undefined ? {} : { error }) },
});

t.test('KafkaJS levels map to the service log levels', async (t) => {
  t.equal(kafkaLogLevel(entry(logLevel.ERROR, 'The coordinator is not available')), 'error');
  t.equal(kafkaLogLevel(entry(logLevel.WARN)), 'warn');
  t.equal(kafkaLogLevel(entry(logLevel.INFO)), 'info');
  t.equal(kafkaLogLevel(entry(logLevel.DEBUG)), 'debug');
});

t.test('a transaction begun while the last one\'s markers are written is routine, not an error', async (t) => {
  const concurrent = 'The producer attempted to update a transaction while another concurrent operation on the same transaction was ongoing';
  t.equal(kafkaLogLevel(entry(logLevel.ERROR, concurrent)), 'debug');
  t.equal(kafkaLogLevel(entry(logLevel.ERROR, 'The producer has been fenced')), 'error', 'other transaction errors stay errors');
  const retryLine: LogEntry = {
    namespace: 'Producer',
    level: logLevel.ERROR,
    label: 'ERROR',
    log: { timestamp: '2026-11-28T00:00:00.000Z', message: `Failed to send messages: ${concurrent}`, retryCount: 0, retryTime: 23 } as LogEntry['log'],
  };
  t.equal(kafkaLogLevel(retryLine), 'debug', "the producer's retry line of the same answer too");
  t.equal(kafkaLogLevel({ ...retryLine, log: { ...retryLine.log, message: 'Failed to send messages: The coordinator is not available' } }), 'error');
});
