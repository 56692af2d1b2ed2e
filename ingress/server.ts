/**
 * The ingress's composition root: wires config, clients, the import route and the
 * operational routes, with an explicit lifecycle — start() registers the schemas, connects
 * the producer and listens; close() stops accepting, lets in-flight imports finish,
 * flushes the producer and disconnects.
 */
import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import { HeadBucketCommand } from '@aws-sdk/client-s3';
import type { us_listen_socket } from 'uWebSockets.js';
import { readBuildInfo } from '../core/build-info.js';
import { createEventCodec } from '../core/event-codec.js';
import { createReadiness } from '../core/health.js';
import { addOperationalRoutes, closeListener, listen, notFound } from '../core/http.js';
import { createKafka } from '../core/kafka.js';
import type { Logger } from '../core/logger.js';
import { minInSyncReplicas, topics } from '../core/pipeline.js';
import { createRegistry } from '../core/registry.js';
import { createS3 } from '../core/s3.js';
import { closeOnce } from '../core/service.js';
import { loadUws } from '../core/uws.js';
import { schemaOfTopic } from '../schemas/index.js';
import { TenantTokens } from '../core/tenant-tokens.js';
import type { IngressConfig } from './config.js';
import { RequestDeduplicator } from './dedupe.js';
import { ImportClaims, s3ClaimObjects } from './import-claims.js';
import { registerImportRoute, type ImportAccepted } from './import-route.js';
import { createLeanS3Put } from './s3-put.js';
import { abortStaleUploads } from './s3-upload.js';
import { createIngressMetrics } from './metrics.js';

export interface Ingress {
  /** The port it listens on (useful with INGRESS_PORT=0). */
  readonly port: number;
  close(): Promise<void>;
}

const producedTopics = [topics.fileExtractSuccess, topics.fileExtractError];

export async function startIngress(config: IngressConfig, logger: Logger): Promise<Ingress> {
  const uws = loadUws({ allowJsFallback: config.uwsAllowJsFallback });
  if (uws.implementation !== 'native') {
    logger.warn({ binary: uws.binary }, 'running on the slow pure-JS uWebSockets.js fallback (UWS_ALLOW_JS_FALLBACK)');
  }
  const metrics = createIngressMetrics();
  const s3 = createS3(config.s3);
  const leanPut = createLeanS3Put(config.s3, { connections: config.ingress.maxConcurrentUploads });
  const registry = createRegistry(config.registry);
  const codec = createEventCodec(registry, config.registry.url);
  const kafka = createKafka(config.kafka, { logger, clientId: `${config.kafka.clientId}-ingress` });
  const admin = kafka.admin();
  const producer = kafka.producer({
    lingerMs: config.ingress.produceLingerMs,
    maxBatchMessages: config.ingress.produceMaxBatch,
    // Never give up on an event: a send that failed after the broker may have written it could
    // only be answered 503, and the client's retry would announce the file twice. Requests
    // waiting on Kafka hold upload slots, so admission control bounds them. Retries at most 1 s
    // apart: when a partition leader dies, its partitions move after the controller's broker
    // session timeout (9 s), and a longer backoff kept clients waiting past the move.
    deliveryTimeoutMs: 0,
    retryBackoffMaxMs: 1_000,
  });
  let producerConnected = false;

  // Registration needs the registry; afterwards encoding works from the cached schemas.
  for (const topic of producedTopics) await codec.register(topic.name, schemaOfTopic(topic.name));
  await producer.connect();
  producerConnected = true;
  await admin.connect();

  // librdkafka gathers the events of concurrent requests for linger.ms into one request per
  // partition; each request is answered once its own event is acknowledged.
  const sendEvent = async (topic: string, message: { key: string; value: Buffer; headers: Record<string, string> }) => {
    const started = process.hrtime.bigint();
    let ok = false;
    try {
      await producer.send({ topic, messages: [message] });
      ok = true;
    } finally {
      metrics.kafkaSendSeconds.observe({ result: ok ? 'ok' : 'error' }, Number(process.hrtime.bigint() - started) / 1e9);
    }
  };

  const readiness = createReadiness(
    {
      kafka: async () => {
        if (!producerConnected) throw new Error('producer not connected');
        // acks=all needs min.insync.replicas in sync on every partition we write to.
        const metadata = await admin.fetchTopicMetadata({ topics: producedTopics.map((topic) => topic.name) });
        for (const topic of metadata) {
          for (const partition of topic.partitions) {
            if (partition.leader < 0 || partition.isr.length < minInSyncReplicas) {
              throw new Error(`${topic.name}[${partition.partitionId}] has ${partition.isr.length} in-sync replicas, needs ${minInSyncReplicas}`);
            }
          }
        }
      },
      schema_registry: () => codec.ping(),
      s3: async () => {
        await s3.send(new HeadBucketCommand({ Bucket: config.s3.bucket }));
      },
    },
    { cacheMs: config.ingress.readinessCacheMs },
  );

  let drained: () => void = () => undefined;
  const inFlight = {
    count: 0,
    changed: () => {
      if (inFlight.count === 0) drained();
    },
  };
  const app = uws.uws.App();
  registerImportRoute(app, {
    config,
    s3,
    leanPut,
    codec,
    sendEvent,
    dedupe: new RequestDeduplicator<ImportAccepted>(config.ingress.dedupeWindowMs),
    claims: config.ingress.durableClaims
      ? new ImportClaims<ImportAccepted>(s3ClaimObjects(leanPut), {
          owner: `${hostname()}-${process.pid}-${randomBytes(4).toString('hex')}`,
          leaseMs: config.ingress.claimLeaseMs,
          windowMs: config.ingress.dedupeWindowMs,
          onRenewFailed: (error) => {
            metrics.claimFailures.inc({ operation: 'renew' });
            logger.warn({ err: error }, 'renewing a request id claim failed');
          },
        })
      : undefined,
    tokens: new TenantTokens(config.ingress.tenantTokens),
    metrics,
    logger,
    inFlight,
  });
  addOperationalRoutes(app, {
    service: 'ingress',
    buildInfo: readBuildInfo(),
    readiness,
    metrics: metrics.registry,
    details: () => ({ uws: uws.implementation }),
  });
  notFound(app);

  // Leftovers of an ingress killed mid-upload; in the background, so start-up does not wait on S3.
  abortStaleUploads(s3, config.s3.bucket, Date.now() - config.ingress.staleUploadMs).then(
    (aborted) => {
      if (aborted.length > 0) logger.warn({ keys: aborted }, `aborted ${aborted.length} stale multipart upload(s)`);
    },
    (error: unknown) => logger.warn({ err: error }, 'listing stale multipart uploads failed'),
  );

  const socket: us_listen_socket = await listen(app, config.ingress.host, config.ingress.port);
  const port = uws.uws.us_socket_local_port(socket);
  logger.info({ port, uws: uws.implementation, auth: Object.keys(config.ingress.tenantTokens).length > 0 }, 'ingress listening');

  return {
    port,
    close: closeOnce(async () => {
      closeListener(uws, socket);
      if (inFlight.count > 0) {
        logger.info({ in_flight: inFlight.count }, 'waiting for in-flight imports');
        await Promise.race([
          new Promise<void>((resolve) => (drained = resolve)),
          new Promise((resolve) => setTimeout(resolve, config.ingress.shutdownTimeoutMs)),
        ]);
      }
      await producer
        .flush({ timeout: config.ingress.shutdownTimeoutMs })
        .catch((error: unknown) => logger.warn({ err: error }, 'flushing the producer failed'));
      producerConnected = false;
      await producer.disconnect();
      await admin.disconnect();
      s3.destroy();
      await leanPut.close();
      logger.info('ingress stopped');
    }),
  };
}
