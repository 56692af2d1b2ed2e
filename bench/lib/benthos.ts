/**
 * The peer of bench:peer: Benthos v4.27.0 (MIT), built once from the Go module proxy into
 * bench/tmp (never committed) from bench/peer/benthos (a main.go importing only the io, pure,
 * kafka and sql/base components and lib/pq), and its two configurations:
 *
 *   ingest  http_server (POST /import/{tenant}, answered after every line is acknowledged)
 *           → unarchive lines → kafka_franz, keyed by permalink (murmur2, as our producers)
 *   sink    kafka_franz (one consumer group over the topic's partitions; more processes share it)
 *           → normalise the MongoDB wrappers → json_schema (schemas/company.schema.json)
 *           → switch: invalid → kafka_franz error topic; valid → batched sql_raw upsert
 *
 * Tuned as its documentation recommends for throughput: batching on every output (count and
 * period), several batches in flight, processing threads = cores (pipeline.threads -1), lz4 like
 * our producers, and checkpoint_limit raised so a partition's batches are not held back one by one.
 */
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const sourceDir = join(root, 'bench', 'peer', 'benthos');
export const benthosVersion = 'v4.27.0';

/** The binary, built when its sources changed since the last build (go build, module cache reused). */
export function buildBenthos(tmpDir: string, log: (message: string) => void): string {
  const hash = createHash('sha256');
  for (const file of ['main.go', 'go.mod', 'go.sum']) hash.update(readFileSync(join(sourceDir, file)));
  const digest = hash.digest('hex').slice(0, 16);
  const binary = join(tmpDir, `benthos-${benthosVersion}-${digest}`);
  if (existsSync(binary)) return binary;
  mkdirSync(tmpDir, { recursive: true });
  log(`building Benthos ${benthosVersion} into ${binary} (once; minutes)`);
  const started = Date.now();
  execFileSync('go', ['build', '-trimpath', '-o', binary, '.'], {
    cwd: sourceDir,
    env: { ...process.env, CGO_ENABLED: '0', GOFLAGS: '-mod=mod' },
    stdio: ['ignore', process.stderr, process.stderr],
  });
  log(`built Benthos in ${((Date.now() - started) / 1000).toFixed(0)} s`);
  return binary;
}

export interface BenthosSettings {
  brokers: string[];
  topic: string;
  errorTopic: string;
  consumerGroup: string;
  /** postgres://… with sslmode=disable */
  dsn: string;
  table: string;
  schemaPath: string;
  compression: string;
}

const yamlList = (values: string[]) => `[${values.map((value) => JSON.stringify(value)).join(', ')}]`;

/** Benthos's own HTTP server (/ready, /metrics) on `apiPort`; the ingest's http_server on `ingestPort`. */
export function ingestConfig(settings: BenthosSettings, apiPort: number, ingestPort: number): string {
  return `http:
  address: 127.0.0.1:${apiPort}
logger:
  level: WARN
input:
  http_server:
    address: 127.0.0.1:${ingestPort}
    path: /import/{tenant}
    allowed_verbs: [POST]
    timeout: 600s
    sync_response:
      status: "202"
pipeline:
  threads: -1
  processors:
    - unarchive:
        format: lines
    - mapping: |
        root = if content().string().trim() == "" { deleted() } else { this }
output:
  kafka_franz:
    seed_brokers: ${yamlList(settings.brokers)}
    topic: ${settings.topic}
    key: \${! json("permalink").or("") }
    partitioner: murmur2_hash
    compression: ${settings.compression}
    max_message_bytes: 32MB
    metadata:
      include_patterns: ["^tenant$"]
    max_in_flight: 64
    batching:
      count: 1000
      period: 10ms
`;
}

export function sinkConfig(settings: BenthosSettings, apiPort: number): string {
  return `http:
  address: 127.0.0.1:${apiPort}
logger:
  level: WARN
input:
  kafka_franz:
    seed_brokers: ${yamlList(settings.brokers)}
    topics: [${settings.topic}]
    consumer_group: ${settings.consumerGroup}
    start_from_oldest: true
    checkpoint_limit: 10000
    batching:
      count: 1000
      period: 50ms
pipeline:
  threads: -1
  processors:
    - mapping: |
        map unwrap {
          root = match {
            this.type() == "object" && this.keys().length() == 1 && this.exists("$oid") => this.get("$oid")
            this.type() == "object" && this.keys().length() == 1 && this.exists("$date") => this.get("$date")
            this.type() == "object" && this.keys().length() == 1 && this.exists("$numberLong") => this.get("$numberLong").number()
            this.type() == "object" => this.map_each(kv -> kv.value.apply("unwrap"))
            this.type() == "array" => this.map_each(v -> v.apply("unwrap"))
            _ => this
          }
        }
        root = this.apply("unwrap")
    - json_schema:
        schema_path: file://${settings.schemaPath}
output:
  switch:
    cases:
      - check: errored()
        output:
          kafka_franz:
            seed_brokers: ${yamlList(settings.brokers)}
            topic: ${settings.errorTopic}
            key: \${! json("permalink").or("") }
            compression: ${settings.compression}
            max_in_flight: 16
            batching:
              count: 1000
              period: 50ms
          processors:
            - mapping: |
                root.error = error()
                root.record = this
      - output:
          sql_raw:
            driver: postgres
            dsn: ${settings.dsn}
            query: >-
              INSERT INTO ${settings.table} (tenant, permalink, name, document, loaded_at)
              VALUES ($1, $2, $3, $4::jsonb, now())
              ON CONFLICT (tenant, permalink) DO UPDATE
              SET name = EXCLUDED.name, document = EXCLUDED.document, loaded_at = EXCLUDED.loaded_at
            args_mapping: root = [ @tenant, this.permalink, this.name, content().string() ]
            conn_max_open: 8
            max_in_flight: 4
            batching:
              count: 1000
              period: 50ms
`;
}

export function writeConfig(tmpDir: string, name: string, text: string): string {
  const path = join(tmpDir, name);
  writeFileSync(path, text);
  return path;
}
