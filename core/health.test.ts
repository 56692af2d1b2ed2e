import t from 'tap';
import { createReadiness } from './health.js';

t.test('ready only when every check passes, naming what is down', async (t) => {
  const readiness = createReadiness({ kafka: async () => {}, s3: async () => Promise.reject(new Error('connection refused')) }, { cacheMs: 0 });
  const result = await readiness();
  t.equal(result.ready, false);
  t.equal(result.checks.kafka?.ok, true);
  t.same({ ok: result.checks.s3?.ok, error: result.checks.s3?.error }, { ok: false, error: 'connection refused' });
});

t.test('results are cached and concurrent probes share one run', async (t) => {
  let runs = 0;
  const readiness = createReadiness({ slow: async () => void runs++ }, { cacheMs: 60_000 });
  await Promise.all([readiness(), readiness(), readiness()]);
  await readiness();
  t.equal(runs, 1);
});

t.test('a check that hangs counts as down after the timeout', async (t) => {
  const readiness = createReadiness({ hung: () => new Promise(() => {}) }, { cacheMs: 0, timeoutMs: 50 });
  const result = await readiness();
  t.equal(result.ready, false);
  t.match(result.checks.hung?.error, /no answer within 50 ms/);
});
