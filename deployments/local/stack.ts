/**
 * The local stack's command line (the Makefile calls it):
 *
 *   tsx deployments/local/stack.ts up     [--profile itest|dev]   install what is missing, start, wait, set up
 *   tsx deployments/local/stack.ts down   [--profile itest|dev] [--purge]
 *   tsx deployments/local/stack.ts status [--profile itest|dev]
 *   tsx deployments/local/stack.ts install
 *   tsx deployments/local/stack.ts setup                          topics, bucket, database (idempotent)
 */
import { CreateBucketCommand, HeadBucketCommand } from '@aws-sdk/client-s3';
import { loadConfig } from '../../core/config.js';
import { createKafka, ensureTopics } from '../../core/kafka.js';
import { allTopics, replicationFactor, topicConfig } from '../../core/pipeline.js';
import { createS3 } from '../../core/s3.js';
import {
  alterTopicConfigs,
  ensurePostgresDatabase,
  ensurePostgresRole,
  install,
  log,
  type Ports,
  type Profile,
  purge,
  start,
  stackPaths,
  type StackPaths,
  stackPorts,
  status,
  stop,
  waitHealthy,
} from './servers.js';

async function setupKafka(paths: StackPaths, ports: Ports): Promise<void> {
  const config = loadConfig();
  const admin = createKafka(config.kafka, { clientId: 'etl-stack-setup' }).admin();
  await admin.connect();
  let existing: string[];
  try {
    let lastRetryMessage: string | undefined;
    // Returns once all 3 brokers hold every partition in sync (replication factor 3).
    const { created, grown, larger } = await ensureTopics(
      admin,
      allTopics.map((topic) => topic.name),
      { partitions: config.pipeline.partitions, replicationFactor, config: topicConfig },
      {
        onRetry: (error) => {
          if (error.message !== lastRetryMessage) log(`topics not ready yet: ${error.message}`);
          lastRetryMessage = error.message;
        },
      },
    );
    if (created.length > 0) log(`created topics: ${created.join(', ')}`);
    if (grown.length > 0) {
      log(`grew topics: ${grown.map(({ topic, from, to }) => `${topic} ${from} → ${to} partitions`).join(', ')}`);
      log(
        "warning: keys already written stay in their old partition, so per-key order holds only for messages written after the growth (a key's new messages may go to another partition while its old ones are still unconsumed in the old one)",
      );
    }
    if (larger.length > 0) {
      log(
        `kept topics with more partitions than PIPELINE_PARTITIONS=${config.pipeline.partitions} (Kafka cannot remove partitions): ${larger.map(({ topic, partitions }) => `${topic} ${partitions}`).join(', ')}`,
      );
    }
    existing = allTopics.map((topic) => topic.name).filter((name) => !created.includes(name));
  } finally {
    await admin.disconnect();
  }
  // Topics of an older stack get today's settings too (compression.type=producer among them).
  if (existing.length > 0) {
    log(`applying topic settings to ${existing.length} existing topics`);
    alterTopicConfigs(paths, ports, existing, topicConfig);
  }
}

async function setupBucket(): Promise<void> {
  const config = loadConfig();
  const s3 = createS3(config.s3);
  try {
    await s3.send(new HeadBucketCommand({ Bucket: config.s3.bucket }));
  } catch {
    await s3.send(new CreateBucketCommand({ Bucket: config.s3.bucket }));
    log(`created bucket ${config.s3.bucket}`);
  } finally {
    s3.destroy();
  }
}

function setupDatabase(paths: StackPaths, ports: Ports): void {
  const { postgres } = loadConfig();
  ensurePostgresRole(paths, ports, postgres.user, postgres.password);
  ensurePostgresDatabase(paths, ports, postgres.database, postgres.user);
}

async function setup(paths: StackPaths, ports: Ports): Promise<void> {
  setupDatabase(paths, ports);
  await Promise.all([setupKafka(paths, ports), setupBucket()]);
}

function printEndpoints(ports: Ports): void {
  const config = loadConfig();
  const lines = [
    `Kafka brokers     ${config.kafka.brokers.join(',')}  (replication ${replicationFactor}, min in-sync 2, ${config.pipeline.partitions} partitions)`,
    `Schema Registry   ${config.registry.url}`,
    `S3 (MinIO)        ${config.s3.endpoint}  bucket ${config.s3.bucket}`,
    `PostgreSQL        postgres://${config.postgres.user}@${config.postgres.host}:${ports.postgres}/${config.postgres.database}`,
    `Topics            ${allTopics.map((topic) => topic.name).join(', ')}`,
    `Inspect a topic   kcat -b ${config.kafka.brokers[0]} -C -t FileExtractSuccess -J -e`,
  ];
  process.stdout.write(`${lines.join('\n')}\n`);
}

function parseArgs(argv: string[]): { command: string; profile: Profile; purge: boolean; quiet: boolean } {
  const [command = 'status', ...rest] = argv;
  let profile: Profile = 'itest';
  let purgeData = false;
  let quiet = false;
  for (let i = 0; i < rest.length; i++) {
    const arg = rest[i];
    if (arg === '--profile') {
      const value = rest[++i];
      if (value !== 'itest' && value !== 'dev') throw new Error(`--profile must be itest or dev, got ${value}`);
      profile = value;
    } else if (arg === '--purge') {
      purgeData = true;
    } else if (arg === '--quiet') {
      quiet = true;
    } else {
      throw new Error(`unknown argument ${arg}`);
    }
  }
  return { command, profile, purge: purgeData, quiet };
}

async function main(): Promise<void> {
  const { command, profile, purge: purgeData, quiet } = parseArgs(process.argv.slice(2));
  loadConfig(); // fail fast on a bad environment, naming the variable
  const paths = stackPaths(profile);
  const ports = stackPorts();
  switch (command) {
    case 'install':
      install(paths);
      break;
    case 'up': {
      const started = Date.now();
      install(paths);
      await start(paths, ports);
      await waitHealthy(ports);
      await setup(paths, ports);
      log(`stack (${profile}) up in ${((Date.now() - started) / 1000).toFixed(1)} s`);
      printEndpoints(ports);
      break;
    }
    case 'setup':
      await setup(paths, ports);
      break;
    case 'down':
      if (purgeData) await purge(paths);
      else await stop(paths);
      break;
    case 'status': {
      const servers = await status(paths, ports);
      for (const server of servers) {
        if (quiet) continue;
        process.stdout.write(`${server.up ? 'up  ' : 'down'}  ${server.name.padEnd(10)} ${server.detail}\n`);
      }
      if (servers.some((server) => !server.up)) process.exitCode = 1;
      break;
    }
    case 'endpoints':
      printEndpoints(ports);
      break;
    default:
      throw new Error(`unknown command ${command}: use install, up, setup, down, status or endpoints`);
  }
}

main().catch((error: unknown) => {
  process.stderr.write(`[stack] ${error instanceof Error ? error.message : String(error)}\n`);
  process.exit(1);
});
