/**
 * The real servers of the local stack, run natively (no Docker engine needed): a 3-node
 * KRaft Kafka cluster from Apache Kafka's own jars, Apicurio Registry (Confluent-compatible
 * API: in memory for the itest profile, in PostgreSQL for dev), MinIO built from source with
 * `go install`, and a PostgreSQL cluster owned by the stack. Versions are pinned here; downloads
 * are cached outside the checkout.
 */
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmodSync, closeSync, existsSync, mkdirSync, openSync, readdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { homedir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadConfig } from '../../core/config.js';

export const versions = {
  /** Apache Kafka: see README "Kafka version" for why this line. */
  kafka: '4.1.1',
  /** Apicurio Registry 2.6.x runs on Java 17 and serves /apis/ccompat/v7: the itest profile's, in memory. */
  apicurio: '2.6.13.Final',
  /**
   * Apicurio Registry 3.x: the dev profile's, schemas in PostgreSQL. Maven Central serves one
   * build for every storage (2.6's SQL build is not there); it needs Java 21 or newer.
   */
  apicurioSql: '3.3.3',
  /** MinIO tags releases as RELEASE.<date>, so `go install` needs this pseudo-version. */
  minio: 'v0.0.0-20260212201848-7aac2a2c5b7c',
  /** slf4j 1.7 binding for Kafka's log4j2 (kafka_2.13's pom leaves the binding to the distribution). */
  log4jSlf4j: '2.24.3',
} as const;

const here = dirname(fileURLToPath(import.meta.url));
export const repoRoot = resolve(here, '..', '..');

export type Profile = 'itest' | 'dev';

export interface StackPaths {
  /** Decides which registry runs: the dev profile's keeps its schemas (see startRegistry). */
  profile: Profile;
  cache: string;
  data: string;
  logs: string;
}

export function stackPaths(profile: Profile, env: NodeJS.ProcessEnv = process.env): StackPaths {
  const cache = env.ETL_STACK_CACHE ?? join(homedir(), '.cache', 'etl-stack');
  const data = join(env.ETL_STACK_DATA ?? join(repoRoot, '.stack'), profile);
  return { profile, cache, data, logs: join(data, 'logs') };
}

export interface Ports {
  kafka: [number, number, number];
  kafkaController: [number, number, number];
  registry: number;
  /** Apicurio 3's management interface (health, metrics); its own default, 9000, is MinIO's. */
  registryManagement: number;
  minio: number;
  minioConsole: number;
  postgres: number;
}

function port(env: NodeJS.ProcessEnv, name: string, fallback: number): number {
  const value = env[name];
  return value === undefined || value === '' ? fallback : Number(value);
}

/** The stack's ports; each overridable by env, defaults matching core/config.ts. */
export function stackPorts(env: NodeJS.ProcessEnv = process.env): Ports {
  const brokers = (env.KAFKA_BROKERS ?? '127.0.0.1:9092,127.0.0.1:9093,127.0.0.1:9094').split(',').map((broker) => Number(broker.trim().split(':')[1]));
  if (brokers.length !== 3 || brokers.some((p) => !Number.isInteger(p))) {
    throw new Error(`KAFKA_BROKERS must name the 3 local brokers as 127.0.0.1:<port>, got ${env.KAFKA_BROKERS}`);
  }
  const kafka = brokers as [number, number, number];
  const registry = Number(new URL(env.SCHEMA_REGISTRY_URL ?? 'http://127.0.0.1:8081').port || 80);
  return {
    kafka,
    kafkaController: kafka.map((p) => p + 100) as [number, number, number],
    registry,
    registryManagement: port(env, 'REGISTRY_MANAGEMENT_PORT', registry + 1),
    minio: Number(new URL(env.S3_ENDPOINT ?? 'http://127.0.0.1:9000').port || 80),
    minioConsole: port(env, 'MINIO_CONSOLE_PORT', 9001),
    postgres: port(env, 'PGPORT', 5433),
  };
}

// ---------------------------------------------------------------------------------------
// Helpers

export function log(message: string): void {
  process.stderr.write(`[stack] ${message}\n`);
}

function run(command: string, args: string[], options: { cwd?: string; env?: NodeJS.ProcessEnv } = {}): void {
  const result = spawnSync(command, args, { stdio: ['ignore', 'inherit', 'inherit'], ...options });
  if (result.status !== 0) {
    throw new Error(`${command} ${args.join(' ')} failed with ${result.status ?? result.signal}`);
  }
}

function has(command: string): boolean {
  return spawnSync('sh', ['-c', `command -v ${command}`], { stdio: 'ignore' }).status === 0;
}

const isRoot = process.getuid?.() === 0;

function portOpen(portNumber: number): Promise<boolean> {
  return new Promise((resolvePromise) => {
    const socket = connect({ host: '127.0.0.1', port: portNumber });
    socket.setTimeout(500);
    socket.once('connect', () => {
      socket.destroy();
      resolvePromise(true);
    });
    socket.once('error', () => resolvePromise(false));
    socket.once('timeout', () => {
      socket.destroy();
      resolvePromise(false);
    });
  });
}

export async function waitFor(what: string, check: () => Promise<boolean>, timeoutMs = 120_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await check().catch(() => false)) return;
    await new Promise((r) => setTimeout(r, 500));
  }
  throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
}

async function httpOk(url: string): Promise<boolean> {
  const response = await fetch(url, { signal: AbortSignal.timeout(2000) });
  return response.ok;
}

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** A server process started detached, tracked by a pid file in the profile's data folder. */
export class ManagedProcess {
  constructor(
    readonly name: string,
    readonly paths: StackPaths,
  ) {}

  get pidFile(): string {
    return join(this.paths.data, 'pids', `${this.name}.pid`);
  }

  get logFile(): string {
    return join(this.paths.logs, `${this.name}.log`);
  }

  pid(): number | undefined {
    if (!existsSync(this.pidFile)) return undefined;
    const pid = Number(readFileSync(this.pidFile, 'utf8').trim());
    return Number.isInteger(pid) && pidAlive(pid) ? pid : undefined;
  }

  start(command: string, args: string[], env: NodeJS.ProcessEnv = {}, cwd?: string): void {
    if (this.pid() !== undefined) {
      log(`${this.name} already running (pid ${this.pid()})`);
      return;
    }
    mkdirSync(dirname(this.pidFile), { recursive: true });
    mkdirSync(this.paths.logs, { recursive: true });
    const out = openSync(this.logFile, 'a');
    const child = spawn(command, args, {
      detached: true,
      stdio: ['ignore', out, out],
      env: { ...process.env, ...env },
      cwd,
    });
    closeSync(out);
    if (child.pid === undefined) throw new Error(`could not start ${this.name}`);
    writeFileSync(this.pidFile, String(child.pid));
    child.unref();
    log(`${this.name} started (pid ${child.pid}, log ${this.logFile})`);
  }

  async stop(signal: NodeJS.Signals = 'SIGTERM', timeoutMs = 30_000): Promise<void> {
    const pid = this.pid();
    if (pid === undefined) {
      rmSync(this.pidFile, { force: true });
      return;
    }
    try {
      process.kill(-pid, signal); // the whole process group: java and anything it forked
    } catch {
      process.kill(pid, signal);
    }
    const deadline = Date.now() + timeoutMs;
    while (pidAlive(pid) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 200));
    if (pidAlive(pid)) {
      log(`${this.name} did not stop in ${timeoutMs} ms, killing`);
      try {
        process.kill(-pid, 'SIGKILL');
      } catch {
        process.kill(pid, 'SIGKILL');
      }
    }
    rmSync(this.pidFile, { force: true });
    log(`${this.name} stopped`);
  }
}

// ---------------------------------------------------------------------------------------
// Java: Kafka and Apicurio 2.6 run on the default `java` (17); Apicurio 3 needs 21 or newer

/** The feature release `java -version` reports: 'version "25.0.3"' → 25, 'version "1.8.0_392"' → 8. */
export function javaMajor(versionOutput: string): number | undefined {
  const match = /version "(\d+)(?:\.(\d+))?/.exec(versionOutput);
  if (match === null) return undefined;
  const first = Number(match[1]);
  return first === 1 && match[2] !== undefined ? Number(match[2]) : first;
}

function probeJava(java: string): string | undefined {
  const result = spawnSync(java, ['-version'], { encoding: 'utf8', timeout: 30_000 });
  return result.status === 0 ? `${result.stderr}${result.stdout}` : undefined;
}

export interface JavaRuntime {
  java: string;
  major: number;
  /** Where it was found, as the error message would name it. */
  source: string;
}

export interface FindJavaOptions {
  minimumMajor?: number;
  env?: NodeJS.ProcessEnv;
  /** Folders whose every entry may be a JDK (`<entry>/bin/java`, macOS `<entry>/Contents/Home/bin/java`). */
  jvmDirs?: readonly string[];
  /** The output of `<java> -version`, undefined when it does not run. */
  probe?: (java: string) => string | undefined;
}

/**
 * A Java of at least `minimumMajor`, found rather than assumed at a fixed folder. REGISTRY_JAVA_HOME,
 * when set, is the only one looked at. Otherwise the first that is new enough of JAVA_HOME_<n>…
 * and JAVA_HOME (as CI images set them) and `java` on PATH; failing those, the newest JDK under
 * `jvmDirs`. Throws naming every place looked at and what it held.
 */
export function findJava({
  minimumMajor = 21,
  env = process.env,
  jvmDirs = ['/usr/lib/jvm', '/usr/java', '/opt/java', '/Library/Java/JavaVirtualMachines'],
  probe = probeJava,
}: FindJavaOptions = {}): JavaRuntime {
  const seen: string[] = [];
  const check = (source: string, java: string): JavaRuntime | undefined => {
    const output = probe(java);
    const major = output === undefined ? undefined : javaMajor(output);
    seen.push(`${source} (${major === undefined ? 'no runnable java' : `Java ${major}`})`);
    return major !== undefined && major >= minimumMajor ? { java, major, source } : undefined;
  };
  const explicit = env.REGISTRY_JAVA_HOME;
  if (explicit !== undefined && explicit !== '') {
    const runtime = check(`REGISTRY_JAVA_HOME=${explicit}`, join(explicit, 'bin', 'java'));
    if (runtime !== undefined) return runtime;
  } else {
    const homes = Object.keys(env)
      .filter((name) => /^JAVA_HOME_\d+/.test(name))
      .sort((a, b) => Number(/\d+/.exec(b)![0]) - Number(/\d+/.exec(a)![0]));
    for (const name of [...homes, 'JAVA_HOME']) {
      const home = env[name];
      const runtime = home === undefined || home === '' ? undefined : check(`${name}=${home}`, join(home, 'bin', 'java'));
      if (runtime !== undefined) return runtime;
    }
    const onPath = check('java on PATH', 'java');
    if (onPath !== undefined) return onPath;
    const installed: JavaRuntime[] = [];
    for (const dir of jvmDirs) {
      const javas = (existsSync(dir) ? readdirSync(dir).sort() : [])
        .flatMap((entry) => [join(dir, entry, 'bin', 'java'), join(dir, entry, 'Contents', 'Home', 'bin', 'java')])
        .filter((java) => existsSync(java));
      if (javas.length === 0) seen.push(`${dir} (no JDK)`);
      for (const java of javas) {
        const runtime = check(dirname(dirname(java)).replace(/\/Contents\/Home$/, ''), java);
        if (runtime !== undefined) installed.push(runtime);
      }
    }
    const newest = installed.sort((a, b) => b.major - a.major)[0];
    if (newest !== undefined) return newest;
  }
  throw new Error(
    `Java ${minimumMajor} or newer is needed (Apicurio Registry ${versions.apicurioSql}, the dev profile's registry) and none was found; looked at: ${seen.join(', ')}. Install a JDK ${minimumMajor}+ (e.g. Temurin) or point REGISTRY_JAVA_HOME at one.`,
  );
}

// ---------------------------------------------------------------------------------------
// Installation (idempotent; cached outside the checkout)

function kafkaLibs(paths: StackPaths): string {
  return join(paths.cache, `kafka-${versions.kafka}`, 'libs');
}

function installKafka(paths: StackPaths): void {
  const libs = kafkaLibs(paths);
  if (existsSync(join(libs, `kafka_2.13-${versions.kafka}.jar`))) return;
  log(`installing Apache Kafka ${versions.kafka} jars from Maven Central`);
  const work = join(paths.cache, `kafka-${versions.kafka}`);
  mkdirSync(work, { recursive: true });
  writeFileSync(
    join(work, 'pom.xml'),
    readFileSync(join(here, 'kafka', 'pom.xml'), 'utf8')
      .replace('@KAFKA_VERSION@', versions.kafka)
      .replace('@LOG4J_VERSION@', versions.log4jSlf4j),
  );
  run('mvn', ['-q', '-B', 'dependency:copy-dependencies', `-DoutputDirectory=${libs}`, '-DincludeScope=runtime'], {
    cwd: work,
  });
}

function apicurioHome(paths: StackPaths): string {
  return join(paths.cache, `apicurio-registry-${versions.apicurio}`);
}

function installApicurio(paths: StackPaths): void {
  const home = apicurioHome(paths);
  const runner = join(home, `apicurio-registry-app-${versions.apicurio}-runner.jar`);
  if (existsSync(runner)) return;
  log(`installing Apicurio Registry ${versions.apicurio} from Maven Central`);
  mkdirSync(home, { recursive: true });
  const artifact = `io.apicurio:apicurio-registry-app:${versions.apicurio}:tar.gz:all`;
  run('mvn', ['-q', '-B', 'dependency:copy', `-Dartifact=${artifact}`, `-DoutputDirectory=${home}`]);
  const archive = join(home, `apicurio-registry-app-${versions.apicurio}-all.tar.gz`);
  run('tar', ['xzf', archive, '-C', home]);
  rmSync(archive);
}

function apicurioSqlHome(paths: StackPaths): string {
  return join(paths.cache, `apicurio-registry-${versions.apicurioSql}`);
}

/**
 * Apicurio 3's `tar.gz:all` is a Quarkus fast-jar (quarkus-run.jar beside lib/, app/, quarkus/),
 * unpacked beside the cache and moved in whole: a half-unpacked folder never looks installed.
 */
export function installApicurioSql(paths: StackPaths): string {
  const home = apicurioSqlHome(paths);
  if (existsSync(join(home, 'quarkus-run.jar'))) return home;
  log(`installing Apicurio Registry ${versions.apicurioSql} from Maven Central`);
  const work = `${home}.partial`;
  rmSync(work, { recursive: true, force: true });
  mkdirSync(work, { recursive: true });
  const artifact = `io.apicurio:apicurio-registry-app:${versions.apicurioSql}:tar.gz:all`;
  run('mvn', ['-q', '-B', 'dependency:copy', `-Dartifact=${artifact}`, `-DoutputDirectory=${work}`]);
  const archive = join(work, `apicurio-registry-app-${versions.apicurioSql}-all.tar.gz`);
  run('tar', ['xzf', archive, '-C', work]);
  rmSync(archive);
  if (!existsSync(join(work, 'quarkus-run.jar'))) throw new Error(`${artifact} holds no quarkus-run.jar: not the layout this stack runs`);
  renameSync(work, home);
  return home;
}

function minioBinary(paths: StackPaths): string {
  return join(paths.cache, 'bin', `minio-${versions.minio}`);
}

function installMinio(paths: StackPaths): void {
  const binary = minioBinary(paths);
  if (existsSync(binary)) return;
  log(`building MinIO ${versions.minio} with go install (a few minutes, once)`);
  const gobin = join(paths.cache, 'gobin');
  run('go', ['install', `github.com/minio/minio@${versions.minio}`], {
    env: { ...process.env, GOBIN: gobin, GOFLAGS: '-buildvcs=false' },
  });
  mkdirSync(dirname(binary), { recursive: true });
  run('mv', [join(gobin, 'minio'), binary]);
}

function postgresBin(): string {
  const base = '/usr/lib/postgresql';
  if (existsSync(base)) {
    const majors = readdirSortedDesc(base);
    for (const major of majors) {
      if (existsSync(join(base, major, 'bin', 'postgres'))) return join(base, major, 'bin');
    }
  }
  throw new Error('PostgreSQL server binaries not found under /usr/lib/postgresql');
}

function readdirSortedDesc(dir: string): string[] {
  return execFileSync('ls', [dir], { encoding: 'utf8' })
    .split('\n')
    .filter((entry) => /^\d+$/.test(entry))
    .sort((a, b) => Number(b) - Number(a));
}

function installDebianPackages(): void {
  const missing: string[] = [];
  if (!existsSync('/usr/lib/postgresql') || !has('psql')) missing.push('postgresql');
  if (!has('kcat')) missing.push('kcat');
  if (!has('java')) missing.push('openjdk-17-jre-headless');
  if (!has('mvn')) missing.push('maven');
  // The monitoring page's browser test drives Debian's Chromium with playwright-core.
  if (!existsSync('/usr/bin/chromium')) missing.push('chromium');
  if (missing.length === 0) return;
  if (!isRoot) throw new Error(`missing Debian packages: ${missing.join(' ')} (run as root or install them)`);
  log(`installing Debian packages: ${missing.join(' ')}`);
  run('apt-get', ['update', '-qq']);
  run('apt-get', ['install', '-y', '-qq', '--no-install-recommends', ...missing], {
    env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' },
  });
}

export function install(paths: StackPaths): void {
  installDebianPackages();
  if (!has('go')) throw new Error('the Go toolchain is needed to build MinIO (go install)');
  installKafka(paths);
  installApicurio(paths);
  installApicurioSql(paths);
  try {
    const { java, major } = findJava();
    log(`the dev profile's registry runs on Java ${major}: ${java}`);
  } catch (error) {
    // The itest stack runs without it: only the dev profile's start fails, with this message.
    log(`warning: ${error instanceof Error ? error.message : String(error)}`);
  }
  installMinio(paths);
}

// ---------------------------------------------------------------------------------------
// Kafka: 3 nodes, each broker and controller (KRaft combined mode)

function kafkaNodeDir(paths: StackPaths, node: number): string {
  return join(paths.data, 'kafka', `node-${node}`);
}

function writeKafkaConfig(paths: StackPaths, ports: Ports, node: number): string {
  const dir = kafkaNodeDir(paths, node);
  mkdirSync(dir, { recursive: true });
  const voters = ports.kafkaController.map((p, i) => `${i + 1}@127.0.0.1:${p}`).join(',');
  const brokerPort = ports.kafka[node - 1];
  const controllerPort = ports.kafkaController[node - 1];
  const { partitions } = loadConfig().pipeline;
  const properties = [
    'process.roles=broker,controller',
    `node.id=${node}`,
    `controller.quorum.voters=${voters}`,
    `listeners=PLAINTEXT://127.0.0.1:${brokerPort},CONTROLLER://127.0.0.1:${controllerPort}`,
    `advertised.listeners=PLAINTEXT://127.0.0.1:${brokerPort}`,
    'controller.listener.names=CONTROLLER',
    'inter.broker.listener.name=PLAINTEXT',
    'listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT',
    `log.dirs=${join(dir, 'data')}`,
    // The design's cluster: every topic PIPELINE_PARTITIONS partitions (3 by default), 3 replicas,
    // 2 in sync to accept a write.
    `num.partitions=${partitions}`,
    'default.replication.factor=3',
    'min.insync.replicas=2',
    'offsets.topic.replication.factor=3',
    'offsets.topic.num.partitions=3',
    'transaction.state.log.replication.factor=3',
    'transaction.state.log.min.isr=2',
    'transaction.state.log.num.partitions=3',
    'auto.create.topics.enable=false',
    // Tests start consumer groups often; waiting 3 s for more members only slows them.
    'group.initial.rebalance.delay.ms=0',
    'unclean.leader.election.enable=false',
    'log.segment.bytes=67108864',
    'num.network.threads=2',
    'num.io.threads=4',
  ];
  const file = join(dir, 'server.properties');
  writeFileSync(file, `${properties.join('\n')}\n`);
  writeFileSync(
    join(dir, 'log4j2.properties'),
    [
      'status = warn',
      'appender.console.type = Console',
      'appender.console.name = STDOUT',
      'appender.console.layout.type = PatternLayout',
      'appender.console.layout.pattern = [%d] %p %m (%c)%n',
      'rootLogger.level = INFO',
      'rootLogger.appenderRef.stdout.ref = STDOUT',
      'logger.kafka.name = kafka',
      'logger.kafka.level = WARN',
      'logger.apache.name = org.apache.kafka',
      'logger.apache.level = WARN',
      'logger.started.name = kafka.server.KafkaRaftServer',
      'logger.started.level = INFO',
    ].join('\n'),
  );
  return file;
}

function kafkaJava(paths: StackPaths, node: number, mainClass: string, args: string[], heap = '512m'): string[] {
  const dir = kafkaNodeDir(paths, node);
  return [
    `-Xms${heap}`,
    `-Xmx${heap}`,
    '-server',
    '-XX:+UseG1GC',
    '-XX:MaxGCPauseMillis=20',
    '-XX:InitiatingHeapOccupancyPercent=35',
    '-XX:+ExplicitGCInvokesConcurrent',
    '-Djava.awt.headless=true',
    `-Dlog4j2.configurationFile=${join(dir, 'log4j2.properties')}`,
    `-Dkafka.logs.dir=${join(dir, 'logs')}`,
    '-cp',
    `${kafkaLibs(paths)}/*`,
    mainClass,
    ...args,
  ];
}

/**
 * A KRaft cluster id: 16 random bytes in base64url, like `kafka-storage random-uuid`, and like it
 * never starting with '-' — the storage tool's parser takes such an id for an option and refuses
 * to format (1 start in 64 failed so, in CI).
 */
export function newKafkaClusterId(random: (size: number) => Buffer = randomBytes): string {
  for (;;) {
    const id = random(16).toString('base64url');
    if (!id.startsWith('-')) return id;
  }
}

function startKafka(paths: StackPaths, ports: Ports): void {
  const clusterIdFile = join(paths.data, 'kafka', 'cluster-id');
  mkdirSync(dirname(clusterIdFile), { recursive: true });
  if (!existsSync(clusterIdFile)) {
    writeFileSync(clusterIdFile, newKafkaClusterId());
  }
  const clusterId = readFileSync(clusterIdFile, 'utf8').trim();
  for (const node of [1, 2, 3]) {
    const config = writeKafkaConfig(paths, ports, node);
    if (!existsSync(join(kafkaNodeDir(paths, node), 'data', 'meta.properties'))) {
      // Format once; re-formatting would wipe a dev cluster's data.
      run('java', kafkaJava(paths, node, 'kafka.tools.StorageTool', ['format', `--cluster-id=${clusterId}`, `--config=${config}`], '256m'));
    }
    new ManagedProcess(`kafka-${node}`, paths).start('java', kafkaJava(paths, node, 'kafka.Kafka', [config]));
  }
}

// ---------------------------------------------------------------------------------------
// Apicurio Registry: in memory for itest (thrown away with its data), in PostgreSQL for dev
// (Kafka keeps events that name schema ids: a registry that forgets them makes them unreadable)

/** The database of the dev profile's PostgreSQL that holds the dev registry's schemas. */
export const registryDatabase = 'registry';

function startRegistry(paths: StackPaths, ports: Ports): void {
  if (paths.profile === 'dev') {
    startDevRegistry(paths, ports);
    return;
  }
  const home = apicurioHome(paths);
  new ManagedProcess('registry', paths).start(
    'java',
    [
      '-Xms256m',
      '-Xmx512m',
      '-Dquarkus.http.host=127.0.0.1',
      `-Dquarkus.http.port=${ports.registry}`,
      '-Dquarkus.log.level=WARN',
      '-jar',
      join(home, `apicurio-registry-app-${versions.apicurio}-runner.jar`),
    ],
    { HTTP_PORT: String(ports.registry) },
    home,
  );
}

function startDevRegistry(paths: StackPaths, ports: Ports): void {
  const { postgres } = loadConfig();
  ensurePostgresRole(paths, ports, postgres.user, postgres.password);
  ensurePostgresDatabase(paths, ports, registryDatabase, postgres.user);
  startSqlRegistry(paths, {
    port: ports.registry,
    managementPort: ports.registryManagement,
    database: { host: '127.0.0.1', port: ports.postgres, name: registryDatabase, user: postgres.user, password: postgres.password },
  });
}

export interface SqlRegistryOptions {
  port: number;
  managementPort: number;
  /** An existing PostgreSQL database the user may create tables in; Apicurio creates its schema on first start. */
  database: { host: string; port: number; name: string; user: string; password: string };
  /** A Java 21+; found by findJava() when not given. */
  java?: string;
  /** The ManagedProcess name, so the pid file and log are `<name>.pid` / `<name>.log`. */
  name?: string;
}

/**
 * Apicurio Registry 3 with SQL storage: schemas, ids and each subject's compatibility survive a
 * restart, and so does its id counter, so no id is handed out twice. The dev profile
 * starts it on the stack's ports; the durable-registry test on free ones with a scratch database.
 */
export function startSqlRegistry(
  paths: StackPaths,
  { port, managementPort, database, java = findJava().java, name = 'registry' }: SqlRegistryOptions,
): ManagedProcess {
  const home = apicurioSqlHome(paths);
  if (!existsSync(join(home, 'quarkus-run.jar')))
    throw new Error(`Apicurio Registry ${versions.apicurioSql} is not installed in ${home}: run stack.ts install`);
  const registry = new ManagedProcess(name, paths);
  registry.start(
    java,
    [
      '-Xms256m',
      '-Xmx512m',
      '-Dquarkus.http.host=127.0.0.1',
      `-Dquarkus.http.port=${port}`,
      '-Dquarkus.management.host=127.0.0.1',
      `-Dquarkus.management.port=${managementPort}`,
      // A log line per request would grow the log with every decode of a new id; starts, storage and errors stay.
      '-Dquarkus.http.access-log.enabled=false',
      '-jar',
      join(home, 'quarkus-run.jar'),
    ],
    {
      // Settings through the environment: the password stays out of `ps`.
      APICURIO_STORAGE_KIND: 'sql',
      APICURIO_STORAGE_SQL_KIND: 'postgresql',
      APICURIO_DATASOURCE_URL: `jdbc:postgresql://${database.host}:${database.port}/${database.name}`,
      APICURIO_DATASOURCE_USERNAME: database.user,
      APICURIO_DATASOURCE_PASSWORD: database.password,
      // Its default keeps 20 connections open; a local registry needs few.
      APICURIO_DATASOURCE_JDBC_INITIAL_SIZE: '2',
      APICURIO_DATASOURCE_JDBC_MIN_SIZE: '2',
      APICURIO_DATASOURCE_JDBC_MAX_SIZE: '20',
    },
    home,
  );
  return registry;
}

/** The registry answers on its Confluent-compatible API (Apicurio 3 opens its port only once its storage is ready). */
export function registryAnswers(port: number): Promise<boolean> {
  return httpOk(`http://127.0.0.1:${port}/apis/ccompat/v7/subjects`);
}

// ---------------------------------------------------------------------------------------
// MinIO

export function minioCredentials(env: NodeJS.ProcessEnv = process.env): { user: string; password: string } {
  return {
    user: env.S3_ACCESS_KEY_ID ?? 'etl-local',
    password: env.S3_SECRET_ACCESS_KEY ?? 'etl-local-secret',
  };
}

function startMinio(paths: StackPaths, ports: Ports): void {
  const dir = join(paths.data, 'minio');
  mkdirSync(dir, { recursive: true });
  const { user, password } = minioCredentials();
  new ManagedProcess('minio', paths).start(
    minioBinary(paths),
    ['server', dir, '--quiet', '--address', `127.0.0.1:${ports.minio}`, '--console-address', `127.0.0.1:${ports.minioConsole}`],
    { MINIO_ROOT_USER: user, MINIO_ROOT_PASSWORD: password, MINIO_BROWSER: 'off', MINIO_UPDATE: 'off' },
  );
}

// ---------------------------------------------------------------------------------------
// PostgreSQL: a cluster owned by the stack (own data directory and port)

function postgresDirs(paths: StackPaths): { data: string; socket: string } {
  return { data: join(paths.data, 'postgres', 'data'), socket: join(paths.data, 'postgres', 'socket') };
}

/** PostgreSQL refuses to run as root: run its tools as the `postgres` system user then. */
function asPostgres(command: string, args: string[]): [string, string[]] {
  return isRoot ? ['runuser', ['-u', 'postgres', '--', command, ...args]] : [command, args];
}

/**
 * The `postgres` user must be able to pass through every directory above its data directory.
 * A checkout inside a directory only its owner may enter (`mktemp -d` makes them 0700) would
 * make initdb fail with "Permission denied": such a directory of ours gets the search bit for
 * others (o+x: entering, not listing), said in the log; one of another owner stops the start
 * with the directory named.
 */
function letPostgresThrough(dir: string): void {
  const uid = process.getuid?.();
  for (let current = dirname(dir); ; current = dirname(current)) {
    const { mode, uid: owner } = statSync(current);
    if ((mode & 0o001) === 0) {
      if (owner !== uid)
        throw new Error(
          `PostgreSQL runs as user postgres, which cannot enter ${current} (mode ${(mode & 0o777).toString(8)}, not ours): let others search it (chmod o+x) or use a checkout elsewhere`,
        );
      chmodSync(current, (mode & 0o7777) | 0o001);
      log(`PostgreSQL runs as user postgres: gave others passage (o+x, not listing) into ${current}`);
    }
    if (current === dirname(current)) return;
  }
}

function startPostgres(paths: StackPaths, ports: Ports): void {
  const bin = postgresBin();
  const { data, socket } = postgresDirs(paths);
  mkdirSync(socket, { recursive: true });
  mkdirSync(dirname(data), { recursive: true });
  if (isRoot) {
    run('chown', ['-R', 'postgres:postgres', dirname(data)]);
    letPostgresThrough(dirname(data));
  }
  if (!existsSync(join(data, 'PG_VERSION'))) {
    const [cmd, args] = asPostgres(join(bin, 'initdb'), [
      '-D',
      data,
      '-U',
      'postgres',
      '--auth-local=trust',
      '--auth-host=scram-sha-256',
      '--encoding=UTF8',
      '--no-instructions',
    ]);
    run(cmd, args);
  }
  const status = spawnSync(...asPostgres(join(bin, 'pg_ctl'), ['status', '-D', data]), { stdio: 'ignore' });
  if (status.status === 0) {
    log('postgres already running');
    return;
  }
  const options = [
    `-p ${ports.postgres}`,
    '-c listen_addresses=127.0.0.1',
    `-c unix_socket_directories=${socket}`,
    '-c max_connections=200',
    '-c shared_buffers=256MB',
    '-c fsync=on',
  ].join(' ');
  const [cmd, args] = asPostgres(join(bin, 'pg_ctl'), [
    'start',
    '-D',
    data,
    '-l',
    join(paths.data, 'postgres', 'postgres.log'),
    '-o',
    options,
    '-w',
    '-t',
    '60',
  ]);
  run(cmd, args);
  log(`postgres started (port ${ports.postgres})`);
}

function stopPostgres(paths: StackPaths): void {
  const { data } = postgresDirs(paths);
  if (!existsSync(join(data, 'PG_VERSION'))) return;
  const bin = postgresBin();
  const status = spawnSync(...asPostgres(join(bin, 'pg_ctl'), ['status', '-D', data]), { stdio: 'ignore' });
  if (status.status !== 0) return;
  const [cmd, args] = asPostgres(join(bin, 'pg_ctl'), ['stop', '-D', data, '-m', 'fast', '-w', '-t', '60']);
  run(cmd, args);
  log('postgres stopped');
}

export function psqlAdmin(paths: StackPaths, ports: Ports, sql: string, database = 'postgres'): string {
  const { socket } = postgresDirs(paths);
  const [cmd, args] = asPostgres('psql', ['-h', socket, '-p', String(ports.postgres), '-U', 'postgres', '-d', database, '-v', 'ON_ERROR_STOP=1', '-tAc', sql]);
  return execFileSync(cmd, args, { encoding: 'utf8' }).trim();
}

const sqlLiteral = (value: string) => `'${value.replaceAll("'", "''")}'`;
const sqlIdent = (value: string) => `"${value.replaceAll('"', '""')}"`;

export function ensurePostgresRole(paths: StackPaths, ports: Ports, user: string, password: string): void {
  if (psqlAdmin(paths, ports, `SELECT 1 FROM pg_roles WHERE rolname = ${sqlLiteral(user)}`) === '1') return;
  // CREATEDB: the migration tests run their up/down cycle in a scratch database of their own.
  psqlAdmin(paths, ports, `CREATE ROLE ${sqlIdent(user)} LOGIN CREATEDB PASSWORD ${sqlLiteral(password)}`);
  log(`created role ${user}`);
}

export function ensurePostgresDatabase(paths: StackPaths, ports: Ports, database: string, owner: string): void {
  if (psqlAdmin(paths, ports, `SELECT 1 FROM pg_database WHERE datname = ${sqlLiteral(database)}`) === '1') return;
  psqlAdmin(paths, ports, `CREATE DATABASE ${sqlIdent(database)} OWNER ${sqlIdent(owner)}`);
  log(`created database ${database}`);
}

// ---------------------------------------------------------------------------------------
// Lifecycle

export async function start(paths: StackPaths, ports: Ports): Promise<void> {
  startPostgres(paths, ports);
  startKafka(paths, ports);
  startRegistry(paths, ports);
  startMinio(paths, ports);
}

export async function waitHealthy(ports: Ports): Promise<void> {
  await Promise.all([
    ...ports.kafka.map((p) => waitFor(`kafka broker on ${p}`, () => portOpen(p), 180_000)),
    waitFor('schema registry', () => registryAnswers(ports.registry), 180_000),
    waitFor('minio', () => httpOk(`http://127.0.0.1:${ports.minio}/minio/health/ready`), 120_000),
    waitFor('postgres', () => portOpen(ports.postgres), 60_000),
  ]);
}

export async function stop(paths: StackPaths): Promise<void> {
  await Promise.all([new ManagedProcess('registry', paths).stop(), new ManagedProcess('minio', paths).stop()]);
  // All brokers at once: stopped one by one, the last waits for a controller quorum that
  // is already gone. Each gets 20 s for a clean shutdown before it is killed.
  await Promise.all([1, 2, 3].map((node) => new ManagedProcess(`kafka-${node}`, paths).stop('SIGTERM', 20_000)));
  stopPostgres(paths);
}

export interface ServerStatus {
  name: string;
  up: boolean;
  detail: string;
}

export async function status(paths: StackPaths, ports: Ports): Promise<ServerStatus[]> {
  const result: ServerStatus[] = [];
  for (const [i, p] of ports.kafka.entries()) {
    const pid = new ManagedProcess(`kafka-${i + 1}`, paths).pid();
    result.push({ name: `kafka-${i + 1}`, up: await portOpen(p), detail: `127.0.0.1:${p} pid ${pid ?? '-'}` });
  }
  result.push({
    name: 'registry',
    up: await registryAnswers(ports.registry).catch(() => false),
    detail: `http://127.0.0.1:${ports.registry}/apis/ccompat/v7`,
  });
  result.push({
    name: 'minio',
    up: await httpOk(`http://127.0.0.1:${ports.minio}/minio/health/ready`).catch(() => false),
    detail: `http://127.0.0.1:${ports.minio}`,
  });
  result.push({ name: 'postgres', up: await portOpen(ports.postgres), detail: `127.0.0.1:${ports.postgres}` });
  return result;
}

/** Kills any stack process left behind (for example after a crashed test run) and removes the data. */
export async function purge(paths: StackPaths): Promise<void> {
  await stop(paths);
  rmSync(paths.data, { recursive: true, force: true });
  log(`removed ${paths.data}`);
}

// ---------------------------------------------------------------------------------------
// Single servers, for fault tests (stop one dependency, check the services notice, restart it)

export type ServerName = 'minio' | 'registry' | 'postgres' | 'kafka-1' | 'kafka-2' | 'kafka-3';

/** The profile whose servers are running (tests use whichever stack is up). */
export function runningProfile(): Profile | undefined {
  for (const profile of ['itest', 'dev'] as const) {
    if (new ManagedProcess('minio', stackPaths(profile)).pid() !== undefined) return profile;
  }
  return undefined;
}

export async function stopServer(paths: StackPaths, name: ServerName, signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
  if (name === 'postgres') return stopPostgres(paths);
  await new ManagedProcess(name, paths).stop(signal, 20_000);
}

export async function startServer(paths: StackPaths, ports: Ports, name: ServerName): Promise<void> {
  if (name === 'postgres') return startPostgres(paths, ports);
  if (name === 'minio') return startMinio(paths, ports);
  if (name === 'registry') return startRegistry(paths, ports);
  const node = Number(name.slice('kafka-'.length));
  writeKafkaConfig(paths, ports, node);
  new ManagedProcess(name, paths).start('java', kafkaJava(paths, node, 'kafka.Kafka', [join(kafkaNodeDir(paths, node), 'server.properties')]));
}

/**
 * Sets topic configs with Kafka's own ConfigCommand (the librdkafka admin client has no
 * AlterConfigs): for topics of an older stack, which were created with other settings.
 */
export function alterTopicConfigs(paths: StackPaths, ports: Ports, topicNames: readonly string[], config: Record<string, string>): void {
  const settings = Object.entries(config)
    .map(([name, value]) => `${name}=${value}`)
    .join(',');
  for (const topic of topicNames) {
    run('java', [
      '-Xmx256m',
      `-Dlog4j2.configurationFile=${join(kafkaNodeDir(paths, 1), 'log4j2.properties')}`,
      '-cp',
      `${kafkaLibs(paths)}/*`,
      'kafka.admin.ConfigCommand',
      '--bootstrap-server',
      `127.0.0.1:${ports.kafka[0]}`,
      '--alter',
      '--entity-type',
      'topics',
      '--entity-name',
      topic,
      '--add-config',
      settings,
    ]);
  }
}
