/**
 * The processor's composition root: runs the chosen stages of the ETL topology in this
 * process, with /liveness, /readiness (its consumers and Postgres) and /metrics on one port.
 * More processes = more replicas: each stage's consumer group spreads its input's partitions.
 */
import { readBuildInfo } from '../core/build-info.js';
import { createEventCodec } from '../core/event-codec.js';
import { createReadiness } from '../core/health.js';
import { addOperationalRoutes, closeListener, listen, notFound } from '../core/http.js';
import { connectOnce, createKafka, partitionCountsOf, type Admin, type LazyClient } from '../core/kafka.js';
import { topics } from '../core/pipeline.js';
import type { Logger } from '../core/logger.js';
import { createMetricsRegistry } from '../core/metrics.js';
import { createPostgres, type Postgres } from '../core/postgres.js';
import { createRegistry } from '../core/registry.js';
import { createS3 } from '../core/s3.js';
import { closeOnce, failureSignal } from '../core/service.js';
import { loadUws } from '../core/uws.js';
import { schemaOfTopic } from '../schemas/index.js';
import type { ProcessorConfig } from './config.js';
import { etlTopology } from './etl/topology.js';
import { createStageMetrics } from './lib/metrics.js';
import { createKafkaDriver } from './lib/kafka-driver.js';
import { startLagMonitor } from './lib/lag.js';
import { runSinkStage } from './lib/sink-runner.js';
import { runTransformStage } from './lib/transform-runner.js';
import { groupIdOf, type RunningStage } from './lib/types.js';

export interface Processor {
  readonly port: number;
  /** Settles when a stage's consumer stopped for good: the process should exit (runService does). */
  readonly failed: Promise<Error>;
  close(): Promise<void>;
}

export async function startProcessor(config: ProcessorConfig, logger: Logger): Promise<Processor> {
  const uws = loadUws({ allowJsFallback: config.uwsAllowJsFallback });
  const registry = createMetricsRegistry('processor');
  const metrics = createStageMetrics(registry);
  const s3 = createS3(config.s3);
  const codec = createEventCodec(createRegistry(config.registry), config.registry.url);
  const kafka = createKafka(config.kafka, { logger, clientId: `${config.kafka.clientId}-processor` });
  let postgres: Postgres | undefined;
  const getPostgres = () => (postgres ??= createPostgres(config.postgres, { applicationName: 'etl-processor' }));
  // One admin client for the partition count the split stage follows and for the lag monitor.
  const admin = connectOnce(kafka.admin());
  const chosen = config.processor.stages as string[];
  const pieceCount = chosen.includes('split') ? await followPartitionCount(admin, topics.filePiece.name, logger) : undefined;
  const topology = etlTopology({
    s3,
    postgres: getPostgres,
    extractRecordsPerTransaction: config.processor.extractRecordsPerTransaction,
    filePiecePartitions: pieceCount?.current,
  });
  const stages = topology.stages.filter((stage) => chosen.includes(stage.name));

  // Every topic a chosen stage writes needs its schema registered (idempotent).
  const written = new Set(stages.flatMap((stage) => [...Object.values(stage.outputs), stage.errors]));
  for (const topic of written) await codec.register(topic, schemaOfTopic(topic));

  const producer = kafka.producer();
  await producer.connect();

  const { failed, fail: onFatal } = failureSignal();
  const driver = createKafkaDriver(kafka, { producer, logger, onFatal });
  const maxAttempts = config.processor.maxAttempts;

  const running: RunningStage[] = [];
  for (const stage of stages) {
    if (stage.kind === 'transform') {
      running.push(await runTransformStage(stage, { driver, codec, logger, metrics, maxAttempts }));
    } else {
      running.push(
        await runSinkStage(stage, {
          driver,
          codec,
          logger,
          metrics,
          maxAttempts,
          maxBatchRecords: config.processor.loadBatchMaxRecords,
          lingerMs: config.processor.loadBatchLingerMs,
          maxBatchBytes: config.processor.loadBatchMaxBytes,
        }),
      );
    }
  }
  logger.info({ stages: stages.map((stage) => stage.name) }, 'processor running');

  // Consumer lag per stage and partition: end offset minus the group's committed offset.
  const lagMonitor = startLagMonitor(
    kafka,
    stages.map((stage) => ({ group: groupIdOf(stage), topic: stage.input })),
    {
      intervalMs: config.processor.lagIntervalMs,
      logger,
      admin,
      onMeasured: (target, lags) => {
        const stage = stages.find((candidate) => groupIdOf(candidate) === target.group)!;
        for (const { partition, lag } of lags) metrics.lag.set({ stage: stage.name, topic: target.topic, partition: String(partition) }, lag);
      },
    },
  );

  const checks: Record<string, () => Promise<void>> = {};
  for (const stage of running) {
    checks[`stage_${stage.name}`] = async () => {
      if (!stage.healthy()) throw new Error(`${stage.name} is not in its consumer group`);
    };
  }
  if (stages.some((stage) => stage.kind === 'sink')) {
    checks.postgres = async () => {
      await getPostgres().db.one('SELECT 1 AS ok');
    };
  }
  const readiness = createReadiness(checks, { cacheMs: 2000 });
  const app = uws.uws.App();
  addOperationalRoutes(app, {
    service: 'processor',
    buildInfo: readBuildInfo(),
    readiness,
    metrics: registry,
    details: () => ({ stages: stages.map((stage) => stage.name), uws: uws.implementation }),
  });
  notFound(app);
  const socket = await listen(app, config.processor.host, config.processor.port);
  const port = uws.uws.us_socket_local_port(socket);
  logger.info({ port }, 'processor health and metrics listening');

  return {
    port,
    failed,
    close: closeOnce(async () => {
      await lagMonitor.stop();
      pieceCount?.stop();
      await admin.disconnect().catch(() => undefined);
      // Each stage finishes or aborts its open transaction, then leaves its group.
      await Promise.all(running.map((stage) => stage.stop()));
      await producer.disconnect();
      closeListener(uws, socket);
      s3.destroy();
      await postgres?.close();
      logger.info('processor stopped');
    }),
  };
}

/**
 * The partition count of `topic` as the cluster reports it, read at start-up and again every
 * minute: after the topic grows, the split stage spreads pieces over the new partitions too.
 */
async function followPartitionCount(admin: LazyClient<Admin>, topic: string, logger: Logger): Promise<{ current: () => number; stop: () => void }> {
  const read = async () => (await partitionCountsOf(await admin.connected(), [topic]))(topic);
  let count = await read();
  const timer = setInterval(() => {
    read().then(
      (latest) => {
        if (latest !== count) logger.info({ topic, from: count, to: latest }, 'partition count changed');
        count = latest;
      },
      (error: unknown) => logger.debug({ topic, err: error }, 'reading the partition count failed; keeping the last one'),
    );
  }, 60_000);
  timer.unref();
  return {
    current: () => count,
    stop() {
      clearInterval(timer);
    },
  };
}
