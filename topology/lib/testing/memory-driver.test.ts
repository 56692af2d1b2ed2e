import t from 'tap';
import { javaPartitionOf } from '../../../core/murmur2.js';
import type { ConsumedRecord, ConsumerHandlers, ConsumerOptions } from '../driver.js';
import { classifyFailure } from '../failures.js';
import { createMemoryCodec } from './memory-codec.js';
import { kafkaError, MemoryDriver } from './memory-driver.js';

const options = (groupId: string, maxBatchMessages = 100): ConsumerOptions => ({
  groupId,
  topic: 'In',
  maxBatchMessages,
  maxWaitMs: 0,
  minBytes: 1,
  maxBytesPerPartition: 1 << 20,
});
const values = (records: readonly ConsumedRecord[]): string[] => records.map((record) => record.value!.toString());

/** Handlers that resolve every batch and keep what they saw. */
function recorder(overrides: Partial<ConsumerHandlers> = {}): ConsumerHandlers & { seen: Map<number, string[]>; assigned: number[][] } {
  const seen = new Map<number, string[]>();
  const assigned: number[][] = [];
  return {
    seen,
    assigned,
    async onAssigned(partitions) {
      assigned.push(partitions);
    },
    async onRevoked() {},
    async eachBatch(partition, records, scope) {
      seen.set(partition, [...(seen.get(partition) ?? []), ...values(records)]);
      scope.resolveOffset(records[records.length - 1]!.offset);
    },
    ...overrides,
  };
}

t.test('a key lands on the partition Java would pick', async (t) => {
  const driver = new MemoryDriver();
  for (const key of ['a', 'acme/42', 'r-17']) t.equal(driver.partitionOf('Out', key), javaPartitionOf(key, 3));
  t.equal(driver.partitionCount('Out'), 3, 'three partitions by default');
});

t.test('read_committed: a transaction is seen whole once committed, never when aborted', async (t) => {
  const driver = new MemoryDriver();
  const consumer = driver.consumer(options('g'));
  const producer = await driver.transactionalProducer('tx', consumer);
  const record = (value: string) => ({ topic: 'Out', key: 'k', value: Buffer.from(value), headers: {} });
  const aborted = await producer.begin();
  await aborted.send([record('a')]);
  await aborted.abort();
  const committed = await producer.begin();
  await committed.send([record('b'), record('c')]);
  t.same(driver.records('Out'), [], 'nothing visible before the commit');
  await committed.commit([]);
  t.same(values(driver.records('Out')), ['b', 'c']);
  const offsets = driver.records('Out').map((r) => Number(r.offset));
  t.ok(offsets[0]! > 0, 'the aborted record and its marker took offsets before them');
});

t.test('a second producer with the same id fences the first with an error classified as fenced', async (t) => {
  const driver = new MemoryDriver();
  const consumer = driver.consumer(options('g'));
  const first = await driver.transactionalProducer('tx', consumer);
  const open = await first.begin();
  await open.send([{ topic: 'Out', key: 'k', value: Buffer.from('x'), headers: {} }]);
  await driver.transactionalProducer('tx', consumer);
  const error = await open.commit([]).then(
    () => undefined,
    (e: unknown) => e,
  );
  t.match(error, { name: 'KafkaJSError', code: -144, fatal: true });
  t.equal(classifyFailure(error), 'fenced');
  await t.rejects(first.begin(), { code: -144 });
  t.same(driver.records('Out'), [], 'the fenced transaction was discarded');
  t.same(
    driver.transactions('tx').map((x) => x.outcome),
    ['fenced'],
  );
});

t.test('a group splits partitions, rebalances on join and leave, and honours seeks made in onAssigned', async (t) => {
  const driver = new MemoryDriver();
  for (let p = 0; p < 3; p++)
    driver.produce(
      'In',
      [0, 1, 2].map((i) => ({ value: Buffer.from(`${p}:${i}`), partition: p })),
    );
  driver.setCommittedOffsets('g', 'In', [{ partition: 1, offset: '1' }]);
  const a = recorder();
  const first = driver.consumer(options('g'));
  await first.start({
    ...a,
    async onAssigned(partitions) {
      a.assigned.push(partitions);
      if (partitions.includes(2)) first.seek(2, '2');
    },
  });
  await driver.idle();
  t.same(a.assigned, [[0, 1, 2]], 'a single member gets every partition');
  t.same(
    Object.fromEntries(a.seen),
    { 0: ['0:0', '0:1', '0:2'], 1: ['1:1', '1:2'], 2: ['2:2'] },
    'start: the seek, else the committed offset, else the beginning',
  );
  const b = recorder();
  const second = driver.consumer(options('g'));
  await second.start(b);
  t.same(a.assigned.at(-1), [0, 1], 'after the join the first member keeps a range');
  t.same(b.assigned, [[2]]);
  await second.stop();
  t.same(a.assigned.at(-1), [0, 1, 2], 'after the leave it has them all again');
  await first.stop();
  t.same(driver.violations, []);
});

t.test('unresolved records are handed again, a paused partition waits, stop waits for the running batch', async (t) => {
  const driver = new MemoryDriver({ partitions: 1 });
  driver.produce(
    'In',
    ['a', 'b', 'c'].map((value) => ({ value: Buffer.from(value) })),
  );
  const batches: string[][] = [];
  let resume: (() => void) | undefined;
  const consumer = driver.consumer(options('g'));
  await consumer.start(
    recorder({
      async eachBatch(_partition, records, scope) {
        batches.push(values(records));
        if (batches.length === 1) {
          scope.resolveOffset(records[0]!.offset);
          return;
        }
        if (batches.length === 2) {
          resume = scope.pause();
          return;
        }
        scope.resolveOffset(records[records.length - 1]!.offset);
      },
    }),
  );
  await driver.idle();
  t.same(
    batches,
    [
      ['a', 'b', 'c'],
      ['b', 'c'],
    ],
    'the rest of the batch came again; then the partition paused',
  );
  t.ok(driver.isIdle(), 'a paused partition with its batch returned leaves the driver idle');
  resume!();
  await driver.idle();
  t.same(batches.at(-1), ['b', 'c'], 'handed again once resumed');
  await consumer.stop();
  t.equal(consumer.state, 'stopped');
});

t.test('failNext fails the next calls; until rejects once nothing more can happen', async (t) => {
  const driver = new MemoryDriver();
  driver.failNext('send', 2, kafkaError(-185, 'Local: Timed out'));
  const record = { topic: 'Out', key: 'k', value: Buffer.from('x'), headers: {} };
  await t.rejects(driver.send([record]), { code: -185 });
  await t.rejects(driver.send([record]), { code: -185 });
  await driver.send([record]);
  t.equal(driver.records('Out').length, 1);
  await t.rejects(
    driver.until(() => driver.records('Out').length === 2, 'a second record'),
    /idle and a second record does not hold/,
  );
});

t.test('the memory codec round-trips JSON and refuses what lacks its header', async (t) => {
  const codec = createMemoryCodec();
  const buffer = await codec.encode('Out', { a: 1 });
  t.same(await codec.decode(buffer), { a: 1 });
  await t.rejects(codec.decode(Buffer.from('{"a":1}')), /magic byte/);
  await t.rejects(codec.decode(Buffer.concat([buffer.subarray(0, 5), Buffer.from('not json')])));
  await t.rejects(codec.decode(Buffer.from([0, 0, 0, 0, 99, 0x7b, 0x7d])), /no schema with id 99/);
  await t.rejects(createMemoryCodec({ strict: true }).encode('Out', {}), { code: 'ERR_SCHEMA_NOT_REGISTERED' });
});
