import { readConfig, type Config } from '../core/config.js';
import { checkUrl, EnvReader } from '../core/env.js';
import { tenantTokensSetting } from '../core/tenant-tokens.js';

export interface IngressConfig extends Config {
  ingress: {
    /** INGRESS_HOST */
    host: string;
    /** INGRESS_PORT */
    port: number;
    /** INGRESS_MAX_BODY_BYTES: larger bodies get 413 (default 256 MiB). */
    maxBodyBytes: number;
    /** INGRESS_PART_SIZE_BYTES: S3 multipart part size; memory per upload is about twice this. */
    partSizeBytes: number;
    /** INGRESS_MAX_CONCURRENT_UPLOADS: admission control; beyond it requests get 503 + Retry-After. */
    maxConcurrentUploads: number;
    /** INGRESS_MAX_DEPTH: JSON nesting limit. */
    maxDepth: number;
    /** INGRESS_MAX_LINE_BYTES: longest NDJSON line / array element. */
    maxLineBytes: number;
    /**
     * INGRESS_BODY_MIN_BYTES_PER_SECOND and INGRESS_BODY_RATE_WINDOW_MS: a body that sends fewer
     * bytes than this rate over a whole window (while the ingress is not holding it back) gets
     * 408 and its connection closed — slow-body (slowloris) clients cannot pin upload slots.
     */
    bodyMinBytesPerSecond: number;
    bodyRateWindowMs: number;
    /**
     * INGRESS_STALE_UPLOAD_MS: at start-up, multipart uploads under the bucket begun longer ago
     * than this are aborted (left behind by an ingress that was killed mid-upload).
     */
    staleUploadMs: number;
    /** INGRESS_DEDUPE_WINDOW_MS: how long a request id's first result is remembered for retries. */
    dedupeWindowMs: number;
    /**
     * INGRESS_DURABLE_CLAIMS: claim each (tenant, request id) in S3 before the file is stored, so
     * retries are safe across ingress replicas and restarts (ingress/import-claims.ts).
     */
    durableClaims: boolean;
    /** INGRESS_CLAIM_LEASE_MS: how long a claim stands without renewal (an ingress that died mid-upload). */
    claimLeaseMs: number;
    /**
     * INGRESS_PIECE_BYTES: a file larger than this is extracted as record-aligned pieces of about
     * this size, spread over the partitions and so over the processor replicas (default 4 MiB).
     */
    pieceBytes: number;
    /** INGRESS_PRODUCE_LINGER_MS: how long the producer gathers events of concurrent requests into one batch (librdkafka's linger.ms). */
    produceLingerMs: number;
    /** INGRESS_PRODUCE_MAX_BATCH: most events per batch (librdkafka's batch.num.messages). */
    produceMaxBatch: number;
    /** INGRESS_READINESS_CACHE_MS */
    readinessCacheMs: number;
    /** INGRESS_SHUTDOWN_TIMEOUT_MS: how long SIGTERM waits for in-flight requests. */
    shutdownTimeoutMs: number;
    /** INGRESS_AUTH_TOKENS (tenant:token,...) or INGRESS_AUTH_TOKENS_FILE (same, or a JSON object). Empty: auth off. */
    tenantTokens: Record<string, string>;
    /** MONITORING_PUBLIC_URL: base URL named in 202 answers for following an import. */
    monitoringUrl: string;
  };
}

const MiB = 1024 * 1024;

export function loadIngressConfig(env: NodeJS.ProcessEnv = process.env): IngressConfig {
  const reader = new EnvReader(env);
  const base = readConfig(reader);
  const tenantTokens = tenantTokensSetting(reader, 'INGRESS_AUTH_TOKENS', reader.optional('INGRESS_AUTH_TOKENS'));
  const config: IngressConfig = {
    ...base,
    ingress: {
      host: reader.string('INGRESS_HOST', '127.0.0.1'),
      port: reader.int('INGRESS_PORT', 3000, { min: 0, max: 65535 }),
      maxBodyBytes: reader.int('INGRESS_MAX_BODY_BYTES', 256 * MiB, { min: 1 }),
      partSizeBytes: reader.int('INGRESS_PART_SIZE_BYTES', 8 * MiB, { min: 5 * MiB, max: 512 * MiB }),
      maxConcurrentUploads: reader.int('INGRESS_MAX_CONCURRENT_UPLOADS', 64, { min: 1 }),
      maxDepth: reader.int('INGRESS_MAX_DEPTH', 256, { min: 1, max: 100_000 }),
      // A record travels as one Kafka message: it must stay under the topics' max.message.bytes (32 MiB).
      maxLineBytes: reader.int('INGRESS_MAX_LINE_BYTES', 16 * MiB, { min: 1024, max: 24 * MiB }),
      bodyMinBytesPerSecond: reader.int('INGRESS_BODY_MIN_BYTES_PER_SECOND', 1024, { min: 0 }),
      // Under uWS's own idle timeout (~10 s, 4 s ticks): it closes a trickling connection
      // without an answer; the guard must answer 408 before that.
      bodyRateWindowMs: reader.int('INGRESS_BODY_RATE_WINDOW_MS', 5_000, { min: 100, max: 7_000 }),
      staleUploadMs: reader.int('INGRESS_STALE_UPLOAD_MS', 60 * 60 * 1000, { min: 0 }),
      dedupeWindowMs: reader.int('INGRESS_DEDUPE_WINDOW_MS', 15 * 60 * 1000, { min: 0 }),
      durableClaims: reader.bool('INGRESS_DURABLE_CLAIMS', true),
      claimLeaseMs: reader.int('INGRESS_CLAIM_LEASE_MS', 60_000, { min: 1000 }),
      pieceBytes: reader.int('INGRESS_PIECE_BYTES', 4 * MiB, { min: 1024 }),
      produceLingerMs: reader.int('INGRESS_PRODUCE_LINGER_MS', 2, { min: 0, max: 1000 }),
      produceMaxBatch: reader.int('INGRESS_PRODUCE_MAX_BATCH', 500, { min: 1 }),
      readinessCacheMs: reader.int('INGRESS_READINESS_CACHE_MS', 2000, { min: 0 }),
      shutdownTimeoutMs: reader.int('INGRESS_SHUTDOWN_TIMEOUT_MS', 30_000, { min: 0 }),
      tenantTokens,
      monitoringUrl: reader.string('MONITORING_PUBLIC_URL', 'http://127.0.0.1:3002', checkUrl),
    },
  };
  reader.done();
  return config;
}
