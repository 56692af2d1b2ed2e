import t from 'tap';
import type { Message } from 'kafkajs';
import { sendPerPartition, splitByPartition } from './partitioned-send.js';

t.test('messages are grouped per topic and partition, in their original order', async (t) => {
  const messages: Message[] = Array.from({ length: 200 }, (_, i) => ({ key: `company-${i % 37}`, value: String(i) }));
  const batches = splitByPartition([{ topic: 'A', messages }], () => 3);
  t.ok(batches.length > 1 && batches.length <= 3, 'at most one batch per partition');
  t.equal(batches.reduce((sum, batch) => sum + batch.messages.length, 0), 200, 'every message once');
  for (const batch of batches) {
    t.ok(batch.messages.every((message) => message.partition === batch.partition), 'each message carries its partition');
    const order = batch.messages.map((message) => Number(message.value));
    t.same(order, [...order].sort((a, b) => a - b), `partition ${batch.partition} keeps the order`);
  }
  const partitionOfKey = new Map<string, number>();
  for (const batch of batches) {
    for (const message of batch.messages) {
      const key = String(message.key);
      t.equal(partitionOfKey.get(key) ?? batch.partition, batch.partition, `${key} on one partition`);
      partitionOfKey.set(key, batch.partition);
    }
  }
});

t.test('an explicit partition is kept; topics never share a batch', async (t) => {
  const batches = splitByPartition(
    [
      { topic: 'A', messages: [{ key: 'x', value: '1', partition: 2 }] },
      { topic: 'B', messages: [{ key: 'x', value: '2', partition: 2 }] },
    ],
    () => 3,
  );
  t.same(
    batches.map((batch) => [batch.topic, batch.partition, batch.messages.length]),
    [
      ['A', 2, 1],
      ['B', 2, 1],
    ],
  );
});

t.test('sendPerPartition sends each partition once and fails only after every send settled', async (t) => {
  const settled: number[] = [];
  const sender = {
    async send({ messages }: { messages: Message[] }) {
      const partition = messages[0]!.partition!;
      await new Promise((resolve) => setTimeout(resolve, partition === 0 ? 1 : 30));
      settled.push(partition);
      if (partition === 0) throw new Error('partition 0 failed');
    },
  };
  const messages = [0, 1, 2].map((partition) => ({ value: String(partition), partition }));
  await t.rejects(sendPerPartition(sender, [{ topic: 'A', messages }], () => 3), /partition 0 failed/);
  t.same([...settled].sort(), [0, 1, 2], 'the slower sends had finished before the failure surfaced');
});
