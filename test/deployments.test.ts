/**
 * The deployment descriptions, checked without any server: the Compose files against the
 * Compose specification's JSON schema, the Kubernetes manifests against Kubernetes' schemas
 * and types, every environment variable they give our services against what the services'
 * config modules read (and the values through those modules), and the Grafana dashboard's
 * PromQL against the metrics the services declare.
 *
 * Schemas: the Compose specification's JSON schema as the `dclint` npm package ships it
 * (schemas/compose.schema.json), compiled with ajv; Kubernetes' from `kubernetes-models`
 * (validators generated from the Kubernetes OpenAPI, one class per kind, plus TypeScript
 * interfaces, used here to reject unknown fields, which the OpenAPI schemas allow).
 */
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Ajv } from 'ajv';
import { Registry } from 'prom-client';
import t, { type Test } from 'tap';
import ts from 'typescript';
import { parseAllDocuments, parse as parseYaml } from 'yaml';
import { loadConfig } from '../core/config.js';
import { allTopics, defaultBucket, defaultPartitions, minInSyncReplicas, replicationFactor, topicConfig } from '../core/pipeline.js';
import { findJava, javaMajor, newKafkaClusterId, stackPaths, stackPorts } from '../deployments/local/servers.js';
import { loadIngressConfig } from '../ingress/config.js';
import { createIngressMetrics } from '../ingress/metrics.js';
import { loadMonitoringConfig } from '../monitoring/config.js';
import { createMonitoringMetrics } from '../monitoring/metrics.js';
import { loadProcessorConfig } from '../topology/config.js';
import { createStageMetrics } from '../topology/lib/metrics.js';
import { servicesOf } from '../deployments/local/service-specs.js';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const require = createRequire(import.meta.url);
const read = (path: string) => readFileSync(join(root, path), 'utf8');
type Json = any;

function walk(dir: string, accept: (path: string) => boolean): string[] {
  const found: string[] = [];
  for (const entry of readdirSync(join(root, dir))) {
    const path = join(dir, entry);
    if (statSync(join(root, path)).isDirectory()) found.push(...walk(path, accept));
    else if (accept(path)) found.push(path);
  }
  return found.sort();
}

const composeFiles = ['docker-compose.yml', ...walk('deployments', (path) => /(^|\/)(docker-)?compose[^/]*\.ya?ml$/.test(path))];
const k8sFiles = walk('deployments/k8s', (path) => /\.ya?ml$/.test(path));
const compose = new Map(composeFiles.map((file) => [file, parseYaml(read(file), { merge: true })]));

// ---------------------------------------------------------------------------------------
// What the services read: collected from their config modules' source.

type ServiceKind = 'ingress' | 'processor' | 'monitoring' | 'migrate';
const configSources: Record<ServiceKind, string[]> = {
  ingress: ['core/config.ts', 'ingress/config.ts'],
  processor: ['core/config.ts', 'topology/config.ts'],
  monitoring: ['core/config.ts', 'monitoring/config.ts'],
  migrate: ['core/config.ts'],
};

interface EnvNames {
  known: Set<string>;
  required: Set<string>;
}

function envNamesOf(files: string[]): EnvNames {
  const known = new Set<string>();
  const required = new Set<string>();
  for (const file of files) {
    const source = read(file);
    // reader.string('NAME', ...), reader.int(, .bool(, .list(, .oneOf<T>(, .optional(, .required(
    for (const match of source.matchAll(/\breader\s*\.\s*(\w+)\s*(?:<[^>(]*>)?\(\s*['"`]([A-Z][A-Z0-9_]*)['"`]/g)) {
      const [, method, name] = match as unknown as [string, string, string];
      known.add(name);
      known.add(`${name}_FILE`); // EnvReader reads NAME_FILE for every NAME
      if (method === 'required') required.add(name);
    }
    // Read straight from the environment (e.g. env.INGRESS_AUTH_TOKENS, env.INGRESS_AUTH_TOKENS_FILE).
    for (const match of source.matchAll(/\benv\s*(?:\.\s*([A-Z][A-Z0-9_]*)\b|\[\s*['"`]([A-Z][A-Z0-9_]*)['"`]\s*\])/g)) {
      known.add((match[1] ?? match[2])!);
    }
  }
  return { known, required };
}

const envNames: Record<ServiceKind, EnvNames> = {
  ingress: envNamesOf(configSources.ingress),
  processor: envNamesOf(configSources.processor),
  monitoring: envNamesOf(configSources.monitoring),
  migrate: envNamesOf(configSources.migrate),
};

const loaders: Record<ServiceKind, (env: NodeJS.ProcessEnv) => unknown> = {
  ingress: loadIngressConfig,
  processor: loadProcessorConfig,
  monitoring: loadMonitoringConfig,
  migrate: loadConfig,
};

/**
 * NAME_FILE=/run/secrets/x cannot be read here: give NAME the example value of the secret
 * instead (from the .env.example that feeds it), or a stand-in.
 */
function withoutFiles(env: Record<string, string>, examples: Record<string, string>): Record<string, string> {
  const result: Record<string, string> = {};
  for (const [name, value] of Object.entries(env)) {
    if (name.endsWith('_FILE')) {
      const base = name.slice(0, -'_FILE'.length);
      result[base] = examples[base] ?? 'from-a-mounted-file';
    } else {
      result[name] = value;
    }
  }
  return result;
}

function checkServiceEnv(t: Test, kind: ServiceKind, where: string, env: Record<string, string>, examples: Record<string, string> = {}): void {
  const { known, required } = envNames[kind];
  const unknown = Object.keys(env).filter((name) => !known.has(name));
  t.same(unknown, [], `${where}: every variable is one the ${kind} reads`);
  const missing = [...required].filter((name) => env[name] === undefined && env[`${name}_FILE`] === undefined);
  t.same(missing, [], `${where}: every required variable of the ${kind} is set`);
  let problem: string | undefined;
  try {
    loaders[kind](withoutFiles(env, examples));
  } catch (error) {
    problem = (error as Error).message;
  }
  t.equal(problem, undefined, `${where}: the ${kind}'s config module accepts the values`);
}

t.test('the config modules are read: known and required variables', async (t) => {
  for (const name of ['KAFKA_BROKERS', 'SCHEMA_REGISTRY_URL', 'S3_BUCKET', 'PGPASSWORD', 'PGPASSWORD_FILE', 'LOG_LEVEL']) {
    t.ok(envNames.migrate.known.has(name), `core: ${name}`);
  }
  t.ok(envNames.ingress.known.has('INGRESS_PORT'));
  t.ok(envNames.ingress.known.has('INGRESS_AUTH_TOKENS'));
  t.ok(envNames.ingress.known.has('INGRESS_AUTH_TOKENS_FILE'));
  t.ok(envNames.processor.known.has('PROCESSOR_PORT'));
  t.ok(envNames.monitoring.known.has('MONITORING_PORT'));
  t.notOk(envNames.processor.known.has('INGRESS_PORT'), 'each service only knows its own');
});

// ---------------------------------------------------------------------------------------
// Compose

/** Compose's interpolation, with the values of the .env.example beside the file. */
function interpolate(value: string, vars: Record<string, string>): string {
  return value.replace(/\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?])([^}]*))?\}|\$([A-Za-z_][A-Za-z0-9_]*)/g, (whole, braced, op, arg, bare) => {
    if (whole === '$$') return '$';
    const name = (braced ?? bare) as string;
    const set = vars[name];
    if (op === ':-' || op === '-') return set !== undefined && (op === '-' || set !== '') ? set : (arg as string);
    return set ?? '';
  });
}

function envFile(path: string): Record<string, string> {
  if (!existsSync(join(root, path))) return {};
  const vars: Record<string, string> = {};
  for (const line of read(path).split('\n')) {
    const match = /^\s*([A-Za-z_][A-Za-z0-9_]*)=(.*)$/.exec(line);
    if (match !== null) vars[match[1]!] = match[2]!.trim();
  }
  return vars;
}

function envOfService(service: Json): Record<string, string> {
  const env: Record<string, string> = {};
  const environment = service.environment ?? {};
  if (Array.isArray(environment)) {
    for (const item of environment as string[]) {
      const [name, ...rest] = item.split('=');
      env[name!] = rest.join('=');
    }
  } else {
    for (const [name, value] of Object.entries(environment)) env[name] = value === null ? '' : String(value);
  }
  return env;
}

/** Our services: built from deployments/docker, or run from its images. */
function ourKind(name: string, service: Json): ServiceKind | undefined {
  const ours = String(service.build?.dockerfile ?? '').includes('deployments/docker/') || /^etl-ingest\//.test(String(service.image ?? ''));
  if (!ours) return undefined;
  if (name === 'ingress' || name === 'processor' || name === 'monitoring' || name === 'migrate') return name;
  throw new Error(`compose service ${name} runs our image but is none of ingress, processor, monitoring, migrate`);
}

t.test('every Compose file validates against the Compose specification schema', async (t) => {
  const schemaPath = join(dirname(require.resolve('dclint/package.json')), 'schemas', 'compose.schema.json');
  const { $schema: _draft, ...schema } = JSON.parse(readFileSync(schemaPath, 'utf8'));
  t.match(_draft, /draft-07/, 'the schema is draft-07, what ajv compiles by default');
  const ajv = new Ajv({ allErrors: true, strict: false });
  const validate = ajv.compile(schema);
  t.ok(composeFiles.length >= 3, `found ${composeFiles.join(', ')}`);
  for (const [file, document] of compose) {
    const ok = validate(document);
    t.ok(ok, `${file} is a valid Compose file`, { errors: ok ? undefined : ajv.errorsText(validate.errors, { separator: '\n' }) });
  }
  // The validator does catch mistakes.
  t.notOk(validate({ services: { x: { image: 'a', restart: 'sometimes', imagee: 'b' } } }));
});

t.test('Compose: our services get only variables they read, with values their config accepts', async (t) => {
  let checked = 0;
  for (const [file, document] of compose) {
    const vars = envFile(join(dirname(file), '.env.example'));
    for (const [name, service] of Object.entries<Json>(document.services)) {
      const kind = ourKind(name, service);
      if (kind === undefined) continue;
      const env = Object.fromEntries(Object.entries(envOfService(service)).map(([key, value]) => [key, interpolate(value, vars)]));
      checkServiceEnv(t, kind, `${file} ${name}`, env, vars);
      checked++;
    }
  }
  t.ok(checked >= 7, `${checked} service definitions checked`);
});

t.test("Compose: the cluster, topics and bucket are the design's (core/pipeline.ts)", async (t) => {
  const topicNames = allTopics.map((topic) => topic.name).sort();
  // The partition count comes from PIPELINE_PARTITIONS, with the default of core/config.ts.
  const partitionsSetting = `\${PIPELINE_PARTITIONS:-${defaultPartitions}}`;
  t.equal(loadConfig({}).pipeline.partitions, defaultPartitions);
  for (const [file, document] of compose) {
    const vars = envFile(join(dirname(file), '.env.example'));
    const partitions = loadConfig({ PIPELINE_PARTITIONS: vars.PIPELINE_PARTITIONS }).pipeline.partitions;
    const brokers = Object.entries<Json>(document.services).filter(
      ([, service]) => String(service.image ?? '').startsWith('apache/kafka') && service.environment?.KAFKA_NODE_ID !== undefined,
    );
    t.equal(brokers.length, 3, `${file}: 3 Kafka nodes`);
    for (const [name, service] of brokers) {
      const env = envOfService(service);
      t.equal(env.KAFKA_PROCESS_ROLES, 'broker,controller', `${file} ${name}: KRaft, broker and controller`);
      t.equal(Number(env.KAFKA_DEFAULT_REPLICATION_FACTOR), replicationFactor, `${file} ${name}: replication`);
      t.equal(Number(env.KAFKA_MIN_INSYNC_REPLICAS), minInSyncReplicas, `${file} ${name}: min ISR`);
      t.equal(env.KAFKA_NUM_PARTITIONS, partitionsSetting, `${file} ${name}: partitions from PIPELINE_PARTITIONS`);
      t.equal(Number(interpolate(env.KAFKA_NUM_PARTITIONS!, vars)), partitions, `${file} ${name}: ${partitions} partitions with ${dirname(file)}/.env.example`);
      t.equal(interpolate(env.KAFKA_NUM_PARTITIONS!, { ...vars, PIPELINE_PARTITIONS: '6' }), '6', `${file} ${name}: PIPELINE_PARTITIONS=6 gives 6`);
      t.equal(Number(env.KAFKA_TRANSACTION_STATE_LOG_MIN_ISR), minInSyncReplicas);
      t.equal(env.KAFKA_AUTO_CREATE_TOPICS_ENABLE, 'false', `${file} ${name}: no automatic topic creation`);
    }
    const init = document.services['kafka-init'];
    t.ok(init, `${file}: a topic job`);
    const script = [init.entrypoint, init.command].flat().join(' ');
    const listed = /for topic in ([^;]+);/.exec(script)?.[1]?.trim().split(/\s+/).sort();
    t.same(listed, topicNames, `${file}: every topic of core/pipeline.ts, no other`);
    // Compose substitutes it (one $) before the shell runs the script; the shell's own variables are $$-escaped.
    t.match(script, `--partitions ${partitionsSetting} `, `${file}: partitions from PIPELINE_PARTITIONS`);
    t.match(interpolate(script, vars), `--partitions ${partitions} `, `${file}: ${partitions} partitions with ${dirname(file)}/.env.example`);
    t.match(interpolate(script, { ...vars, PIPELINE_PARTITIONS: '6' }), '--partitions 6 ', `${file}: PIPELINE_PARTITIONS=6 gives 6`);
    t.match(interpolate(script, vars), '--topic "$topic"', `${file}: the shell's variables survive Compose's substitution`);
    t.match(script, `--replication-factor ${replicationFactor} `, `${file}: replication ${replicationFactor}`);
    for (const [key, value] of Object.entries(topicConfig)) t.match(script, `--config ${key}=${value}`, `${file}: ${key}`);
    const bucketJob = [document.services['minio-init']?.command].flat().join(' ');
    t.match(bucketJob, new RegExp(`mc mb --ignore-existing \\w+/${defaultBucket}\\b`), `${file}: the bucket ${defaultBucket}`);
    const postgres = envOfService(document.services.postgres);
    t.equal(postgres.POSTGRES_DB, loadConfig({}).postgres.database, `${file}: the database`);
    t.equal(postgres.POSTGRES_USER, loadConfig({}).postgres.user, `${file}: the role`);
  }
});

t.test('Compose: the whole system', async (t) => {
  const document = compose.get('docker-compose.yml')!;
  const services = document.services as Record<string, Json>;
  for (const name of [
    'kafka-1',
    'kafka-2',
    'kafka-3',
    'kafka-init',
    'registry',
    'minio',
    'minio-init',
    'postgres',
    'migrate',
    'ingress',
    'processor',
    'monitoring',
    'prometheus',
    'grafana',
  ]) {
    t.ok(services[name], `service ${name}`);
  }
  t.equal(services.processor.deploy?.replicas, 2, 'two processor replicas');
  t.notOk(services.processor.ports, 'replicas publish no host port');
  t.equal(services.migrate.depends_on?.postgres?.condition, 'service_healthy', 'migrations once PostgreSQL is healthy');
  t.same(services.migrate.command, ['node', 'dist/sinks/postgres/migrate-cli.js', 'up']);
  for (const name of ['ingress', 'processor', 'monitoring']) {
    t.equal(services[name].build.target, name, `${name}: its Dockerfile target`);
    for (const job of ['kafka-init', 'minio-init', 'migrate']) {
      t.equal(services[name].depends_on?.[job]?.condition, 'service_completed_successfully', `${name} waits for ${job}`);
    }
    for (const arg of ['BUILD_VERSION', 'GIT_COMMIT', 'GIT_BRANCH', 'BUILD_TIME']) t.ok(arg in services[name].build.args, `${name}: build arg ${arg}`);
  }
  // A durable registry: the in-memory one loses every schema when it restarts.
  t.match(services.registry.image, /^apicurio\/apicurio-registry-sql:2\.6\.13\.Final$/);
  const registryEnv = envOfService(services.registry);
  t.equal(registryEnv.REGISTRY_DATASOURCE_URL, 'jdbc:postgresql://postgres:5432/registry', 'schemas in PostgreSQL, own database');
  t.equal(registryEnv.REGISTRY_DATASOURCE_USERNAME, loadConfig({}).postgres.user);
  t.equal(services.registry.depends_on?.postgres?.condition, 'service_healthy', 'the registry starts once PostgreSQL is healthy');
  const initMount = (services.postgres.volumes as string[]).find((volume) => volume.endsWith(':/docker-entrypoint-initdb.d:ro'));
  t.ok(initMount, 'PostgreSQL runs the init scripts');
  const initDir = initMount!.split(':')[0]!;
  const initSql = readdirSync(join(root, initDir))
    .map((name) => read(join(initDir, name)))
    .join('\n');
  t.match(initSql, /CREATE DATABASE registry OWNER etl;/, "the registry's database is created on a fresh volume");
  t.equal(envOfService(services.ingress).SCHEMA_REGISTRY_URL, 'http://registry:8080/apis/ccompat/v7', 'the ccompat API');
});

t.test('Compose: credentials only come from the env file', async (t) => {
  const secretLike = /(PASSWORD|SECRET|ACCESS_KEY|TOKENS?)$|^MINIO_ROOT_USER$/;
  for (const [file, document] of compose) {
    const example = join(dirname(file), '.env.example');
    t.ok(existsSync(join(root, example)), `${example} exists`);
    const vars = envFile(example);
    const text = read(file);
    for (const [name, service] of Object.entries<Json>(document.services)) {
      for (const [key, value] of Object.entries(envOfService(service))) {
        if (!secretLike.test(key)) continue;
        t.match(value, /^\$\{[A-Z0-9_]+(:?[?-][^}]*)?\}$/, `${file} ${name}: ${key} comes from the environment, not the file`);
      }
    }
    // Every variable the file needs without a default is in its .env.example.
    const needed = new Set<string>();
    for (const match of text.matchAll(/(?<!\$)\$\{([A-Za-z_][A-Za-z0-9_]*)(:?\?[^}]*)?\}/g)) needed.add(match[1]!);
    for (const secret of Object.values<Json>(document.secrets ?? {})) if (secret.environment) needed.add(secret.environment);
    t.same(
      [...needed].filter((name) => !(name in vars)),
      [],
      `${file}: ${example} names every variable it needs`,
    );
  }
  const rootExample = envFile('.env.example');
  for (const [name, value] of Object.entries(rootExample)) {
    if (secretLike.test(name)) t.match(value, /replace/i, `.env.example: ${name} is a placeholder`);
  }
  t.match(read('.gitignore'), /^\.env$/m, '.env stays out of git');
});

t.test("Compose: the test stack is on the native stack's ports", async (t) => {
  const ports = stackPorts({});
  const services = compose.get('deployments/test/docker-compose.yml')!.services as Record<string, Json>;
  const published = (name: string) => (services[name].ports as string[]).map((port) => Number(port.split(':').at(-2)));
  t.same([...published('kafka-1'), ...published('kafka-2'), ...published('kafka-3')], ports.kafka);
  t.same(published('registry'), [ports.registry]);
  t.same(published('minio'), [ports.minio]);
  t.same(published('postgres'), [ports.postgres]);
  for (const [index, name] of ['kafka-1', 'kafka-2', 'kafka-3'].entries()) {
    t.match(services[name].environment.KAFKA_ADVERTISED_LISTENERS, `HOST://127.0.0.1:${ports.kafka[index]}`, `${name} advertises its host port`);
  }
  const testEnv = envFile('deployments/test/.env.example');
  const defaults = loadConfig({});
  t.equal(testEnv.S3_ACCESS_KEY_ID, defaults.s3.accessKeyId, "the tests' default credentials");
  t.equal(testEnv.S3_SECRET_ACCESS_KEY, defaults.s3.secretAccessKey);
  t.equal(testEnv.PGPASSWORD, defaults.postgres.password);
});

t.test('Compose: development services run the mounted source in watch mode', async (t) => {
  const services = compose.get('deployments/development/docker-compose.yml')!.services as Record<string, Json>;
  const entries: Record<string, string> = { ingress: 'ingress/main.ts', processor: 'topology/main.ts', monitoring: 'monitoring/main.ts' };
  for (const [name, entry] of Object.entries(entries)) {
    t.same(services[name].command.slice(0, 5), ['node', '--watch', '--import', 'tsx', entry], `${name}: node --watch --import tsx ${entry}`);
    t.ok(existsSync(join(root, entry)), `${entry} exists`);
    t.equal(services[name].build.dockerfile, 'deployments/docker/Dockerfile.dev');
    t.ok((services[name].volumes as string[]).includes('../..:/app'), `${name}: the repository mounted`);
  }
});

// ---------------------------------------------------------------------------------------
// Dockerfiles

t.test('outside a container every service listens on 127.0.0.1 unless told otherwise', async (t) => {
  t.equal(loadIngressConfig({}).ingress.host, '127.0.0.1');
  t.equal(loadProcessorConfig({}).processor.host, '127.0.0.1');
  t.equal(loadMonitoringConfig({}).monitoring.host, '127.0.0.1');
  t.equal(loadIngressConfig({ INGRESS_HOST: '0.0.0.0' }).ingress.host, '0.0.0.0');
});

t.test('Dockerfile: build args, stages, non-root user, health checks, entry points', async (t) => {
  const dockerfile = read('deployments/docker/Dockerfile');
  for (const arg of ['BUILD_VERSION', 'GIT_COMMIT', 'GIT_BRANCH', 'BUILD_TIME']) t.match(dockerfile, new RegExp(`^ARG ${arg}$`, 'm'), `ARG ${arg}`);
  t.match(dockerfile, /^ARG NODE_IMAGE=node:20-bookworm-slim$/m, 'glibc (bookworm-slim), not alpine');
  t.match(dockerfile, /npm ci/);
  t.match(dockerfile, /npm run build/);
  t.match(dockerfile, /npm prune --omit=dev/);
  t.match(dockerfile, /^USER 10001:10001$/m, 'runs as a non-root user');
  const runtime = /^FROM \$\{NODE_IMAGE\} AS runtime$([\s\S]*?)(?=^FROM )/m.exec(dockerfile)?.[1] ?? '';
  t.match(runtime, /^ENV MALLOC_MMAP_THRESHOLD_=131072$/m, 'every service gets the fixed mmap threshold that bench:pipeline measures with');
  t.match(
    runtime,
    /^ENV INGRESS_HOST=0\.0\.0\.0 PROCESSOR_HOST=0\.0\.0\.0 MONITORING_HOST=0\.0\.0\.0$/m,
    'in the image the services listen on every interface',
  );
  const build = ts.getParsedCommandLineOfConfigFile(join(root, 'tsconfig.build.json'), {}, { ...ts.sys, onUnRecoverableConfigFileDiagnostic: () => {} });
  const compiled = new Set(build!.fileNames.map((file) => relative(root, file)));
  const defaults: Record<string, number> = { ingress: 3000, processor: 3001, monitoring: 3002 };
  for (const [service, port] of Object.entries(defaults)) {
    const stage = new RegExp(`^FROM runtime AS ${service}$([\\s\\S]*?)(?=^FROM |(?![\\s\\S]))`, 'm').exec(dockerfile)?.[1];
    t.ok(stage, `target ${service}`);
    t.match(stage, new RegExp(`^EXPOSE ${port}$`, 'm'), `${service}: EXPOSE ${port}`);
    t.match(stage, new RegExp(`HEALTHCHECK[\\s\\S]*fetch\\(.*/liveness`), `${service}: HEALTHCHECK on /liveness with node's fetch`);
    const cmd = JSON.parse(/^CMD (\[.*\])$/m.exec(stage ?? '')?.[1] ?? '[]') as string[];
    t.equal(cmd[0], 'node');
    const source = cmd[1]!.replace(/^dist\//, '').replace(/\.js$/, '.ts');
    t.ok(compiled.has(source), `${service}: ${cmd[1]} is compiled by npm run build (${source} in tsconfig.build.json)`);
  }
  t.ok(compiled.has('sinks/postgres/migrate-cli.ts'), 'the migrations CLI is compiled too');
  const dev = read('deployments/docker/Dockerfile.dev');
  t.match(dev, /^FROM node:20-bookworm-slim$/m);
  t.match(dev, /node", "--watch", "--import", "tsx"/);
  t.match(dev, /^ENV INGRESS_HOST=0\.0\.0\.0 PROCESSOR_HOST=0\.0\.0\.0 MONITORING_HOST=0\.0\.0\.0$/m, 'so do they in the development image');
});

t.test('.dockerignore keeps what the build needs and drops the rest', async (t) => {
  const rules = read('.dockerignore')
    .split('\n')
    .map((line) => line.trim())
    .filter((line) => line !== '' && !line.startsWith('#'));
  const excluded = (path: string) => {
    let out = false;
    for (const rule of rules) {
      const negate = rule.startsWith('!');
      const pattern = (negate ? rule.slice(1) : rule).replace(/\/$/, '');
      const regex = new RegExp(
        `^${pattern
          .replace(/[.+^$()|[\]\\]/g, '\\$&')
          .replace(/\*\*\/?/g, '\u0000')
          .replace(/\*/g, '[^/]*')
          .replace(/\?/g, '[^/]')
          .replace(/\u0000/g, '(?:.*/)?')}(?:/.*)?$`,
      );
      if (regex.test(path)) out = !negate;
    }
    return out;
  };
  for (const path of [
    'package.json',
    'package-lock.json',
    'tsconfig.json',
    'tsconfig.build.json',
    'core/config.ts',
    'ingress/main.ts',
    'topology/main.ts',
    'monitoring/main.ts',
    'schemas/avro',
    'sinks/postgres/migrations/0001_companies.up.sql',
    'deployments/build-assets.ts',
    'deployments/local/servers.ts',
    'monitoring/public',
  ]) {
    t.notOk(excluded(path), `${path} reaches the build`);
  }
  for (const path of [
    'node_modules/x',
    'dist/x',
    '.git/HEAD',
    '.stack/dev',
    '.env',
    'deployments/test/.env',
    'deployments/k8s/ingress.yaml',
    'docker-compose.yml',
  ]) {
    t.ok(excluded(path), `${path} does not`);
  }
});

// ---------------------------------------------------------------------------------------
// Kubernetes

interface Manifest {
  file: string;
  doc: Json;
}

const manifests: Manifest[] = k8sFiles
  .filter((file) => !file.endsWith('kustomization.yaml'))
  .flatMap((file) =>
    parseAllDocuments(read(file))
      .map((document) => document.toJS())
      .filter((doc) => doc !== null && doc !== undefined)
      .map((doc) => ({ file, doc })),
  );
const byKind = (kind: string) => manifests.filter((manifest) => manifest.doc.kind === kind).map((manifest) => manifest.doc);
const nameOf = (doc: Json) => `${doc.kind}/${doc.metadata?.name}`;

t.test('every Kubernetes manifest validates against the Kubernetes schema (kubernetes-models)', async (t) => {
  t.ok(manifests.length >= 12, `${manifests.length} manifests in ${k8sFiles.join(', ')}`);
  for (const { file, doc } of manifests) {
    const [group, version] = String(doc.apiVersion).includes('/') ? String(doc.apiVersion).split('/') : ['', String(doc.apiVersion)];
    const module = (await import(`kubernetes-models/${group === '' ? '' : `${group}/`}${version}`)) as Record<string, any>;
    const Model = module[doc.kind];
    t.ok(Model, `${file}: ${doc.apiVersion} ${doc.kind} is a Kubernetes kind`);
    if (Model === undefined) continue;
    let problem: string | undefined;
    try {
      new Model(doc).validate();
    } catch (error) {
      problem = (error as Error).message;
    }
    t.equal(problem, undefined, `${file}: ${nameOf(doc)} is valid`);
  }
  // The validator does catch mistakes.
  const { Deployment } = (await import('kubernetes-models/apps/v1')) as Record<string, any>;
  t.throws(() => new Deployment({ metadata: { name: 'x' }, spec: { replicas: 'two', selector: {}, template: {} } }).validate());
});

t.test('every Kubernetes manifest has only the fields of its kind (kubernetes-models types)', async (t) => {
  // The OpenAPI schemas allow unknown fields (a typo such as `readinesProbe` would pass):
  // type-check each manifest as an object literal of its kind's interface instead.
  const files = new Map<string, string>();
  manifests.forEach(({ doc }, index) => {
    const [group, version] = String(doc.apiVersion).includes('/') ? String(doc.apiVersion).split('/') : ['', String(doc.apiVersion)];
    const from = `kubernetes-models/${group === '' ? '' : `${group}/`}${version}`;
    files.set(
      join(root, `__manifest_${index}.ts`),
      `import type { I${doc.kind} } from '${from}';\nexport const manifest: I${doc.kind} = ${JSON.stringify(doc, null, 1)};\n`,
    );
  });
  const options: ts.CompilerOptions = {
    module: ts.ModuleKind.NodeNext,
    moduleResolution: ts.ModuleResolutionKind.NodeNext,
    target: ts.ScriptTarget.ES2022,
    strict: true,
    noEmit: true,
    skipLibCheck: true,
    types: [],
  };
  const host = ts.createCompilerHost(options);
  const getSourceFile = host.getSourceFile.bind(host);
  host.getSourceFile = (name, language, ...rest) =>
    files.has(name) ? ts.createSourceFile(name, files.get(name)!, language) : getSourceFile(name, language, ...rest);
  const fileExists = host.fileExists.bind(host);
  host.fileExists = (name) => files.has(name) || fileExists(name);
  const readFile = host.readFile.bind(host);
  host.readFile = (name) => files.get(name) ?? readFile(name);
  const program = ts.createProgram([...files.keys()], options, host);
  const diagnostics = ts.getPreEmitDiagnostics(program).filter((diagnostic) => diagnostic.file === undefined || files.has(diagnostic.file.fileName));
  const messages = diagnostics.map((diagnostic) => {
    const index = Number(/__manifest_(\d+)\.ts$/.exec(diagnostic.file?.fileName ?? '')?.[1]);
    const manifest = manifests[index];
    return `${manifest?.file} ${manifest ? nameOf(manifest.doc) : ''}: ${ts.flattenDiagnosticMessageText(diagnostic.messageText, '\n')}`;
  });
  t.same(messages, [], 'no unknown or mistyped field');
});

function podSpecs(): Array<{ deployment: Json; spec: Json }> {
  return byKind('Deployment').map((deployment) => ({ deployment, spec: deployment.spec.template.spec }));
}

function kindOfDeployment(deployment: Json): ServiceKind {
  const kind = deployment.spec.template.metadata.labels['app.kubernetes.io/name'];
  if (!['ingress', 'processor', 'monitoring'].includes(kind)) throw new Error(`unknown service ${kind}`);
  return kind as ServiceKind;
}

const secretExample = byKind('Secret').find((secret) => secret.metadata.name === 'etl-credentials');

function containerEnv(t: Test, container: Json, where: string): Record<string, string> {
  const env: Record<string, string> = {};
  for (const source of container.envFrom ?? []) {
    if (source.configMapRef) {
      const configMap = byKind('ConfigMap').find((map) => map.metadata.name === source.configMapRef.name);
      t.ok(configMap, `${where}: ConfigMap ${source.configMapRef.name} exists`);
      Object.assign(env, configMap?.data ?? {});
    } else {
      t.fail(`${where}: only ConfigMaps via envFrom (credentials come one by one from the Secret)`);
    }
  }
  for (const variable of container.env ?? []) {
    const secretRef = variable.valueFrom?.secretKeyRef;
    if (secretRef !== undefined) {
      t.equal(secretRef.name, secretExample?.metadata.name, `${where}: ${variable.name} from the credentials Secret`);
      t.ok(secretRef.key in (secretExample?.stringData ?? {}), `${where}: ${variable.name}: the Secret example has key ${secretRef.key}`);
      env[variable.name] = secretExample?.stringData?.[secretRef.key] ?? '';
    } else {
      t.type(variable.value, 'string', `${where}: ${variable.name} has a value`);
      env[variable.name] = variable.value;
    }
  }
  return env;
}

t.test('Kubernetes: the services get only variables they read, credentials from the Secret', async (t) => {
  t.ok(secretExample, 'secret.example.yaml holds the Secret etl-credentials');
  t.equal(manifests.find((manifest) => manifest.doc.kind === 'Secret')?.file, 'deployments/k8s/secret.example.yaml');
  for (const value of Object.values<string>(secretExample?.stringData ?? {})) t.match(value, /REPLACE_ME/, 'placeholder values only');
  for (const { doc } of manifests.filter((manifest) => manifest.doc.kind === 'ConfigMap')) {
    for (const key of Object.keys(doc.data ?? {}))
      t.notMatch(key, /PASSWORD|SECRET|TOKEN|ACCESS_KEY/, `ConfigMap ${doc.metadata.name}: ${key} is no credential`);
  }
  const deployments = podSpecs();
  t.same(deployments.map(({ deployment }) => kindOfDeployment(deployment)).sort(), ['ingress', 'monitoring', 'processor']);
  for (const { deployment, spec } of deployments) {
    const kind = kindOfDeployment(deployment);
    for (const container of spec.containers) {
      checkServiceEnv(t, kind, `${nameOf(deployment)} ${container.name}`, containerEnv(t, container, `${nameOf(deployment)} ${container.name}`));
    }
    for (const container of spec.initContainers ?? []) {
      t.equal(container.name, 'migrate', 'the only init container runs the migrations');
      t.same(container.command, ['node', 'dist/sinks/postgres/migrate-cli.js', 'up']);
      checkServiceEnv(t, 'migrate', `${nameOf(deployment)} ${container.name}`, containerEnv(t, container, `${nameOf(deployment)} ${container.name}`));
    }
  }
});

t.test('Kubernetes: probes, resources, non-root, scraping, services, budgets', async (t) => {
  const services = byKind('Service');
  const budgets = byKind('PodDisruptionBudget');
  const matches = (selector: Record<string, string>, labels: Record<string, string>) => Object.entries(selector).every(([key, value]) => labels[key] === value);
  for (const { deployment, spec } of podSpecs()) {
    const name = nameOf(deployment);
    const kind = kindOfDeployment(deployment);
    const labels = deployment.spec.template.metadata.labels;
    t.ok(matches(deployment.spec.selector.matchLabels, labels), `${name}: its selector matches its pods`);
    t.equal(spec.securityContext?.runAsNonRoot, true, `${name}: runAsNonRoot`);
    t.ok(spec.securityContext?.runAsUser > 0, `${name}: a non-root uid`);
    t.equal(spec.automountServiceAccountToken, false, `${name}: no API token (it never calls the API)`);
    for (const container of [...spec.containers, ...(spec.initContainers ?? [])]) {
      const where = `${name} ${container.name}`;
      t.equal(container.securityContext?.readOnlyRootFilesystem, true, `${where}: read-only root filesystem`);
      t.equal(container.securityContext?.allowPrivilegeEscalation, false, `${where}: no privilege escalation`);
      t.same(container.securityContext?.capabilities?.drop, ['ALL'], `${where}: no capabilities`);
      t.ok(container.resources?.requests?.cpu && container.resources?.requests?.memory, `${where}: requests`);
      t.ok(container.resources?.limits?.memory, `${where}: a memory limit`);
      t.match(container.image, new RegExp(`^etl-ingest/${kind}:`), `${where}: the ${kind} image`);
    }
    const [container] = spec.containers;
    const port = container.ports.find((p: Json) => p.name === 'http');
    const defaults: Record<string, number> = { ingress: 3000, processor: 3001, monitoring: 3002 };
    t.equal(port?.containerPort, defaults[kind], `${name}: listens on ${defaults[kind]}`);
    const env = containerEnv(t, container, name);
    const portVariable = { ingress: 'INGRESS_PORT', processor: 'PROCESSOR_PORT', monitoring: 'MONITORING_PORT' }[kind as 'ingress'];
    t.equal(Number(env[portVariable]), port?.containerPort, `${name}: ${portVariable} is the container port`);
    t.equal(container.livenessProbe?.httpGet?.path, '/liveness', `${name}: liveness probe`);
    t.equal(container.readinessProbe?.httpGet?.path, '/readiness', `${name}: readiness probe`);
    t.equal(container.livenessProbe?.httpGet?.port, 'http');
    t.equal(container.readinessProbe?.httpGet?.port, 'http');
    const annotations = deployment.spec.template.metadata.annotations ?? {};
    t.equal(annotations['prometheus.io/scrape'], 'true', `${name}: scraped`);
    t.equal(Number(annotations['prometheus.io/port']), port?.containerPort, `${name}: scrape port`);
    t.equal(annotations['prometheus.io/path'], '/metrics');
    const service = services.find((candidate) => matches(candidate.spec.selector, labels));
    t.ok(service, `${name}: a Service selects its pods`);
    t.equal(service?.spec.ports[0].targetPort, 'http');
    t.ok(
      budgets.find((budget) => matches(budget.spec.selector.matchLabels, labels)),
      `${name}: a PodDisruptionBudget`,
    );
  }
  const [hpa, ...others] = byKind('HorizontalPodAutoscaler');
  t.equal(others.length, 0, 'one autoscaler');
  t.equal(hpa.spec.scaleTargetRef.kind, 'Deployment');
  t.equal(hpa.spec.scaleTargetRef.name, 'processor', 'for the processor');
  const common = byKind('ConfigMap').find((map) => map.metadata.name === 'etl-common');
  const configured = loadConfig({ PIPELINE_PARTITIONS: common?.data?.PIPELINE_PARTITIONS }).pipeline.partitions;
  t.equal(common?.data?.PIPELINE_PARTITIONS, String(configured), 'etl-common sets PIPELINE_PARTITIONS, a value the config module accepts');
  t.ok(Number.isSafeInteger(hpa.spec.maxReplicas), 'maxReplicas is an integer in processor.yaml (a replacement keeps the type it finds)');
  t.equal(hpa.spec.maxReplicas, configured, 'at most one replica per partition: processor.yaml agrees with etl-common');
  t.equal(rendered(hpa).spec.maxReplicas, configured, 'and kustomize sets it from etl-common');
  t.equal(rendered(hpa, { PIPELINE_PARTITIONS: '6' }).spec.maxReplicas, 6, 'PIPELINE_PARTITIONS=6 in etl-common gives maxReplicas 6');
  t.ok(hpa.spec.minReplicas <= hpa.spec.maxReplicas);
});

/**
 * A manifest as `kubectl apply -k` would send it after kustomization.yaml's replacements, with
 * etl-common's data overridden by `common`. Like kustomize, a replacement into a scalar copies
 * only the value and keeps the target's type: into an integer field a ConfigMap string becomes
 * that integer, and one that is not an integer fails the build.
 */
function rendered(target: Json, common: Record<string, string> = {}): Json {
  const kustomization = parseYaml(read('deployments/k8s/kustomization.yaml'));
  const result = structuredClone(target);
  const pathOf = (fieldPath: string) => fieldPath.split('.');
  const get = (doc: Json, path: string[]) => path.reduce((node, key) => node?.[key], doc);
  for (const replacement of (kustomization.replacements ?? []) as Json[]) {
    const sourceDoc = manifests
      .map((manifest) => manifest.doc)
      .find((doc) => doc.kind === replacement.source.kind && doc.metadata?.name === replacement.source.name);
    if (sourceDoc === undefined) throw new Error(`replacement source ${replacement.source.kind}/${replacement.source.name} does not exist`);
    const source = structuredClone(sourceDoc);
    if (source.kind === 'ConfigMap' && source.metadata.name === 'etl-common') Object.assign(source.data, common);
    const value = get(source, pathOf(replacement.source.fieldPath));
    if (value === undefined) throw new Error(`replacement source field ${replacement.source.fieldPath} does not exist`);
    for (const { select, fieldPaths } of replacement.targets as Json[]) {
      if (select.kind !== result.kind || select.name !== result.metadata?.name) continue;
      for (const fieldPath of fieldPaths as string[]) {
        const path = pathOf(fieldPath);
        const parent = get(result, path.slice(0, -1));
        const current = parent?.[path.at(-1)!];
        if (current === undefined) throw new Error(`replacement target field ${fieldPath} of ${nameOf(result)} does not exist`);
        if (typeof current === 'number' && !/^-?\d+$/.test(String(value)))
          throw new Error(`cannot decode ${JSON.stringify(value)} as an integer for ${fieldPath}`);
        parent[path.at(-1)!] = typeof current === 'number' ? Number(value) : String(value);
      }
    }
  }
  return result;
}

t.test('Kubernetes: the Ingress takes import bodies of 256 MiB', async (t) => {
  const [ingress] = byKind('Ingress');
  const size = String(ingress.metadata.annotations['nginx.ingress.kubernetes.io/proxy-body-size']);
  const match = /^(\d+)([kmg]?)$/i.exec(size);
  t.ok(match, `proxy-body-size ${size} is an nginx size`);
  const bytes = Number(match?.[1]) * ({ '': 1, k: 1024, m: 1024 ** 2, g: 1024 ** 3 } as Record<string, number>)[(match?.[2] ?? '').toLowerCase()]!;
  const maxBody = Number(byKind('ConfigMap').find((map) => map.metadata.name === 'etl-ingress')?.data.INGRESS_MAX_BODY_BYTES ?? 256 * 1024 * 1024);
  t.ok(bytes >= 256 * 1024 * 1024, `${size} >= 256 MiB`);
  t.ok(bytes >= maxBody, `${size} >= INGRESS_MAX_BODY_BYTES (${maxBody})`);
  t.equal(ingress.metadata.annotations['nginx.ingress.kubernetes.io/proxy-request-buffering'], 'off', 'bodies are streamed through');
  const backends = ingress.spec.rules.flatMap((rule: Json) => rule.http.paths.map((path: Json) => path.backend.service.name));
  t.same([...new Set(backends)], ['ingress'], 'to the ingress Service');
  t.ok(ingress.spec.rules.some((rule: Json) => rule.http.paths.some((path: Json) => path.path === '/import' && path.pathType === 'Prefix')));
});

t.test('Kubernetes: kustomization.yaml lists every manifest but the Secret example', async (t) => {
  const kustomization = parseYaml(read('deployments/k8s/kustomization.yaml'));
  t.equal(kustomization.kind, 'Kustomization');
  const expected = k8sFiles.map((file) => relative('deployments/k8s', file)).filter((file) => file !== 'kustomization.yaml' && file !== 'secret.example.yaml');
  t.same([...kustomization.resources].sort(), expected.sort());
  const images = (kustomization.images as Json[]).map((image) => image.name).sort();
  t.same(images, ['etl-ingest/ingress', 'etl-ingest/monitoring', 'etl-ingest/processor']);
});

// ---------------------------------------------------------------------------------------
// Prometheus and Grafana

const keywords = new Set(['and', 'or', 'unless', 'bool', 'offset', 'inf', 'nan', 'Inf', 'NaN', 'atan2']);

/** The metric names a PromQL expression reads. */
function promqlMetrics(expr: string): string[] {
  const stripped = expr
    .replace(/"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|`[^`]*`/g, '""')
    .replace(/\{[^}]*\}/g, ' ')
    .replace(/\[[^\]]*\]/g, ' ')
    .replace(/\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)/g, ' ')
    .replace(/\$\{?\w+\}?/g, ' ');
  const names: string[] = [];
  for (const match of stripped.matchAll(/[a-zA-Z_:][a-zA-Z0-9_:]*/g)) {
    const before = stripped[match.index - 1] ?? ' ';
    if (/[0-9.]/.test(before)) continue; // 1e3
    if (/^\s*\(/.test(stripped.slice(match.index + match[0].length))) continue; // a function
    if (keywords.has(match[0])) continue;
    names.push(match[0]);
  }
  return names;
}

function dashboardQueries(dashboard: Json): string[] {
  const exprs: string[] = [];
  const visit = (panels: Json[]) => {
    for (const panel of panels ?? []) {
      for (const target of panel.targets ?? []) if (target.expr) exprs.push(target.expr);
      visit(panel.panels);
    }
  };
  visit(dashboard.panels);
  for (const variable of dashboard.templating?.list ?? []) {
    const query = typeof variable.query === 'string' ? variable.query : variable.query?.query;
    const metric = /label_values\(\s*([a-zA-Z_:][a-zA-Z0-9_:]*)\s*,/.exec(query ?? '')?.[1];
    if (metric) exprs.push(metric);
  }
  return exprs;
}

async function declaredMetrics(): Promise<Set<string>> {
  const registries = [createIngressMetrics().registry, createMonitoringMetrics().registry];
  const processor = new Registry();
  createStageMetrics(processor);
  registries.push(processor);
  const names = new Set<string>(['up']); // written by Prometheus for every target
  for (const registry of registries) {
    for (const metric of await registry.getMetricsAsJSON()) {
      names.add(metric.name);
      if (String(metric.type) === 'histogram') for (const suffix of ['_bucket', '_sum', '_count']) names.add(`${metric.name}${suffix}`);
      if (String(metric.type) === 'summary') for (const suffix of ['_sum', '_count']) names.add(`${metric.name}${suffix}`);
    }
  }
  return names;
}

t.test('PromQL metric names are found', async (t) => {
  t.same(promqlMetrics('histogram_quantile(0.95, sum by (le, route) (rate(ingress_http_request_duration_seconds_bucket{route="x"}[$__rate_interval])))'), [
    'ingress_http_request_duration_seconds_bucket',
  ]);
  t.same(promqlMetrics('time() - max(a_b) * 1e3 / on(x) group_left(y) c and d offset 5m'), ['a_b', 'c', 'd']);
});

t.test('the Grafana dashboard only queries metrics the services declare', async (t) => {
  const dashboard = JSON.parse(read('deployments/grafana/dashboards/pipeline.json'));
  const declared = await declaredMetrics();
  const queries = dashboardQueries(dashboard);
  t.ok(queries.length >= 20, `${queries.length} queries`);
  const used = new Set(queries.flatMap(promqlMetrics));
  t.same(
    [...used].filter((name) => !declared.has(name)),
    [],
    'no unknown metric',
  );
  for (const needed of [
    'ingress_http_requests_total',
    'ingress_http_request_duration_seconds_bucket',
    'ingress_bytes_ingested_total',
    'ingress_events_produced_total',
    'processor_records_in_total',
    'processor_records_out_total',
    'processor_errors_total',
    'processor_batch_size_bucket',
    'processor_consumer_lag',
    'monitoring_files_received_by_tenant_total',
    'monitoring_records_loaded_by_tenant_total',
    'monitoring_import_latency_seconds_bucket',
  ]) {
    t.ok(used.has(needed), `the dashboard shows ${needed}`);
  }
  const datasource = parseYaml(read('deployments/grafana/provisioning/datasources/prometheus.yml'));
  const uid = datasource.datasources[0].uid;
  const ids = new Set<number>();
  const visit = (panels: Json[]) => {
    for (const panel of panels ?? []) {
      t.notOk(ids.has(panel.id), `panel id ${panel.id} is unique`);
      ids.add(panel.id);
      if (panel.type !== 'row') t.equal(panel.datasource?.uid, uid, `${panel.title}: the provisioned data source`);
      visit(panel.panels);
    }
  };
  visit(dashboard.panels);
  const provider = parseYaml(read('deployments/grafana/provisioning/dashboards/pipeline.yml'));
  const mount = (compose.get('docker-compose.yml')!.services.grafana.volumes as string[]).find((volume) =>
    volume.startsWith('./deployments/grafana/dashboards:'),
  );
  t.equal(mount?.split(':')[1], provider.providers[0].options.path, 'Grafana loads the dashboards from where Compose mounts them');
});

t.test('Prometheus scrapes every service on its port', async (t) => {
  const config = parseYaml(read('deployments/prometheus/prometheus.yml'));
  const services = compose.get('docker-compose.yml')!.services as Record<string, Json>;
  const ports: Record<string, string> = { ingress: 'INGRESS_PORT', processor: 'PROCESSOR_PORT', monitoring: 'MONITORING_PORT' };
  for (const [service, variable] of Object.entries(ports)) {
    const job = (config.scrape_configs as Json[]).find((candidate) => candidate.job_name === service);
    t.ok(job, `a ${service} job`);
    const sd = job?.dns_sd_configs?.[0];
    t.same(sd?.names, [service], `${service}: every replica through Docker's DNS`);
    t.equal(sd?.port, Number(envOfService(services[service])[variable]), `${service}: port ${variable}`);
    t.equal(job?.metrics_path, '/metrics');
  }
});

t.test('a new KRaft cluster id never starts with "-" (the storage tool would take it for an option)', async (t) => {
  // 0xf8 as the first byte encodes as "-" in base64url: the first draw is refused, the second kept.
  const draws = [Buffer.alloc(16, 0xf8), Buffer.alloc(16, 0x41)];
  const id = newKafkaClusterId(() => draws.shift()!);
  t.equal(id, Buffer.alloc(16, 0x41).toString('base64url'));
  t.equal(draws.length, 0, 'it drew again');
  const ids = Array.from({ length: 2000 }, () => newKafkaClusterId());
  t.same(
    ids.filter((random) => !/^[A-Za-z0-9_][A-Za-z0-9_-]{21}$/.test(random)),
    [],
    '2,000 random ids: 22 base64url characters, none starting with "-"',
  );
});

t.test('make up runs PROCESSOR_REPLICAS processor replicas, replica i on PROCESSOR_PORT + 10·i', async (t) => {
  const portsOf = (env: NodeJS.ProcessEnv) => servicesOf(env).map((service) => [service.name, service.port, service.env.PROCESSOR_PORT ?? null]);
  t.same(
    portsOf({}),
    [
      ['ingress', 3000, null],
      ['processor-0', 3001, '3001'],
      ['processor-1', 3011, '3011'],
      ['monitoring', 3002, null],
    ],
    'two replicas by default, both cores busy',
  );
  t.same(
    portsOf({ PROCESSOR_REPLICAS: '3', PROCESSOR_PORT: '4001' }).filter(([name]) => String(name).startsWith('processor')),
    [
      ['processor-0', 4001, '4001'],
      ['processor-1', 4011, '4011'],
      ['processor-2', 4021, '4021'],
    ],
  );
  t.throws(() => servicesOf({ PROCESSOR_REPLICAS: 'two' }), /PROCESSOR_REPLICAS/, 'a bad count is refused by name');
  t.throws(() => servicesOf({ PROCESSOR_REPLICAS: '0' }), /PROCESSOR_REPLICAS/);
  t.throws(() => servicesOf({ PROCESSOR_REPLICAS: '2', MONITORING_PORT: '3011' }), /port 3011 is taken twice/, 'a replica port that clashes is refused');
});

t.test("the dev profile's registry: its own management port, and a Java 21+ found, not assumed", async (t) => {
  t.equal(stackPorts({}).registryManagement, 8082, "beside the registry, off MinIO's 9000 (Apicurio 3's default)");
  t.equal(stackPorts({ SCHEMA_REGISTRY_URL: 'http://127.0.0.1:18081/apis/ccompat/v7' }).registryManagement, 18082);
  t.equal(stackPorts({ REGISTRY_MANAGEMENT_PORT: '9999' }).registryManagement, 9999);
  t.equal(stackPaths('dev', {}).profile, 'dev', 'the paths say whose registry to start');

  t.equal(javaMajor('openjdk version "25.0.3" 2026-04-21 LTS'), 25);
  t.equal(javaMajor('openjdk version "17.0.15" 2025-04-15'), 17);
  t.equal(javaMajor('openjdk version "21" 2023-09-19'), 21);
  t.equal(javaMajor('java version "1.8.0_392"'), 8, 'the old 1.x numbering');
  t.equal(javaMajor('command not found'), undefined);

  const jvm = mkdtempSync(join(tmpdir(), 'etl-jvm-'));
  t.teardown(() => rmSync(jvm, { recursive: true, force: true }));
  const versionOf: Record<string, string> = {};
  const jdk = (dir: string, version: string) => {
    mkdirSync(join(dir, 'bin'), { recursive: true });
    writeFileSync(join(dir, 'bin', 'java'), '');
    versionOf[join(dir, 'bin', 'java')] = `openjdk version "${version}"`;
  };
  jdk(join(jvm, 'java-17-openjdk-amd64'), '17.0.15');
  jdk(join(jvm, 'temurin-25-jdk-amd64'), '25.0.3');
  jdk(join(jvm, 'zulu-21'), '21.0.5');
  const home21 = join(jvm, 'elsewhere', 'jdk-21');
  jdk(home21, '21.0.1');
  versionOf.java = 'openjdk version "17.0.15"';
  const probe = (java: string) => versionOf[java];

  t.same(
    findJava({ env: {}, jvmDirs: [jvm], probe }),
    { java: join(jvm, 'temurin-25-jdk-amd64', 'bin', 'java'), major: 25, source: join(jvm, 'temurin-25-jdk-amd64') },
    'PATH has 17: the newest installed JDK',
  );
  t.equal(
    findJava({ env: { JAVA_HOME_21_X64: home21 }, jvmDirs: [jvm], probe }).java,
    join(home21, 'bin', 'java'),
    'a JAVA_HOME_<n> the machine names comes first',
  );
  t.equal(findJava({ env: {}, jvmDirs: [jvm], probe, minimumMajor: 17 }).java, 'java', 'java on PATH when it is new enough');
  t.throws(
    () => findJava({ env: { REGISTRY_JAVA_HOME: join(jvm, 'java-17-openjdk-amd64') }, jvmDirs: [jvm], probe }),
    /Java 21 or newer is needed .*looked at: REGISTRY_JAVA_HOME=\S+java-17-openjdk-amd64 \(Java 17\)\. .*REGISTRY_JAVA_HOME/,
    'REGISTRY_JAVA_HOME too old: refused by name, nothing else tried',
  );
  t.throws(
    () => findJava({ env: { JAVA_HOME: '/nowhere' }, jvmDirs: [join(jvm, 'java-17-openjdk-amd64', '..', 'none')], probe }),
    /looked at: JAVA_HOME=\/nowhere \(no runnable java\), java on PATH \(Java 17\), \S+none \(no JDK\)/,
    'none: every place looked at is named with what it held',
  );
});
