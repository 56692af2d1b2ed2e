import { checkHostPortList, checkUrl, EnvReader } from './env.js';
import { compressionCodecs, type CompressionCodec } from './kafka-codecs.js';
import { defaultBucket, defaultDatabase, defaultPartitions } from './pipeline.js';

/**
 * The one typed configuration of the pipeline. Every value comes from an environment
 * variable; the defaults below are the documentation (they match the local stack in
 * deployments/local). `loadConfig` validates everything at start-up and throws a
 * ConfigError that names each bad variable.
 */
export interface KafkaConfig {
  /** KAFKA_BROKERS */
  brokers: string[];
  /** KAFKA_CLIENT_ID */
  clientId: string;
  /** KAFKA_CONNECTION_TIMEOUT_MS */
  connectionTimeoutMs: number;
  /** KAFKA_REQUEST_TIMEOUT_MS */
  requestTimeoutMs: number;
  /** KAFKA_COMPRESSION: the codec the pipeline's producers compress their batches with. */
  compression: CompressionCodec;
  /** KAFKA_LINGER_MS: how long a producer gathers messages into a batch before sending it. */
  lingerMs: number;
  /**
   * KAFKA_DEBUG: librdkafka debug contexts (e.g. `eos,cgrp`), empty for none. Their lines are
   * logged at debug level, so they show with LOG_LEVEL=debug.
   */
  debug?: string[];
}

/** The debug contexts librdkafka 2.x knows (CONFIGURATION.md, `debug`). */
export const librdkafkaDebugContexts = [
  'generic',
  'broker',
  'topic',
  'metadata',
  'feature',
  'queue',
  'msg',
  'protocol',
  'cgrp',
  'security',
  'fetch',
  'interceptor',
  'plugin',
  'consumer',
  'admin',
  'eos',
  'mock',
  'assignor',
  'conf',
  'telemetry',
  'all',
] as const;

export interface RegistryConfig {
  /** SCHEMA_REGISTRY_URL: a Confluent-compatible API (Apicurio's /apis/ccompat/v7 here). */
  url: string;
}

export interface S3Config {
  /** S3_ENDPOINT */
  endpoint: string;
  /** S3_REGION */
  region: string;
  /** S3_ACCESS_KEY_ID (or S3_ACCESS_KEY_ID_FILE) */
  accessKeyId: string;
  /** S3_SECRET_ACCESS_KEY (or S3_SECRET_ACCESS_KEY_FILE) */
  secretAccessKey: string;
  /** S3_BUCKET */
  bucket: string;
  /** S3_FORCE_PATH_STYLE: MinIO and most self-hosted S3 servers need path-style URLs. */
  forcePathStyle: boolean;
}

export interface PostgresConfig {
  /** PGHOST */
  host: string;
  /** PGPORT */
  port: number;
  /** PGDATABASE */
  database: string;
  /** PGUSER */
  user: string;
  /** PGPASSWORD (or PGPASSWORD_FILE) */
  password: string;
  /** PG_POOL_MAX */
  poolMax: number;
}

export interface PipelineConfig {
  /**
   * PIPELINE_PARTITIONS: partitions set-up creates each pipeline topic with, and grows an
   * existing topic with fewer to. Services do not assume it: they read a topic's real count
   * from the cluster, which is higher when a topic was grown past it (Kafka cannot shrink one).
   */
  partitions: number;
}

export interface LogConfig {
  /** LOG_LEVEL */
  level: 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent';
}

export interface Config {
  kafka: KafkaConfig;
  registry: RegistryConfig;
  s3: S3Config;
  postgres: PostgresConfig;
  pipeline: PipelineConfig;
  log: LogConfig;
  /** UWS_ALLOW_JS_FALLBACK: start even if the uWebSockets.js native binary cannot load. */
  uwsAllowJsFallback: boolean;
}

/**
 * Local-stack credentials, only valid against the MinIO and PostgreSQL that
 * `make up` starts on 127.0.0.1. Production deployments set their own (see deployments/k8s).
 */
export const localDefaults = {
  s3AccessKeyId: 'etl-local',
  s3SecretAccessKey: 'etl-local-secret',
  postgresPassword: 'etl',
} as const;

function listOf(value: string): string[] {
  return value
    .split(',')
    .map((item) => item.trim())
    .filter((item) => item !== '');
}

export function readConfig(reader: EnvReader): Config {
  return {
    kafka: {
      brokers: reader
        .string('KAFKA_BROKERS', '127.0.0.1:9092,127.0.0.1:9093,127.0.0.1:9094', checkHostPortList)
        .split(',')
        .map((broker) => broker.trim()),
      clientId: reader.string('KAFKA_CLIENT_ID', 'etl'),
      connectionTimeoutMs: reader.int('KAFKA_CONNECTION_TIMEOUT_MS', 3000, { min: 100 }),
      requestTimeoutMs: reader.int('KAFKA_REQUEST_TIMEOUT_MS', 30000, { min: 100 }),
      compression: reader.oneOf('KAFKA_COMPRESSION', 'lz4', compressionCodecs),
      lingerMs: reader.int('KAFKA_LINGER_MS', 5, { min: 0, max: 10_000 }),
      debug: listOf(
        reader.string('KAFKA_DEBUG', '', (value) => {
          const unknown = listOf(value).filter((context) => !(librdkafkaDebugContexts as readonly string[]).includes(context));
          return unknown.length === 0 ? undefined : `unknown librdkafka debug context ${unknown.join(', ')} (known: ${librdkafkaDebugContexts.join(', ')})`;
        }),
      ),
    },
    registry: {
      url: reader.string('SCHEMA_REGISTRY_URL', 'http://127.0.0.1:8081/apis/ccompat/v7', checkUrl),
    },
    s3: {
      endpoint: reader.string('S3_ENDPOINT', 'http://127.0.0.1:9000', checkUrl),
      region: reader.string('S3_REGION', 'us-east-1'),
      accessKeyId: reader.string('S3_ACCESS_KEY_ID', localDefaults.s3AccessKeyId),
      secretAccessKey: reader.string('S3_SECRET_ACCESS_KEY', localDefaults.s3SecretAccessKey),
      bucket: reader.string('S3_BUCKET', defaultBucket, (value) =>
        /^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/.test(value) ? undefined : 'not a valid S3 bucket name',
      ),
      forcePathStyle: reader.bool('S3_FORCE_PATH_STYLE', true),
    },
    postgres: {
      host: reader.string('PGHOST', '127.0.0.1'),
      port: reader.int('PGPORT', 5433, { min: 1, max: 65535 }),
      database: reader.string('PGDATABASE', defaultDatabase),
      user: reader.string('PGUSER', 'etl'),
      password: reader.string('PGPASSWORD', localDefaults.postgresPassword),
      poolMax: reader.int('PG_POOL_MAX', 10, { min: 1, max: 1000 }),
    },
    pipeline: {
      partitions: reader.int('PIPELINE_PARTITIONS', defaultPartitions, { min: 1 }),
    },
    log: {
      level: reader.oneOf('LOG_LEVEL', 'info', ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']),
    },
    uwsAllowJsFallback: reader.bool('UWS_ALLOW_JS_FALLBACK', false),
  };
}

/** Reads and validates the shared configuration; throws ConfigError naming every bad variable. */
export function loadConfig(env: NodeJS.ProcessEnv = process.env): Config {
  const reader = new EnvReader(env);
  const config = readConfig(reader);
  reader.done();
  return config;
}
