import t from 'tap';
import { claimKey, ImportClaims, type ClaimObjects, type ClaimRecord } from './import-claims.js';

/** The conditional-write semantics of S3 (If-None-Match: *, If-Match), in memory. */
function memoryObjects(): ClaimObjects & { objects: Map<string, { etag: string; body: Buffer }> } {
  const objects = new Map<string, { etag: string; body: Buffer }>();
  let version = 0;
  const store = (key: string, body: Buffer) => {
    const etag = `v${++version}`;
    objects.set(key, { etag, body });
    return { etag };
  };
  return {
    objects,
    async create(key, body) {
      return objects.has(key) ? false : store(key, body);
    },
    async replace(key, body, etag) {
      return objects.get(key)?.etag === etag ? store(key, body) : false;
    },
    async read(key) {
      return objects.get(key);
    },
  };
}

function recordOf(objects: ReturnType<typeof memoryObjects>, key: string): ClaimRecord<unknown> {
  return JSON.parse(objects.objects.get(key)!.body.toString('utf8')) as ClaimRecord<unknown>;
}

function setup(leaseMs = 60_000, windowMs = 900_000) {
  const objects = memoryObjects();
  let now = 1_000_000;
  const clock = { now: () => now, advance: (ms: number) => (now += ms) };
  const replica = (owner: string) => new ImportClaims<{ answer: string }>(objects, { owner, leaseMs, windowMs, now: clock.now });
  return { objects, clock, a: replica('ingress-a'), b: replica('ingress-b') };
}

t.test('the first claim wins; another replica is told the import is in flight', async (t) => {
  const { a, b, objects } = setup();
  const first = await a.claim('acme', 'req-00000001');
  t.equal(first.kind, 'claimed');
  const second = await b.claim('acme', 'req-00000001');
  t.match(second, { kind: 'in-flight', owner: 'ingress-a' });
  t.match(recordOf(objects, claimKey('acme', 'req-00000001')), { state: 'in-flight', owner: 'ingress-a' });
  t.equal((await b.claim('globex', 'req-00000001')).kind, 'claimed', 'the same id under another tenant is another import');
});

t.test('a completed claim answers every retry with the first answer until the window ends', async (t) => {
  const { a, b, clock } = setup(60_000, 900_000);
  const first = await a.claim('acme', 'req-00000002');
  if (first.kind !== 'claimed') throw new Error('not claimed');
  await first.claim.complete({ answer: 'first' });
  t.same(await b.claim('acme', 'req-00000002'), { kind: 'done', result: { answer: 'first' } });
  t.same(await a.claim('acme', 'req-00000002'), { kind: 'done', result: { answer: 'first' } });
  clock.advance(900_001);
  t.equal((await b.claim('acme', 'req-00000002')).kind, 'claimed', 'after the window the id is new again');
});

t.test('a released claim lets the retry import', async (t) => {
  const { a, b } = setup();
  const first = await a.claim('acme', 'req-00000003');
  if (first.kind !== 'claimed') throw new Error('not claimed');
  await first.claim.release();
  t.equal((await b.claim('acme', 'req-00000003')).kind, 'claimed');
});

t.test('a claim left by a dead ingress is taken once its lease ran out, and its owner cannot complete it then', async (t) => {
  const { a, b, clock } = setup(60_000);
  const first = await a.claim('acme', 'req-00000004');
  if (first.kind !== 'claimed') throw new Error('not claimed');
  clock.advance(59_999);
  t.equal((await b.claim('acme', 'req-00000004')).kind, 'in-flight', 'within the lease it stands');
  clock.advance(2);
  const taken = await b.claim('acme', 'req-00000004');
  t.equal(taken.kind, 'claimed', 'after it, the retry takes it');
  await t.rejects(first.claim.complete({ answer: 'late' }), /taken by another ingress/);
});

t.test('renewing keeps a long import its claim past the first lease', async (t) => {
  const { a, b, clock, objects } = setup(60_000);
  const first = await a.claim('acme', 'req-00000005');
  if (first.kind !== 'claimed') throw new Error('not claimed');
  clock.advance(50_000);
  await first.claim.renew();
  clock.advance(50_000);
  t.match(await b.claim('acme', 'req-00000005'), { kind: 'in-flight', leaseUntil: 1_000_000 + 110_000 });
  await first.claim.complete({ answer: 'long' });
  t.equal(recordOf(objects, claimKey('acme', 'req-00000005')).state, 'done');
});

t.test('replicas racing for one id: exactly one claims it', async (t) => {
  const { objects, clock } = setup();
  const replicas = Array.from(
    { length: 8 },
    (_, i) => new ImportClaims(objects, { owner: `ingress-${i}`, leaseMs: 60_000, windowMs: 900_000, now: clock.now }),
  );
  const outcomes = await Promise.all(replicas.map((replica) => replica.claim('acme', 'req-00000006')));
  t.equal(outcomes.filter((outcome) => outcome.kind === 'claimed').length, 1);
  t.equal(outcomes.filter((outcome) => outcome.kind === 'in-flight').length, 7);
});

t.test('racing to take over an expired claim: exactly one takes it', async (t) => {
  const { objects, clock, a } = setup(60_000);
  await a.claim('acme', 'req-00000007');
  clock.advance(60_001);
  const replicas = Array.from(
    { length: 6 },
    (_, i) => new ImportClaims(objects, { owner: `ingress-${i}`, leaseMs: 60_000, windowMs: 900_000, now: clock.now }),
  );
  const outcomes = await Promise.all(replicas.map((replica) => replica.claim('acme', 'req-00000007')));
  t.equal(outcomes.filter((outcome) => outcome.kind === 'claimed').length, 1);
});

t.test('an unreadable claim object is taken over rather than blocking the id for ever', async (t) => {
  const { objects, a } = setup();
  objects.objects.set(claimKey('acme', 'req-00000008'), { etag: 'garbage', body: Buffer.from('not json') });
  t.equal((await a.claim('acme', 'req-00000008')).kind, 'claimed');
});
