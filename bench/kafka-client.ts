/**
 * bench:kafka-client — the Kafka client the pipeline left (KafkaJS 2.2.4) against the one it
 * uses (@confluentinc/kafka-javascript, librdkafka), on the pipeline's three shapes, in one run
 * on the running local stack; then the new client's compression codecs, bytes and CPU.
 *
 *   npm run bench:kafka-client        (BENCH_MESSAGES=10000 BENCH_ROUNDS=2 BENCH_CHUNK=1000)
 *
 * Shapes, each on a fresh topic of the pipeline's layout (PIPELINE_PARTITIONS partitions, 3 by
 * default; replication 3):
 *   txn-produce  transactional produce in chunks of BENCH_CHUNK messages (a stage's transaction)
 *   consume      read_committed consume of what txn-produce wrote (a stage's input)
 *   per-request  one message per send, 64 sends in flight (the ingress: one event per request)
 * The payloads are generated company documents (examples/generate), 1.8–3 KB of JSON each.
 * Client CPU is this process's user+system time (librdkafka's threads included) per 1,000
 * messages. The two clients alternate per round (A B, then B A) so that a change of the
 * machine's load reaches both. Each client is configured as its documentation recommends for
 * the shape: KafkaJS's transactional producer with idempotent and maxInFlightRequests 1 (its
 * documented requirement), its plain producer with its defaults and acks=all; librdkafka with
 * the pipeline's settings (core/kafka.ts) and no compression, like KafkaJS, for the client
 * comparison. The codec section then writes the same documents with none, lz4 and zstd and
 * reads the bytes the brokers stored (segment files, divided by the replication factor).
 */
import { existsSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { Kafka as KafkaJs, logLevel } from 'kafkajs';
import { loadConfig, type KafkaConfig } from '../core/config.js';
import { createKafka, ensureTopics, type KafkaClients } from '../core/kafka.js';
import { replicationFactor, topicConfig } from '../core/pipeline.js';
import { runningProfile, stackPaths } from '../deployments/local/servers.js';
import { generateCompanies } from '../examples/generate/companies.js';
import { envInt } from './lib/env.js';
import { fmt, table } from './lib/report.js';
import { createLog } from './lib/run.js';

const messages = envInt('BENCH_MESSAGES', 10_000);
const rounds = envInt('BENCH_ROUNDS', 2);
const chunk = envInt('BENCH_CHUNK', 1000);
const log = createLog('bench');
const inFlight = 64;
const config = loadConfig();
const runId = Date.now().toString(36);

interface Payload {
  key: string;
  value: Buffer;
}
const payloads: Payload[] = [...generateCompanies({ count: messages, seed: 7 })].map((record, index) => ({
  key: `company-${index}`,
  value: Buffer.from(record.line),
}));
const payloadBytes = payloads.reduce((sum, payload) => sum + payload.value.length, 0);

interface Measure {
  cpuMsPer1000: number;
  perSecond: number;
}

async function measure(count: number, work: () => Promise<void>, what = ''): Promise<Measure> {
  if (process.env.BENCH_TRACE === '1') log(what);
  const cpu = process.cpuUsage();
  const started = process.hrtime.bigint();
  await work();
  const seconds = Number(process.hrtime.bigint() - started) / 1e9;
  const used = process.cpuUsage(cpu);
  return { cpuMsPer1000: (used.user + used.system) / 1000 / (count / 1000), perSecond: count / seconds };
}

/** What one client does for each shape. */
interface ClientUnderTest {
  name: string;
  txnProduce(topic: string): Promise<void>;
  consume(topic: string): Promise<void>;
  perRequest(topic: string): Promise<void>;
}

/** Fresh message objects for every send: the new client's send rewrites the objects it is given. */
function chunks(items: readonly Payload[], size: number): Payload[][] {
  const out: Payload[][] = [];
  for (let index = 0; index < items.length; index += size) out.push(items.slice(index, index + size).map(({ key, value }) => ({ key, value })));
  return out;
}

/** The per-request shape: every payload sent on its own, `inFlight` sends at a time. */
async function sendEachInParallel(
  producer: { connect(): Promise<unknown>; disconnect(): Promise<unknown> },
  send: (message: Payload) => Promise<unknown>,
): Promise<void> {
  await producer.connect();
  try {
    let next = 0;
    await Promise.all(
      Array.from({ length: inFlight }, async () => {
        while (next < payloads.length) {
          const { key, value } = payloads[next++]!;
          await send({ key, value });
        }
      }),
    );
  } finally {
    await producer.disconnect();
  }
}

function kafkaJsClient(kafkaConfig: KafkaConfig): ClientUnderTest {
  const kafka = new KafkaJs({
    clientId: `bench-kafkajs-${runId}`,
    brokers: kafkaConfig.brokers,
    logLevel: process.env.BENCH_KAFKAJS_LOG === '1' ? logLevel.INFO : logLevel.ERROR,
  });
  return {
    name: 'KafkaJS 2.2.4',
    async txnProduce(topic) {
      const producer = kafka.producer({ transactionalId: `bench-kafkajs-${topic}`, idempotent: true, maxInFlightRequests: 1 });
      await producer.connect();
      try {
        for (const part of chunks(payloads, chunk)) {
          const transaction = await producer.transaction();
          await transaction.send({ topic, acks: -1, messages: part });
          await transaction.commit();
        }
      } finally {
        await producer.disconnect();
      }
    },
    async consume(topic) {
      const consumer = kafka.consumer({ groupId: `bench-kafkajs-${topic}`, readUncommitted: false });
      await consumer.connect();
      await consumer.subscribe({ topics: [topic], fromBeginning: true });
      let seen = 0;
      await new Promise<void>((resolve, reject) => {
        consumer
          .run({
            eachBatch: async ({ batch }) => {
              seen += batch.messages.length;
              if (seen >= messages) resolve();
            },
          })
          .catch(reject);
      });
      await consumer.disconnect();
    },
    async perRequest(topic) {
      const producer = kafka.producer();
      await sendEachInParallel(producer, (message) => producer.send({ topic, acks: -1, messages: [message] }));
    },
  };
}

function librdkafkaClient(kafka: KafkaClients, name = '@confluentinc/kafka-javascript 1.10.1'): ClientUnderTest {
  return {
    name,
    async txnProduce(topic) {
      const producer = kafka.transactionalProducer(`bench-librdkafka-${topic}`);
      await producer.connect();
      try {
        for (const part of chunks(payloads, chunk)) {
          const transaction = await producer.transaction();
          await transaction.send({ topic, messages: part });
          await transaction.commit();
        }
      } finally {
        await producer.disconnect();
      }
    },
    async consume(topic) {
      let seen = 0;
      let done!: () => void;
      const finished = new Promise<void>((resolve) => (done = resolve));
      const consumer = kafka.consumer({ groupId: `bench-librdkafka-${topic}` });
      await consumer.connect();
      await consumer.subscribe({ topics: [topic] });
      await consumer.run({
        eachBatch: async ({ batch }) => {
          seen += batch.messages.length;
          if (seen >= messages) done();
        },
      });
      await finished;
      await consumer.disconnect();
    },
    async perRequest(topic) {
      const producer = kafka.producer();
      await sendEachInParallel(producer, (message) => producer.send({ topic, messages: [message] }));
    },
  };
}

/** Bytes of a topic's segment files on every broker of the stack, divided by the replication factor. */
function storedBytes(topic: string): number {
  const profile = runningProfile();
  if (profile === undefined) throw new Error('no local stack is running: make itest-up (or make up) first');
  const root = join(stackPaths(profile).data, 'kafka');
  let bytes = 0;
  for (const node of readdirSync(root)) {
    for (let partition = 0; partition < config.pipeline.partitions; partition++) {
      const dir = join(root, node, 'data', `${topic}-${partition}`);
      if (!existsSync(dir)) continue;
      for (const file of readdirSync(dir)) if (file.endsWith('.log')) bytes += statSync(join(dir, file)).size;
    }
  }
  return bytes / replicationFactor;
}

const median = (values: number[]) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)]!;

async function main(): Promise<void> {
  const admin = createKafka(config.kafka, { clientId: `bench-kafka-client-${runId}` }).admin();
  await admin.connect();
  const created: string[] = [];
  const topicFor = async (label: string) => {
    const topic = `bench.client.${label}.${runId}`;
    await ensureTopics(admin, [topic], { partitions: config.pipeline.partitions, replicationFactor, config: topicConfig });
    created.push(topic);
    return topic;
  };
  const plain = createKafka({ ...config.kafka, compression: 'none' }, { clientId: `bench-librdkafka-${runId}` });
  const clients = [kafkaJsClient(config.kafka), librdkafkaClient(plain)];
  const results = new Map<string, Map<string, Measure[]>>();
  const record = (client: string, shape: string, value: Measure) => {
    const byShape = results.get(client) ?? new Map<string, Measure[]>();
    byShape.set(shape, [...(byShape.get(shape) ?? []), value]);
    results.set(client, byShape);
  };
  try {
    for (let round = 0; round < rounds; round++) {
      const order = round % 2 === 0 ? clients : [...clients].reverse();
      for (const [index, client] of order.entries()) {
        const label = `r${round}c${index}`;
        const txnTopic = await topicFor(`${label}.txn`);
        record(client.name, 'txn-produce', await measure(messages, () => client.txnProduce(txnTopic), `${client.name} txn ${txnTopic}`));
        record(client.name, 'consume', await measure(messages, () => client.consume(txnTopic), `${client.name} consume`));
        const requestTopic = await topicFor(`${label}.request`);
        record(client.name, 'per-request', await measure(messages, () => client.perRequest(requestTopic)));
        log(`round ${round + 1}/${rounds}: ${client.name} done`);
      }
    }

    const codecs: Array<{ codec: KafkaConfig['compression']; cpu: number[]; bytes: number }> = [];
    for (const codec of ['none', 'lz4', 'zstd'] as const) {
      const kafka = createKafka({ ...config.kafka, compression: codec }, { clientId: `bench-codec-${codec}-${runId}` });
      const entry = { codec, cpu: [] as number[], bytes: 0 };
      for (let round = 0; round < rounds; round++) {
        const topic = await topicFor(`codec-${codec}-r${round}`);
        entry.cpu.push((await measure(messages, () => librdkafkaClient(kafka).txnProduce(topic))).cpuMsPer1000);
        entry.bytes = storedBytes(topic);
      }
      codecs.push(entry);
      log(`codec ${codec} done`);
    }

    const lines: string[] = [];
    lines.push(`## bench:kafka-client`, '');
    lines.push(`Date: ${new Date().toISOString()}  `);
    lines.push(
      `Command: \`BENCH_MESSAGES=${messages} BENCH_ROUNDS=${rounds} BENCH_CHUNK=${chunk} npm run bench:kafka-client\`, on the running local stack (3 brokers, replication 3, min in-sync 2). ${fmt(messages)} generated company documents per shape and round, ${fmt(payloadBytes / messages)} bytes each on average; medians of ${rounds} rounds (clients alternating).`,
      '',
    );
    const shapes = ['txn-produce', 'consume', 'per-request'];
    const ofClient = (client: ClientUnderTest, shape: string) => results.get(client.name)!.get(shape)!;
    lines.push(
      ...table(
        ['shape', 'client', 'client CPU per 1,000 messages', 'messages/s'],
        shapes.flatMap((shape) =>
          clients.map((client) => {
            const values = ofClient(client, shape);
            return [shape, client.name, `${fmt(median(values.map((v) => v.cpuMsPer1000)))} ms`, fmt(median(values.map((v) => v.perSecond)))];
          }),
        ),
      ),
    );
    lines.push(
      '',
      ...table(
        ['shape', 'CPU per message, new ÷ old', 'messages/s, new ÷ old'],
        shapes.map((shape) => {
          const [old, current] = clients.map((client) => ofClient(client, shape));
          const ratio = (pick: (m: Measure) => number) => median(current!.map(pick)) / median(old!.map(pick));
          return [
            shape,
            fmt(
              ratio((m) => m.cpuMsPer1000),
              2,
            ),
            fmt(
              ratio((m) => m.perSecond),
              2,
            ),
          ];
        }),
      ),
    );
    const none = codecs.find((entry) => entry.codec === 'none')!;
    lines.push('', `Compression (new client, txn-produce; bytes the brokers stored per message, one replica):`, '');
    lines.push(
      ...table(
        ['codec', 'client CPU per 1,000 messages', 'stored bytes per message', 'bytes ÷ uncompressed'],
        codecs.map((entry) => [entry.codec, `${fmt(median(entry.cpu))} ms`, fmt(entry.bytes / messages), fmt(entry.bytes / none.bytes, 2)]),
      ),
    );
    process.stdout.write(`${lines.join('\n')}\n`);
  } finally {
    await admin.deleteTopics({ topics: created }).catch(() => undefined);
    await admin.disconnect();
  }
}

await main();
