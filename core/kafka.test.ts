import pino from 'pino';
import { Writable } from 'node:stream';
import t from 'tap';
import { ensureTopics, kafkaLogger, type Admin } from './kafka.js';

function capture() {
  const lines: Array<{ level: number; msg: string; component?: string }> = [];
  const stream = new Writable({
    write(chunk, _encoding, done) {
      lines.push(JSON.parse(String(chunk)) as { level: number; msg: string });
      done();
    },
  });
  return { logger: pino({ level: 'debug' }, stream), lines };
}

t.test("librdkafka's syslog severities map to the service's log levels", async (t) => {
  const { logger, lines } = capture();
  const kafka = kafkaLogger(logger);
  kafka.info('broker down', { severity: 3 });
  kafka.info('throttled', { severity: 4 });
  kafka.error('metadata', { severity: 6 });
  kafka.error('protocol detail', { severity: 7 });
  kafka.warn('from the JavaScript layer');
  t.same(
    lines.map((line) => [line.msg, line.level, line.component]),
    [
      ['broker down', 50, 'kafka'],
      ['throttled', 40, 'kafka'],
      ['metadata', 30, 'kafka'],
      ['protocol detail', 20, 'kafka'],
      ['from the JavaScript layer', 40, 'kafka'],
    ],
  );
});

t.test('without a service logger the client logs nothing', async (t) => {
  t.doesNotThrow(() => kafkaLogger(undefined).error('ignored'));
});

/**
 * An admin over an in-memory cluster: the calls ensureTopics makes, with a metadata cache that
 * shows a change only one read after it happened, as a broker's may.
 */
function fakeAdmin(initial: Record<string, number>) {
  const counts = new Map(Object.entries(initial));
  let shown = new Map(counts);
  const calls: string[] = [];
  const admin = {
    async listTopics() {
      return [...counts.keys()];
    },
    async createTopics({ topics }: { topics: Array<{ topic: string; numPartitions: number }> }) {
      for (const { topic, numPartitions } of topics) {
        calls.push(`create ${topic} ${numPartitions}`);
        counts.set(topic, numPartitions);
      }
      return true;
    },
    async fetchTopicMetadata({ topics }: { topics: string[] }) {
      const answer = topics
        .filter((name) => shown.has(name))
        .map((name) => ({
          name,
          partitions: Array.from({ length: shown.get(name)! }, (_, partitionId) => ({ partitionId, leader: 1, replicas: [1, 2, 3], isr: [1, 2, 3] })),
        }));
      shown = new Map(counts);
      return answer;
    },
    async createPartitions({ topicPartitions }: { topicPartitions: Array<{ topic: string; count: number }> }) {
      for (const { topic, count } of topicPartitions) {
        calls.push(`grow ${topic} ${count}`);
        if (count <= counts.get(topic)!) throw new Error(`Topic already has ${counts.get(topic)} partitions.`);
        counts.set(topic, count);
      }
    },
  };
  return { admin: admin as unknown as Admin, calls, counts };
}

const layout = (partitions: number) => ({ partitions, replicationFactor: 3, config: {} });

t.test('ensureTopics creates what is missing, grows what has fewer partitions, keeps what has more', async (t) => {
  const { admin, calls, counts } = fakeAdmin({ fewer: 3, same: 6, more: 9 });
  const result = await ensureTopics(admin, ['missing', 'fewer', 'same', 'more'], layout(6), { timeoutMs: 10_000 });
  t.same(result, { created: ['missing'], grown: [{ topic: 'fewer', from: 3, to: 6 }], larger: [{ topic: 'more', partitions: 9 }] });
  t.same(calls, ['create missing 6', 'grow fewer 6'], 'each change made once, although the metadata lagged behind it');
  t.same(Object.fromEntries(counts), { fewer: 6, same: 6, more: 9, missing: 6 });
  t.same(
    await ensureTopics(admin, ['missing', 'fewer', 'same', 'more'], layout(6)),
    { created: [], grown: [], larger: [{ topic: 'more', partitions: 9 }] },
    'a second call changes nothing',
  );
  t.same(calls.length, 2);
});

t.test('ensureTopics: a topic someone else grew meanwhile is not an error', async (t) => {
  const { admin, calls, counts } = fakeAdmin({ topic: 3 });
  const grow = (admin as unknown as { createPartitions: (request: { topicPartitions: Array<{ topic: string; count: number }> }) => Promise<void> })
    .createPartitions;
  // The other set-up grows it between our metadata read and our own request.
  (admin as unknown as { createPartitions: typeof grow }).createPartitions = async (request) => {
    counts.set('topic', 6);
    return grow(request);
  };
  const retries: string[] = [];
  const result = await ensureTopics(admin, ['topic'], layout(6), { timeoutMs: 10_000, onRetry: (error) => retries.push(error.message) });
  t.same(result, { created: [], grown: [], larger: [] }, 'not reported as grown by this call');
  // Until the metadata shows the other's growth, each request of ours is refused and retried.
  t.ok(calls.length >= 1 && calls.every((call) => call === 'grow topic 6'), calls.join(', '));
  t.ok(retries.length === calls.length && retries.every((message) => /already has 6 partitions/.test(message)), 'each refusal was taken for "not yet"');
});

t.test('ensureTopics returns only once several metadata answers in a row show the topics ready (a broker may lag)', async (t) => {
  const { admin } = fakeAdmin({ topic: 3 });
  const answers: string[] = [];
  const fetch = (admin as unknown as { fetchTopicMetadata: (request: { topics: string[] }) => Promise<unknown[]> }).fetchTopicMetadata;
  // Answers from brokers in turn: the second one has not heard of the topic yet, once.
  let call = 0;
  (admin as unknown as { fetchTopicMetadata: typeof fetch }).fetchTopicMetadata = async (request) => {
    call++;
    const lagging = call === 2;
    answers.push(lagging ? 'unknown' : 'ready');
    return lagging ? [] : fetch(request);
  };
  await ensureTopics(admin, ['topic'], layout(3), { timeoutMs: 10_000 });
  t.same(answers, ['ready', 'unknown', 'ready', 'ready', 'ready'], 'a "not known" answer starts the count again; three ready answers in a row end it');
});
