import t, { type Test } from 'tap';
import { pino } from 'pino';
import { Registry } from 'prom-client';
import { PipelineError } from '../../core/errors.js';
import type { ProcessingError } from '../../schemas/index.js';
import { createStageMetrics, type StageMetrics } from './metrics.js';
import type { RetryClock } from './retry.js';
import { createMemoryCodec, kafkaError, kafkaErrorCodes, MemoryDriver, type MemoryDriverOptions, type OperationCall } from './testing/index.js';
import { resumeMetadata, resumeOutputsOf, runTransformStage } from './transform-runner.js';
import type { InputMessage, RunningStage, TransformStage } from './types.js';

t.test('a partial commit records its output count as offset metadata, and only that is read back', async (t) => {
  t.equal(resumeOutputsOf(resumeMetadata(2000)), 2000);
  for (const other of [null, '', 'x', '{"outputs":-1}', '{"outputs":1.5}', '{"outputs":"7"}', '{}', '[]']) {
    t.equal(resumeOutputsOf(other), 0, `metadata ${JSON.stringify(other)} is no resume point`);
  }
});

// The runner on the in-memory driver: every case runs in milliseconds, without a broker.

const logger = pino({ level: 'silent' });
const clock: RetryClock = { backoffMs: () => 0, wait: async () => {} };
const IN = 'In';
const OUT = 'Out';
const ERRORS = 'Errors';
const group = 'etl-copy';
const producerOf = (partition: number): string => `${group}.${IN}.${partition}`;
interface Item {
  request_id: string;
  /** How many outputs the input yields (1 by default). */
  outputs?: number;
}

/** What the stage does before an input's outputs, on its `call`-th run (from 1) for that input; it may throw. */
type Behaviour = (input: InputMessage<Item>, call: number) => void;

interface SetupOptions {
  behaviour?: Behaviour;
  messagesPerTransaction?: number;
  maxOutputsPerTransaction?: number;
  maxAttempts?: number;
  driver?: MemoryDriverOptions;
}

async function total(metric: { get(): Promise<{ values: Array<{ value: number }> }> }): Promise<number> {
  return (await metric.get()).values.reduce((sum, { value }) => sum + value, 0);
}

function setup(t: Test, options: SetupOptions = {}) {
  const driver = new MemoryDriver(options.driver);
  const codec = createMemoryCodec();
  const metrics: StageMetrics = createStageMetrics(new Registry());
  /** Runs of `process` per input, by `partition/offset`. */
  const calls = new Map<string, number>();
  const stage: TransformStage<Item> = {
    kind: 'transform',
    name: 'copy',
    doc: 'yields `outputs` numbered copies of each input',
    input: IN,
    outputs: { out: OUT },
    errors: ERRORS,
    messagesPerTransaction: options.messagesPerTransaction,
    maxOutputsPerTransaction: options.maxOutputsPerTransaction,
    async *process(input) {
      const where = `${input.partition}/${input.offset}`;
      const call = (calls.get(where) ?? 0) + 1;
      calls.set(where, call);
      options.behaviour?.(input, call);
      const { request_id } = input.value;
      for (let seq = 1; seq <= (input.value.outputs ?? 1); seq++) {
        yield { to: 'out', key: request_id, value: { request_id, seq }, requestId: request_id };
      }
    },
  };
  const started: RunningStage[] = [];
  t.teardown(async () => {
    for (const running of started) await running.stop();
  });
  return {
    driver,
    metrics,
    calls,
    async start(): Promise<RunningStage> {
      const running = await runTransformStage(stage as TransformStage<any>, { driver, codec, logger, metrics, maxAttempts: options.maxAttempts, clock });
      started.push(running);
      return running;
    },
    /** Puts inputs on one partition of the input topic; a Buffer or null goes as it is (undecodable, empty). */
    input(items: Array<Item | Buffer | null>, partition = 0, headers: Record<string, string> = {}): void {
      driver.produce(
        IN,
        items.map((item) => ({
          key: item === null || Buffer.isBuffer(item) ? 'raw' : item.request_id,
          value: item === null || Buffer.isBuffer(item) ? item : codec.encodeSync(IN, item),
          headers,
          partition,
        })),
      );
    },
    /** The committed outputs as `request#seq`, by output partition then offset. */
    outputs(requestId?: string): string[] {
      return driver
        .records(OUT)
        .map((record) => codec.decodeSync<{ request_id: string; seq: number }>(record.value!))
        .filter((value) => requestId === undefined || value.request_id === requestId)
        .map((value) => `${value.request_id}#${value.seq}`);
    },
    errors(): ProcessingError[] {
      return driver.records(ERRORS).map((record) => codec.decodeSync<ProcessingError>(record.value!));
    },
    offset(partition: number): string | null {
      return driver.committedOffset(group, IN, partition).offset;
    },
    /** Resolves once the group committed past these offsets (partition → next offset). */
    committedUpTo(offsets: Record<number, string>): Promise<void> {
      return driver.until(
        () => Object.entries(offsets).every(([partition, offset]) => driver.committedOffset(group, IN, Number(partition)).offset === offset),
        `the group's offsets ${JSON.stringify(offsets)}`,
      );
    },
  };
}

const copies = (requestId: string, count: number): string[] => Array.from({ length: count }, (_, i) => `${requestId}#${i + 1}`);
const sorted = (values: string[]): string[] => [...values].sort();

t.test('a message the stage refuses (non-retriable PipelineError) becomes one ProcessingError and the partition goes on', async (t) => {
  const h = setup(t, {
    behaviour: (input) => {
      if (input.value.request_id === 'r1') throw new PipelineError('BAD_INPUT', 'the input names no file');
    },
  });
  h.input([{ request_id: 'r0' }, { request_id: 'r1' }, { request_id: 'r2' }, { request_id: 'r3' }], 0);
  h.input([{ request_id: 's0' }, { request_id: 's1' }], 1);
  await h.start();
  await h.committedUpTo({ 0: '4', 1: '2' });

  t.same(sorted(h.outputs()), ['r0#1', 'r2#1', 'r3#1', 's0#1', 's1#1'], "the other messages' outputs, each once");
  const errors = h.errors();
  t.equal(errors.length, 1, 'exactly one ProcessingError');
  t.match(errors[0], { stage: 'copy', request_id: 'r1', reason_code: 'BAD_INPUT', source_topic: IN, source_partition: 0, source_offset: 1 });
  t.equal(h.calls.get('0/1'), 1, 'poison is not retried');
  t.equal(h.calls.get('0/0'), 1, 'nor are the others: its outputs were dropped from the open transaction, which went on');
  t.same(h.driver.committedOffset(group, IN, 0), { offset: '4', metadata: '' }, 'the group offset is after the last input');
  t.equal(await total(h.metrics.errors), 1);
  t.equal(await total(h.metrics.retries), 0);
  t.same(h.driver.violations, []);
});

t.test('an undecodable or empty input becomes one ProcessingError with its context and the partition goes on', async (t) => {
  const h = setup(t);
  h.input([{ request_id: 'r0' }], 0);
  h.input([Buffer.from('{"request_id":"no header"}')], 0, { request_id: 'req-garbage' });
  h.input([{ request_id: 'r2' }, null, { request_id: 'r4' }], 0);
  await h.start();
  await h.committedUpTo({ 0: '5' });

  t.same(sorted(h.outputs()), ['r0#1', 'r2#1', 'r4#1']);
  const errors = h.errors().sort((a, b) => a.source_offset - b.source_offset);
  t.equal(errors.length, 2, 'one ProcessingError per bad input');
  t.match(errors[0], { reason_code: 'UNDECODABLE', request_id: 'req-garbage', source_topic: IN, source_partition: 0, source_offset: 1 });
  t.match(errors[1], { reason_code: 'EMPTY_MESSAGE', source_offset: 3 });
  t.same(h.driver.violations, []);
});

t.test('a retriable failure pauses and retries from the same position; every output is committed once', async (t) => {
  const h = setup(t, {
    behaviour: (input, call) => {
      if (input.value.request_id === 'r1' && call <= 3) throw new PipelineError('S3_UNAVAILABLE', 'down', { retriable: true });
    },
  });
  h.input([{ request_id: 'r0' }, { request_id: 'r1' }, { request_id: 'r2' }], 0);
  await h.start();
  await h.committedUpTo({ 0: '3' });

  t.same(sorted(h.outputs()), ['r0#1', 'r1#1', 'r2#1'], 'each output once');
  t.same(h.errors(), [], 'no ProcessingError');
  t.equal(h.calls.get('0/1'), 4, 'three failures, then the success');
  t.equal(await total(h.metrics.retries), 3, 'processor_retries_total');
  t.same(
    h.driver.transactions(producerOf(0)).map((x) => x.outcome),
    ['aborted', 'aborted', 'aborted', 'committed'],
    'each failed attempt aborted its transaction',
  );
  t.equal(h.driver.batches(group, 0).length, 1, 'retried in place: the batch was not handed again');
  t.equal(h.driver.history.filter((e) => e.type === 'pause' && e.partition === 0).length, 3, 'the partition was paused while waiting');
  t.same(h.driver.violations, []);
});

t.test('a bug (TypeError every time) is tried maxAttempts times, then becomes a ProcessingError; the partition goes on', async (t) => {
  const h = setup(t, {
    maxAttempts: 3,
    behaviour: (input) => {
      if (input.value.request_id === 'r1') throw new TypeError("Cannot read properties of undefined (reading 'bucket')");
    },
  });
  h.input([{ request_id: 'r0' }, { request_id: 'r1' }, { request_id: 'r2' }], 0);
  await h.start();
  await h.committedUpTo({ 0: '3' });

  t.equal(h.calls.get('0/1'), 3, 'maxAttempts runs');
  t.same(sorted(h.outputs()), ['r0#1', 'r2#1'], 'the others, once each');
  const errors = h.errors();
  t.equal(errors.length, 1);
  t.match(errors[0], { stage: 'copy', request_id: 'r1', reason_code: 'UNPROCESSABLE', source_partition: 0, source_offset: 1 });
  t.equal(await total(h.metrics.failedAfterAttempts), 1, 'processor_messages_failed_after_attempts_total');
  t.equal(await total(h.metrics.retries), 2, 'two backoffs before the third and last attempt');
  t.same(h.driver.violations, []);
});

t.test('a TypeError thrown twice, then not, only delays the outputs', async (t) => {
  const h = setup(t, {
    maxAttempts: 3,
    behaviour: (input, call) => {
      if (input.value.request_id === 'r1' && call <= 2) throw new TypeError('flaky');
    },
  });
  h.input([{ request_id: 'r0' }, { request_id: 'r1' }, { request_id: 'r2' }], 0);
  await h.start();
  await h.committedUpTo({ 0: '3' });

  t.equal(h.calls.get('0/1'), 3);
  t.same(sorted(h.outputs()), ['r0#1', 'r1#1', 'r2#1']);
  t.same(h.errors(), []);
  t.equal(await total(h.metrics.failedAfterAttempts), 0);
  t.same(h.driver.violations, []);
});

/** Holds the `nth` call of `operation` by the partition's transactional producer. */
function holdNth(driver: MemoryDriver, operation: 'transactionalSend' | 'commit', partition: number, nth: number) {
  let seen = 0;
  return driver.hold(operation, (call: OperationCall) => call.transactionalId === producerOf(partition) && ++seen === nth);
}

t.test('a big input commits in parts with its resume point; a runner taking over after a stop repeats and skips nothing', async (t) => {
  const h = setup(t, { maxOutputsPerTransaction: 10 });
  h.input([{ request_id: 'big', outputs: 35 }, { request_id: 'small' }], 0);
  // Outputs 21..30 are on their way when the first runner is stopped and their send fails.
  const third = holdNth(h.driver, 'transactionalSend', 0, 3);
  const first = await h.start();
  await third.reached;

  t.same(h.outputs('big'), copies('big', 20), 'two parts of 10 committed');
  t.same(h.driver.committedOffset(group, IN, 0), { offset: '0', metadata: resumeMetadata(20) }, "the input's own offset, with the outputs committed so far");
  t.same(
    h.driver.transactions(producerOf(0)).map((x) => x.offsets),
    [[{ partition: 0, offset: '0', metadata: resumeMetadata(10) }], [{ partition: 0, offset: '0', metadata: resumeMetadata(20) }]],
  );
  const stopping = first.stop();
  third.fail(kafkaError(kafkaErrorCodes.timedOut, 'Local: Timed out'));
  await stopping;
  t.same(h.outputs('big'), copies('big', 20), 'the third part was aborted');
  t.equal(h.driver.committedOffset(group, IN, 0).metadata, resumeMetadata(20));

  await h.start();
  await h.committedUpTo({ 0: '2' });
  t.same(h.outputs('big'), copies('big', 35), 'all 35, in order, no repeat, no gap');
  t.same(h.outputs('small'), ['small#1']);
  t.same(h.errors(), []);
  t.same(h.driver.violations, []);
});

t.test('a transient failure within a big input retries from its last committed part; what that part committed is not redone', async (t) => {
  const h = setup(t, { maxOutputsPerTransaction: 10 });
  h.input([{ request_id: 'before' }, { request_id: 'big', outputs: 25 }, { request_id: 'after' }], 0);
  // The first part holds `before` and big 1..9; the second part's commit fails once.
  let commits = 0;
  h.driver.failNext('commit', 1, kafkaError(kafkaErrorCodes.timedOut, 'Local: Timed out'), (call) => call.transactionalId === producerOf(0) && ++commits === 2);
  await h.start();
  await h.committedUpTo({ 0: '3' });

  t.same(h.outputs('before'), ['before#1'], 'committed by the first part, not redone by the retry');
  t.same(h.outputs('big'), copies('big', 25), 'in order, no repeat, no gap');
  t.same(h.outputs('after'), ['after#1']);
  t.same(
    h.driver.transactions(producerOf(0)).map((x) => [x.outcome, x.offsets[0]?.metadata]),
    [
      ['committed', resumeMetadata(9)],
      ['aborted', undefined],
      ['committed', resumeMetadata(19)],
      ['committed', undefined],
    ],
  );
  t.same(h.driver.committedOffset(group, IN, 0), { offset: '3', metadata: '' }, 'the last commit cleared the resume point');
  t.equal(await total(h.metrics.retries), 1);
  t.same(h.driver.violations, []);
});

t.test('stop during a big input lets the running part commit and leaves at that boundary; a new runner does the rest', async (t) => {
  const h = setup(t, { maxOutputsPerTransaction: 10 });
  h.input([{ request_id: 'big', outputs: 35 }, { request_id: 'small' }], 0);
  const secondPart = holdNth(h.driver, 'commit', 0, 2);
  const first = await h.start();
  await secondPart.reached;
  const stopping = first.stop();
  secondPart.release();
  await stopping;
  t.same(h.outputs('big'), copies('big', 20), 'the running part committed; no further part was begun');
  t.same(h.driver.committedOffset(group, IN, 0), { offset: '0', metadata: resumeMetadata(20) });

  await h.start();
  await h.committedUpTo({ 0: '2' });
  t.same(h.outputs('big'), copies('big', 35), 'all 35, in order, no repeat, no gap');
  t.same(h.outputs('small'), ['small#1']);
  t.same(h.driver.violations, []);
});

t.test('a big input survives a crash-like takeover: the new owner fences the old one and resumes from its last part', async (t) => {
  const h = setup(t, { maxOutputsPerTransaction: 10 });
  h.input([{ request_id: 'big', outputs: 35 }, { request_id: 'small' }], 0);
  // The first runner hangs while committing outputs 21..30 (a long GC pause, a lost network).
  const third = holdNth(h.driver, 'commit', 0, 3);
  const first = await h.start();
  await third.reached;
  t.same(h.outputs('big'), copies('big', 20));

  // The group gives up on it and hands its partitions to a second runner.
  const [hung] = h.driver.members(group);
  await h.driver.evict(hung!);
  await h.start();
  await h.committedUpTo({ 0: '2' });
  t.same(h.outputs('big'), copies('big', 35), 'the new owner skipped the 20 committed outputs and wrote the rest once');

  // The first runner wakes up: its commit is refused, nothing of it appears.
  third.release();
  await first.stop();
  t.same(h.outputs('big'), copies('big', 35), 'all 35, in order, no repeat, no gap');
  t.same(h.outputs('small'), ['small#1']);
  t.same(
    h.driver.transactions(producerOf(0)).map((x) => x.outcome),
    ['committed', 'committed', 'fenced', 'committed', 'committed'],
    "the hung runner's open part was fenced when the new owner took the id",
  );
  t.same(h.driver.violations, []);
});

t.test('a fenced producer leaves the batch uncommitted; the owner of the partition then processes it once', async (t) => {
  const h = setup(t);
  h.input(
    ['r0', 'r1', 'r2', 'r3', 'r4'].map((request_id) => ({ request_id })),
    0,
  );
  const commit = holdNth(h.driver, 'commit', 0, 1);
  await h.start();
  await commit.reached;
  // Another producer takes the partition's transactional id while the runner commits.
  const other = h.driver.consumer({ groupId: 'someone-else', topic: IN, maxBatchMessages: 1, maxWaitMs: 0, minBytes: 1, maxBytesPerPartition: 1 });
  const intruder = await h.driver.transactionalProducer(producerOf(0), other);
  commit.release();
  await h.committedUpTo({ 0: '5' });

  t.same(sorted(h.outputs()), ['r0#1', 'r1#1', 'r2#1', 'r3#1', 'r4#1'], 'each output once');
  t.same(
    h.driver.transactions(producerOf(0)).map((x) => x.outcome),
    ['fenced', 'committed'],
    'the fenced transaction committed nothing',
  );
  t.equal(h.driver.batches(group, 0).length, 2, 'the runner left the batch and got it again');
  await t.rejects(
    intruder.begin(),
    { name: 'KafkaJSError', code: kafkaErrorCodes.fenced, fatal: true },
    'the runner, still the owner, fenced the intruder in turn',
  );
  t.same(h.errors(), []);
  t.same(h.driver.violations, []);
});

t.test('stop lets the running transaction commit; a new runner continues without duplicates', async (t) => {
  const h = setup(t, { messagesPerTransaction: 2 });
  h.input(
    ['r0', 'r1', 'r2', 'r3', 'r4', 'r5'].map((request_id) => ({ request_id })),
    0,
  );
  const second = holdNth(h.driver, 'commit', 0, 2);
  const first = await h.start();
  await second.reached;
  const stopping = first.stop();
  t.same(sorted(h.outputs()), ['r0#1', 'r1#1'], 'what the held transaction sent is not visible to read_committed readers');
  second.release();
  await stopping;
  t.same(sorted(h.outputs()), ['r0#1', 'r1#1', 'r2#1', 'r3#1'], 'the running transaction committed, and nothing after it began');
  t.equal(h.offset(0), '4');

  await h.start();
  await h.committedUpTo({ 0: '6' });
  t.same(sorted(h.outputs()), ['r0#1', 'r1#1', 'r2#1', 'r3#1', 'r4#1', 'r5#1'], 'each output once');
  t.same(h.driver.violations, []);
});

t.test('stop while the running transaction fails: it aborts, nothing of it is visible, a new runner does it once', async (t) => {
  const h = setup(t, { messagesPerTransaction: 2 });
  h.input(
    ['r0', 'r1', 'r2', 'r3', 'r4', 'r5'].map((request_id) => ({ request_id })),
    0,
  );
  const second = holdNth(h.driver, 'commit', 0, 2);
  const first = await h.start();
  await second.reached;
  const stopping = first.stop();
  second.fail(kafkaError(kafkaErrorCodes.transport, 'Local: Broker transport failure'));
  await stopping;
  t.same(sorted(h.outputs()), ['r0#1', 'r1#1'], 'no partial output');
  t.equal(h.offset(0), '2');
  t.same(
    h.driver.transactions(producerOf(0)).map((x) => x.outcome),
    ['committed', 'aborted'],
  );

  await h.start();
  await h.committedUpTo({ 0: '6' });
  t.same(sorted(h.outputs()), ['r0#1', 'r1#1', 'r2#1', 'r3#1', 'r4#1', 'r5#1'], 'each output once');
  t.same(h.driver.violations, []);
});

t.test('a second replica takes its share of the partitions; every input is processed once, by its owner', async (t) => {
  const h = setup(t);
  for (const partition of [0, 1, 2]) h.input([{ request_id: `a${partition}` }], partition);
  await h.start();
  await h.committedUpTo({ 0: '1', 1: '1', 2: '1' });
  await h.start();
  for (const partition of [0, 1, 2]) h.input([{ request_id: `b${partition}` }], partition);
  await h.committedUpTo({ 0: '2', 1: '2', 2: '2' });

  t.same(sorted(h.outputs()), ['a0#1', 'a1#1', 'a2#1', 'b0#1', 'b1#1', 'b2#1']);
  const [first, second] = h.driver.members(group);
  t.same([first!.assigned(), second!.assigned()], [[0, 1], [2]], 'a range each');
  const lastBatchOf = (partition: number) => h.driver.batches(group, partition).at(-1)!.member;
  t.same([lastBatchOf(0), lastBatchOf(1), lastBatchOf(2)], [first!.member, first!.member, second!.member], "each partition's new input went to its owner");
  t.same(h.driver.violations, []);
});
