/**
 * The monitoring service's composition root. One sink stage per event topic (group
 * `<MONITORING_GROUP_PREFIX><topic>`), each writing lineage updates and its consumed offsets
 * in one Postgres transaction through runSinkStage; consumer lag of the pipeline's groups;
 * the lineage API, the page, /liveness, /readiness (its consumers and Postgres) and /metrics.
 */
import type { us_listen_socket } from 'uWebSockets.js';
import { readBuildInfo } from '../core/build-info.js';
import { createEventCodec } from '../core/event-codec.js';
import { createReadiness } from '../core/health.js';
import { addOperationalRoutes, closeListener, listen, notFound } from '../core/http.js';
import { createKafka } from '../core/kafka.js';
import type { Logger } from '../core/logger.js';
import { topics } from '../core/pipeline.js';
import { createPostgres } from '../core/postgres.js';
import { createRegistry } from '../core/registry.js';
import { createS3 } from '../core/s3.js';
import { closeOnce, failureSignal } from '../core/service.js';
import { loadUws } from '../core/uws.js';
import { schemaOfTopic } from '../schemas/index.js';
import { createKafkaDriver, createStageMetrics, type LagMonitor, type RunningStage, runSinkStage, type SinkStage } from '../topology/lib/index.js';
import type { LagTarget, MonitoringConfig } from './config.js';
import { MonitoringAccess } from './access.js';
import { registerRoutes } from './http-routes.js';
import { newClaimant, type ReplayDeps } from './replay.js';
import { createReplayRunStore } from './replay-store.js';
import { startMonitoringLag } from './lag.js';
import { createLineageSink } from './lineage-sink.js';
import { createLineageStore } from './lineage-store.js';
import { createMonitoringMetrics, recordEffects } from './metrics.js';

export interface Monitoring {
  /** The port it listens on (useful with MONITORING_PORT=0). */
  readonly port: number;
  /** Settles when a follower's consumer stopped for good: the process should exit (runService does). */
  readonly failed: Promise<Error>;
  close(): Promise<void>;
}

/** Every event topic whose events make up an import's lineage. */
export const lineageTopics: readonly string[] = [
  topics.fileExtractSuccess.name,
  topics.fileExtractError.name,
  topics.fileExtracted.name,
  topics.validationError.name,
  topics.recordsLoaded.name,
  topics.processingError.name,
];

export async function startMonitoring(config: MonitoringConfig, logger: Logger): Promise<Monitoring> {
  const settings = config.monitoring;
  const uws = loadUws({ allowJsFallback: config.uwsAllowJsFallback });
  if (uws.implementation !== 'native') {
    logger.warn({ binary: uws.binary }, 'running on the slow pure-JS uWebSockets.js fallback (UWS_ALLOW_JS_FALLBACK)');
  }
  const metrics = createMonitoringMetrics();
  const stageMetrics = createStageMetrics(metrics.registry);
  const postgres = createPostgres(config.postgres, { applicationName: 'etl-monitoring' });
  const store = createLineageStore(postgres);
  const codec = createEventCodec(createRegistry(config.registry), config.registry.url);
  const kafka = createKafka(config.kafka, { logger, clientId: `${config.kafka.clientId}-monitoring` });
  const producer = kafka.producer();
  const running: RunningStage[] = [];
  const { failed, fail: reportFatal } = failureSignal();
  let lagMonitor: LagMonitor | undefined;
  let sweeping: Promise<void> | undefined;
  const sweepErrors = () => {
    sweeping ??= store
      .sweepErrors(settings.errorRetentionDays)
      .then(
        (deleted) => {
          if (deleted > 0) logger.info({ deleted, retentionDays: settings.errorRetentionDays }, 'deleted old error report entries');
        },
        (error: unknown) => logger.warn({ err: error }, 'deleting old error report entries failed; trying again in an hour'),
      )
      .finally(() => {
        sweeping = undefined;
      });
  };
  const sweepTimer = setInterval(sweepErrors, 3600_000);
  sweepTimer.unref();

  async function shutdown(): Promise<void> {
    clearInterval(sweepTimer);
    await sweeping;
    await lagMonitor?.stop();
    await Promise.all(
      running.map((stage) => stage.stop().catch((error: unknown) => logger.warn({ err: error, stage: stage.name }, 'stopping a stage failed'))),
    );
    await producer.disconnect().catch(() => undefined);
    await postgres.close().catch(() => undefined);
  }

  try {
    // Fails fast, naming the fix, when the lineage tables are missing.
    await store.ping();
    sweepErrors();
    // The runner's ProcessingErrors (for undecodable messages) and the replays' FileExtractSuccess.
    for (const topic of [topics.processingError.name, topics.fileExtractSuccess.name]) await codec.register(topic, schemaOfTopic(topic));
    await producer.connect();
    const driver = createKafkaDriver(kafka, { producer, logger, onFatal: reportFatal });

    const stages: SinkStage[] = lineageTopics.map((topic) => ({
      kind: 'sink',
      name: `monitoring-${topic}`,
      groupId: `${settings.groupPrefix}${topic}`,
      doc: `lineage of every import from ${topic}`,
      input: topic,
      outputs: {},
      errors: topics.processingError.name,
      maxBatchRecords: settings.batchMaxRecords,
      sink: () => createLineageSink(store, { onCommitted: (effects) => recordEffects(metrics, effects) }),
    }));
    for (const stage of stages) {
      running.push(
        await runSinkStage(stage, {
          driver,
          codec,
          logger,
          metrics: stageMetrics,
          maxBatchRecords: settings.batchMaxRecords,
          lingerMs: settings.batchLingerMs,
          maxBatchBytes: settings.batchMaxBytes,
        }),
      );
    }
    const lagTargets: LagTarget[] = [...settings.lagGroups, ...stages.map((stage) => ({ group: stage.groupId!, topic: stage.input }))];
    lagMonitor = startMonitoringLag(kafka, lagTargets, metrics, { intervalMs: settings.lagIntervalMs, logger });
  } catch (error) {
    await shutdown();
    throw error;
  }

  const checks: Record<string, () => Promise<void>> = {};
  for (const stage of running) {
    checks[`stage_${stage.name}`] = async () => {
      if (!stage.healthy()) throw new Error(`${stage.name} is not in its consumer group`);
    };
  }
  checks.postgres = () => store.ping();
  const readiness = createReadiness(checks, { cacheMs: settings.readinessCacheMs });

  const app = uws.uws.App();
  const access = new MonitoringAccess(settings.tenantTokens, settings.operatorToken);
  if (!access.required && !['127.0.0.1', '::1', 'localhost'].includes(settings.host)) {
    logger.warn(
      { host: settings.host },
      'monitoring listens beyond this machine without tokens: anyone who reaches the port sees every tenant (set MONITORING_TENANT_TOKENS / MONITORING_OPERATOR_TOKEN)',
    );
  }
  const s3 = createS3(config.s3);
  /** Replay runs started through the API: stopped between two files when the monitoring stops (a run resumes with its id). */
  const replays = new Set<Promise<unknown>>();
  const stopping = new AbortController();
  const replay: ReplayDeps = {
    s3,
    runs: createReplayRunStore(postgres),
    codec,
    send: async (topic, message) => {
      await producer.send({ topic, messages: [message] });
    },
    pieceBytes: settings.replayPieceBytes,
    maxDepth: 256,
    maxLineBytes: 16 * 1024 * 1024,
    claimant: newClaimant(),
    // Claims are renewed every third of this while a file is read and sent.
    claimLeaseMs: 60_000,
  };
  registerRoutes(app, {
    store,
    access,
    logger,
    pageLimit: settings.pageLimit,
    cookieSecure: settings.cookieSecure,
    replay: {
      deps: replay,
      bucket: config.s3.bucket,
      signal: stopping.signal,
      track: (run) => {
        replays.add(run);
        void run.finally(() => replays.delete(run));
      },
    },
  });
  addOperationalRoutes(app, {
    service: 'monitoring',
    buildInfo: readBuildInfo(),
    readiness,
    metrics: metrics.registry,
    details: () => ({ uws: uws.implementation, stages: running.map((stage) => stage.name) }),
  });
  notFound(app);
  let socket: us_listen_socket;
  try {
    socket = await listen(app, settings.host, settings.port);
  } catch (error) {
    await shutdown();
    throw error;
  }
  const port = uws.uws.us_socket_local_port(socket);
  logger.info({ port, stages: running.map((stage) => stage.name), uws: uws.implementation }, 'monitoring listening');

  return {
    port,
    failed,
    close: closeOnce(async () => {
      closeListener(uws, socket);
      // Each stage finishes (or abandons) its running batch, then leaves its group.
      stopping.abort();
      await Promise.all(replays);
      await shutdown();
      s3.destroy();
      logger.info('monitoring stopped');
    }),
  };
}
