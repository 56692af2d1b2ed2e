import t, { type Test } from 'tap';
import { pino } from 'pino';
import { Registry } from 'prom-client';
import { PipelineError } from '../../core/errors.js';
import type { ProcessingError } from '../../schemas/index.js';
import { createStageMetrics, type StageMetrics } from './metrics.js';
import type { RetryClock } from './retry.js';
import { OwedEvents, runSinkStage } from './sink-runner.js';
import { createMemoryCodec, kafkaError, kafkaErrorCodes, MemoryDriver, type MemoryDriverOptions } from './testing/index.js';
import type { Emit, RunningStage, Sink, SinkBatch, SinkStage } from './types.js';

t.test('a partition owes events only once marked, until a send of its mark is served', async (t) => {
  const owed = new OwedEvents();
  t.same([...owed.snapshot([0, 1, 2]).keys()], [], 'nothing is marked at first: no send, no query');
  owed.mark([0, 2]);
  const snapshot = owed.snapshot([0, 1, 2]);
  t.same([...snapshot.keys()], [0, 2], 'the assigned partitions are marked');
  owed.served(snapshot);
  t.same([...owed.snapshot([0, 1, 2]).keys()], [], 'a served send clears them');
});

t.test('a mark set while a send is in flight survives that send', async (t) => {
  const owed = new OwedEvents();
  owed.mark([1]);
  const inFlight = owed.snapshot([1]);
  owed.mark([1]); // a write of partition 1 failed meanwhile: its commit may postdate the send's query
  owed.served(inFlight);
  t.same([...owed.snapshot([1]).keys()], [1], 'still owed: the next write sends it first');
  owed.served(owed.snapshot([1]));
  t.same([...owed.snapshot([1]).keys()], [], 'served by a send that saw the newer mark');
});

t.test('serving one partition leaves the others marked', async (t) => {
  const owed = new OwedEvents();
  owed.mark([0, 1]);
  owed.served(owed.snapshot([0]));
  t.same([...owed.snapshot([0, 1]).keys()], [1]);
});

// The runner on the in-memory driver, with a sink that keeps rows, offsets and an outbox in
// memory and behaves as sinks/postgres/load-sink.ts does: rows and next offset in one step, a
// batch at or below the stored offset skipped (nothing written, nothing produced), its events
// kept until `produce` succeeded and sent again by `sendPending`.

const logger = pino({ level: 'silent' });
const clock: RetryClock = { backoffMs: () => 0, wait: async () => {} };
const IN = 'In';
const LOADED = 'Loaded';
const ERRORS = 'Errors';
const group = 'etl-store';
interface Item {
  request_id: string;
}

class StoreSink implements Sink<Item> {
  readonly rows = new Map<number, string[]>();
  readonly offsets = new Map<number, bigint>();
  readonly writes: Array<{ partition: number; requests: string[]; nextOffset: string }> = [];
  outbox: Array<{ partition: number; events: Emit[] }> = [];
  /** An error the next write throws instead of writing (called with the write's number, from 1). */
  fail: ((batch: SinkBatch<Item>, call: number) => unknown) | undefined;

  constructor(stored: Record<number, string> = {}) {
    for (const [partition, offset] of Object.entries(stored)) this.offsets.set(Number(partition), BigInt(offset));
  }

  async storedOffsets(): Promise<Map<number, string>> {
    return new Map([...this.offsets].map(([partition, offset]) => [partition, String(offset)]));
  }

  async write(batch: SinkBatch<Item>, produce: (emits: Emit[]) => Promise<void>): Promise<{ written: number }> {
    this.writes.push({ partition: batch.partition, requests: batch.messages.map((m) => m.value.request_id), nextOffset: batch.nextOffset });
    const error = this.fail?.(batch, this.writes.length);
    if (error !== undefined) throw error;
    const stored = this.offsets.get(batch.partition) ?? 0n;
    if (stored >= BigInt(batch.nextOffset)) return { written: 0 };
    const fresh = batch.messages.filter((message) => BigInt(message.offset) >= stored);
    this.rows.set(batch.partition, [...(this.rows.get(batch.partition) ?? []), ...fresh.map((m) => m.value.request_id)]);
    this.offsets.set(batch.partition, BigInt(batch.nextOffset));
    const batchId = `${batch.partition}/${batch.nextOffset}`;
    const entry = {
      partition: batch.partition,
      events: [...batch.events, { to: 'loaded', key: batchId, value: { batch_id: batchId, records: fresh.length }, requestId: batchId }],
    };
    this.outbox.push(entry);
    await produce(entry.events);
    this.outbox = this.outbox.filter((kept) => kept !== entry);
    return { written: fresh.length };
  }

  async sendPending(_groupId: string, _topic: string, partitions: readonly number[], produce: (emits: Emit[]) => Promise<void>): Promise<number> {
    const owed = this.outbox.filter((entry) => partitions.includes(entry.partition));
    for (const entry of owed) {
      await produce(entry.events);
      this.outbox = this.outbox.filter((kept) => kept !== entry);
    }
    return owed.length;
  }
}

async function total(metric: { get(): Promise<{ values: Array<{ value: number }> }> }): Promise<number> {
  return (await metric.get()).values.reduce((sum, { value }) => sum + value, 0);
}

function setup(t: Test, options: { sink?: StoreSink; maxAttempts?: number; driver?: MemoryDriverOptions } = {}) {
  const driver = new MemoryDriver(options.driver);
  const codec = createMemoryCodec();
  const metrics: StageMetrics = createStageMetrics(new Registry());
  const sink = options.sink ?? new StoreSink();
  const stage: SinkStage<Item> = {
    kind: 'sink',
    name: 'store',
    doc: 'keeps each input as a row',
    input: IN,
    outputs: { loaded: LOADED },
    errors: ERRORS,
    sink: () => sink,
  };
  const started: RunningStage[] = [];
  t.teardown(async () => {
    for (const running of started) await running.stop();
  });
  return {
    driver,
    metrics,
    sink,
    async start(): Promise<RunningStage> {
      const running = await runSinkStage(stage, {
        driver,
        codec,
        logger,
        metrics,
        maxBatchRecords: 100,
        lingerMs: 0,
        maxBatchBytes: 1 << 20,
        maxAttempts: options.maxAttempts,
        clock,
      });
      started.push(running);
      return running;
    },
    input(items: Array<Item | Buffer>, partition = 0, headers: Record<string, string> = {}): void {
      driver.produce(
        IN,
        items.map((item) => ({
          key: Buffer.isBuffer(item) ? 'raw' : item.request_id,
          value: Buffer.isBuffer(item) ? item : codec.encodeSync(IN, item),
          headers,
          partition,
        })),
      );
    },
    errors(): ProcessingError[] {
      return driver
        .records(ERRORS)
        .map((record) => codec.decodeSync<ProcessingError>(record.value!))
        .sort((a, b) => a.source_partition - b.source_partition || a.source_offset - b.source_offset);
    },
    loaded(): unknown[] {
      return driver.records(LOADED).map((record) => codec.decodeSync(record.value!));
    },
    /** Resolves once the sink stored these next offsets (partition → offset) and the runner finished those writes. */
    storedUpTo(offsets: Record<number, string>): Promise<void> {
      return driver.until(
        // The offset hint is the runner's last step after a write (the sink stores its offset before it produces).
        () =>
          Object.entries(offsets).every(
            ([partition, offset]) =>
              sink.offsets.get(Number(partition)) === BigInt(offset) && driver.committedOffset(group, IN, Number(partition)).offset === offset,
          ),
        `the sink's offsets ${JSON.stringify(offsets)}`,
      );
    },
  };
}

const requests = (prefix: string, from: number, to: number): string[] => Array.from({ length: to - from }, (_, i) => `${prefix}${from + i}`);

t.test("consumption resumes at the sink's stored offsets, not at the group's older hints", async (t) => {
  const h = setup(t, { sink: new StoreSink({ 0: '6' }) });
  h.input(
    requests('r', 0, 10).map((request_id) => ({ request_id })),
    0,
  );
  h.input(
    requests('s', 0, 3).map((request_id) => ({ request_id })),
    1,
  );
  h.driver.setCommittedOffsets(group, IN, [{ partition: 0, offset: '2' }]);
  await h.start();
  await h.storedUpTo({ 0: '10', 1: '3' });

  t.same(h.sink.rows.get(0), requests('r', 6, 10), 'partition 0 from the stored offset');
  t.same(h.sink.rows.get(1), requests('s', 0, 3), 'partition 1, with nothing stored, from the beginning');
  t.equal(h.driver.batches(group, 0)[0]!.firstOffset, '6', 'the consumer was seeked there on assignment');
  t.equal(await total(h.metrics.skipped), 0, 'nothing fetched below the stored offset');
  t.same(h.errors(), []);
  t.same(h.driver.violations, []);
});

t.test('a sink write failing with a transient error is retried in place; every record is written once', async (t) => {
  const sink = new StoreSink();
  sink.fail = (_batch, call) => (call <= 2 ? new PipelineError('SINK_DB_UNAVAILABLE', 'down', { retriable: true }) : undefined);
  const h = setup(t, { sink });
  h.input(
    requests('r', 0, 4).map((request_id) => ({ request_id })),
    0,
  );
  await h.start();
  await h.storedUpTo({ 0: '4' });

  t.same(h.sink.rows.get(0), requests('r', 0, 4));
  t.same(
    sink.writes.map((w) => w.requests),
    [requests('r', 0, 4), requests('r', 0, 4), requests('r', 0, 4)],
    'the same batch, three times',
  );
  t.equal(await total(h.metrics.retries), 2, 'processor_retries_total');
  t.equal(h.driver.batches(group, 0).length, 1, 'retried in place: the batch was not handed again');
  t.equal(h.loaded().length, 1, 'one event for the one committed batch');
  t.same(h.errors(), []);
  t.same(h.driver.violations, []);
});

t.test("a sink write failing with a bug every time is tried maxAttempts times, then the batch's records become ProcessingErrors", async (t) => {
  const sink = new StoreSink();
  sink.fail = (batch) =>
    batch.messages.some((m) => m.value.request_id === 'r1') ? new TypeError("Cannot read properties of undefined (reading 'permalink')") : undefined;
  const h = setup(t, { sink, maxAttempts: 3 });
  h.input(
    requests('r', 0, 4).map((request_id) => ({ request_id })),
    0,
  );
  await h.start();
  await h.storedUpTo({ 0: '4' });

  t.same(
    sink.writes.map((w) => [w.requests, w.nextOffset]),
    [
      [requests('r', 0, 4), '4'],
      [requests('r', 0, 4), '4'],
      [requests('r', 0, 4), '4'],
      [[], '4'],
    ],
    'maxAttempts writes of the batch, then an empty batch that advances the offset',
  );
  const errors = h.errors();
  t.equal(errors.length, 4, 'one ProcessingError per record of the batch');
  errors.forEach((error, index) =>
    t.match(error, { stage: 'store', request_id: `r${index}`, reason_code: 'UNPROCESSABLE', source_topic: IN, source_partition: 0, source_offset: index }),
  );
  t.equal(await total(h.metrics.failedAfterAttempts), 4, 'processor_messages_failed_after_attempts_total, per record');

  h.input([{ request_id: 'r4' }, { request_id: 'r5' }], 0);
  await h.storedUpTo({ 0: '6' });
  t.same(h.sink.rows.get(0), ['r4', 'r5'], 'the partition goes on');
  t.same(h.driver.violations, []);
});

t.test('undecodable records become ProcessingErrors; the others are written', async (t) => {
  const h = setup(t);
  h.input([{ request_id: 'r0' }], 0);
  h.input([Buffer.from('not an event')], 0, { request_id: 'req-x' });
  h.input([{ request_id: 'r2' }], 0);
  await h.start();
  await h.storedUpTo({ 0: '3' });

  t.same(h.sink.rows.get(0), ['r0', 'r2']);
  const errors = h.errors();
  t.equal(errors.length, 1);
  t.match(errors[0], { stage: 'store', request_id: 'req-x', reason_code: 'UNDECODABLE', source_topic: IN, source_partition: 0, source_offset: 1 });
  t.equal(await total(h.metrics.errors), 1);
  t.same(h.driver.violations, []);
});

t.test("an undecodable record's ProcessingError goes out with its batch's outbox, also when the send after the commit fails", async (t) => {
  const h = setup(t);
  h.input([{ request_id: 'r0' }], 0);
  h.input([Buffer.from('not an event')], 0, { request_id: 'req-x' });
  h.driver.failNext('send', 1, kafkaError(kafkaErrorCodes.timedOut, 'Local: Timed out'));
  await h.start();
  await h.storedUpTo({ 0: '2' });
  await h.driver.idle();

  t.equal(h.loaded().length, 1, "the batch's own event went out, from the outbox");
  t.equal(h.errors().length, 1, 'the ProcessingError of the undecodable record went out too');
});
