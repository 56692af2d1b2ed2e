import type { TopicMessages } from 'kafkajs';
import t from 'tap';
import { EventBatcher } from './event-batcher.js';

t.test('events of concurrent callers go out in one send, each caller answered', async (t) => {
  const sends: TopicMessages[][] = [];
  const batcher = new EventBatcher(async (batch) => void sends.push(batch), { lingerMs: 5, maxBatch: 100 });
  await Promise.all([
    batcher.send('A', { key: 'k1', value: '1' }),
    batcher.send('B', { key: 'k2', value: '2' }),
    batcher.send('A', { key: 'k3', value: '3' }),
  ]);
  t.equal(sends.length, 1);
  t.same(
    sends[0]!.map((topic) => [topic.topic, topic.messages.map((m) => m.value)]),
    [
      ['A', ['1', '3']],
      ['B', ['2']],
    ],
  );
});

t.test('a full batch is sent without waiting for the linger; one batch in flight at a time', async (t) => {
  const sizes: number[] = [];
  let concurrent = 0;
  let maxConcurrent = 0;
  const batcher = new EventBatcher(
    async (batch) => {
      concurrent++;
      maxConcurrent = Math.max(maxConcurrent, concurrent);
      sizes.push(batch.reduce((sum, topic) => sum + topic.messages.length, 0));
      await new Promise((resolve) => setTimeout(resolve, 10));
      concurrent--;
    },
    { lingerMs: 10_000, maxBatch: 2 },
  );
  await Promise.all([1, 2, 3, 4, 5].map((i) => batcher.send('A', { value: String(i) })).slice(0, 4));
  await batcher.flush();
  t.same(sizes, [2, 2, 1]);
  t.equal(maxConcurrent, 1);
});

t.test('a failed send rejects every caller of that batch and no other', async (t) => {
  let calls = 0;
  const batcher = new EventBatcher(
    async () => {
      calls++;
      if (calls === 1) throw new Error('broker down');
    },
    { lingerMs: 1, maxBatch: 10 },
  );
  const first = batcher.send('A', { value: 'x' });
  const second = batcher.send('A', { value: 'y' });
  await t.rejects(first, /broker down/);
  await t.rejects(second, /broker down/);
  await t.resolves(batcher.send('A', { value: 'z' }));
});
