import t from 'tap';
import { PipelineError } from '../../core/errors.js';
import { backoffMs, isPoison } from './retry.js';

t.test('backoff grows exponentially with jitter and is capped', async (t) => {
  t.equal(backoffMs(0, { random: () => 1 }), 200);
  t.equal(backoffMs(0, { random: () => 0 }), 100);
  t.equal(backoffMs(3, { random: () => 1 }), 1600);
  t.equal(backoffMs(50, { random: () => 1 }), 30_000);
});

t.test('only non-retriable pipeline errors are poison', async (t) => {
  t.ok(isPoison(new PipelineError('S3_OBJECT_MISSING', 'gone')));
  t.notOk(isPoison(new PipelineError('S3_UNAVAILABLE', 'down', { retriable: true })));
  t.notOk(isPoison(new Error('unknown: retried, never dropped')));
});
