import t from 'tap';
import { RequestDeduplicator } from './dedupe.js';

t.test('a request id is claimed once; retries see in-flight, then the first result', async (t) => {
  let now = 0;
  const dedupe = new RequestDeduplicator<string>(1000, () => now);
  t.equal(dedupe.claim('acme', 'req-00001'), undefined, 'first claim wins');
  t.same(dedupe.claim('acme', 'req-00001'), { state: 'in-flight' });
  t.equal(dedupe.claim('globex', 'req-00001'), undefined, 'ids are per tenant');
  dedupe.complete('acme', 'req-00001', 'first result');
  t.same(dedupe.claim('acme', 'req-00001'), { state: 'done', result: 'first result' });
  now = 1001;
  t.equal(dedupe.claim('acme', 'req-00001'), undefined, 'after the window the id is new again');
});

t.test('a released id (failed import) may be retried at once', async (t) => {
  const dedupe = new RequestDeduplicator<string>(1000);
  dedupe.claim('acme', 'req-00002');
  dedupe.release('acme', 'req-00002');
  t.equal(dedupe.claim('acme', 'req-00002'), undefined);
});

t.test('expired entries are swept so memory stays bounded', async (t) => {
  let now = 0;
  const dedupe = new RequestDeduplicator<number>(10, () => now);
  for (let i = 0; i < 100; i++) {
    dedupe.claim('acme', `req-${i}-xxxx`);
    dedupe.complete('acme', `req-${i}-xxxx`, i);
  }
  now = 100;
  dedupe.claim('acme', 'req-new-xxxx');
  t.equal(dedupe.size, 1);
});
