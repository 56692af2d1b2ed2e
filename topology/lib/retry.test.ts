import t from 'tap';
import { PipelineError } from '../../core/errors.js';
import { classifyFailure } from './failures.js';
import { backoffMs } from './retry.js';

t.test('backoff grows exponentially with jitter and is capped', async (t) => {
  t.equal(backoffMs(0, { random: () => 1 }), 200);
  t.equal(backoffMs(0, { random: () => 0 }), 100);
  t.equal(backoffMs(3, { random: () => 1 }), 1600);
  t.equal(backoffMs(50, { random: () => 1 }), 30_000);
});

t.test('failures are classified on their class and codes', async (t) => {
  t.equal(classifyFailure(new PipelineError('S3_OBJECT_MISSING', 'gone')), 'poison', 'a non-retriable pipeline error');
  t.equal(classifyFailure(new PipelineError('S3_UNAVAILABLE', 'down', { retriable: true })), 'transient', 'a retriable one');
  t.equal(classifyFailure(new TypeError('x is undefined')), 'bug', 'a TypeError is a bug: bounded attempts');
  t.equal(classifyFailure(new SyntaxError('Unexpected token')), 'bug');
  t.equal(classifyFailure(Object.assign(new Error('relation "companies" does not exist'), { code: '42P01' })), 'bug', 'a table the database no longer has');
  t.equal(
    classifyFailure(Object.assign(new Error('terminating connection due to administrator command'), { code: '57P01' })),
    'transient',
    'PostgreSQL restarting',
  );
  t.equal(classifyFailure(Object.assign(new Error('connect ECONNREFUSED'), { code: 'ECONNREFUSED' })), 'transient', 'a server down');
  t.equal(classifyFailure(Object.assign(new Error('SlowDown'), { $metadata: { httpStatusCode: 503 } })), 'transient', 'S3 answering 503');
  t.equal(classifyFailure(Object.assign(new Error('AccessDenied'), { $metadata: { httpStatusCode: 403 } })), 'bug', 'S3 refusing for good');
  const kafka = (code: number) => Object.assign(new Error('kafka'), { name: 'KafkaJSError', code });
  t.equal(classifyFailure(kafka(-144)), 'fenced', 'a fenced producer');
  t.equal(classifyFailure(kafka(22)), 'fenced', 'a commit of an older group generation');
  t.equal(classifyFailure(kafka(-185)), 'transient', 'a broker timeout');
  t.equal(
    classifyFailure(new Error('wrapped', { cause: Object.assign(new Error('reset'), { code: 'ECONNRESET' }) })),
    'transient',
    'the cause decides for a wrapper',
  );
  t.equal(classifyFailure('a string'), 'bug');
});

t.test("a lost assignment is another replica's partition: librdkafka's ERR__ASSIGNMENT_LOST (-142)", async (t) => {
  const kafka = (code: number) => Object.assign(new Error('kafka'), { name: 'KafkaJSError', code });
  t.equal(classifyFailure(kafka(-142)), 'fenced');
});
