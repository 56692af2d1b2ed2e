import t from 'tap';
import type { PartitionBatch } from '../core/partitioned-send.js';
import { EventBatcher } from './event-batcher.js';

const threePartitions = { partitionCountOf: () => 3 };

t.test('events of concurrent callers go out in one round, one send per partition, each caller answered', async (t) => {
  const sends: PartitionBatch[] = [];
  const batcher = new EventBatcher(async (batch) => void sends.push(batch), { lingerMs: 5, maxBatch: 100, ...threePartitions });
  await Promise.all([
    batcher.send('A', { key: 'k1', value: '1', partition: 0 }),
    batcher.send('B', { key: 'k2', value: '2', partition: 0 }),
    batcher.send('A', { key: 'k3', value: '3', partition: 0 }),
    batcher.send('A', { key: 'k4', value: '4', partition: 2 }),
  ]);
  t.same(
    sends.map((send) => [send.topic, send.partition, send.messages.map((m) => m.value)]),
    [
      ['A', 0, ['1', '3']],
      ['B', 0, ['2']],
      ['A', 2, ['4']],
    ],
  );
});

t.test('a key always goes to the same partition', async (t) => {
  const partitionOfKey = new Map<string, Set<number>>();
  const batcher = new EventBatcher(
    async ({ partition, messages }) => {
      for (const message of messages) {
        const seen = partitionOfKey.get(String(message.key)) ?? new Set();
        seen.add(partition);
        partitionOfKey.set(String(message.key), seen);
      }
    },
    { lingerMs: 1, maxBatch: 7, ...threePartitions },
  );
  await Promise.all(Array.from({ length: 60 }, (_, i) => batcher.send('A', { key: `tenant-${i % 10}`, value: String(i) })));
  t.equal(partitionOfKey.size, 10);
  for (const [key, seen] of partitionOfKey) t.equal(seen.size, 1, `${key} on one partition`);
  t.ok(new Set([...partitionOfKey.values()].map((seen) => [...seen][0])).size > 1, 'ten keys spread over more than one partition');
});

t.test('a full batch is sent without waiting for the linger; one batch in flight at a time', async (t) => {
  const sizes: number[] = [];
  let concurrent = 0;
  let maxConcurrent = 0;
  const batcher = new EventBatcher(
    async (batch) => {
      concurrent++;
      maxConcurrent = Math.max(maxConcurrent, concurrent);
      sizes.push(batch.messages.length);
      await new Promise((resolve) => setTimeout(resolve, 10));
      concurrent--;
    },
    { lingerMs: 10_000, maxBatch: 2, ...threePartitions },
  );
  await Promise.all([1, 2, 3, 4, 5].map((i) => batcher.send('A', { value: String(i), partition: 1 })).slice(0, 4));
  await batcher.flush();
  t.same(sizes, [2, 2, 1]);
  t.equal(maxConcurrent, 1);
});

t.test('a failed send rejects the callers of that partition only, and no later batch', async (t) => {
  let calls = 0;
  const batcher = new EventBatcher(
    async ({ partition }) => {
      calls++;
      if (calls <= 2 && partition === 1) throw new Error('broker down');
    },
    { lingerMs: 1, maxBatch: 10, ...threePartitions },
  );
  const first = batcher.send('A', { value: 'x', partition: 1 });
  const second = batcher.send('A', { value: 'y', partition: 1 });
  const other = batcher.send('A', { value: 'w', partition: 0 });
  await t.rejects(first, /broker down/);
  await t.rejects(second, /broker down/);
  await t.resolves(other);
  await t.resolves(batcher.send('A', { value: 'z', partition: 1 }));
});
