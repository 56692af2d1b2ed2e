/**
 * What the monitoring's integration tests share: services as child processes, the monitoring
 * in process, its API, and waiting until it applied every event its topics hold.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import t, { type Test } from 'tap';
import { request } from 'undici';
import { createLogger } from '../../core/logger.js';
import { createPostgres } from '../../core/postgres.js';
import { createLineageStore, lineageTopics, loadMonitoringConfig, startMonitoring, type ImportJson, type Monitoring } from '../../monitoring/index.js';
import { eventually, freePort, TopicReader } from './helpers.js';

export interface Child {
  child: ChildProcess;
  port: number;
  exited: Promise<number | null>;
}

const children: Child[] = [];
t.teardown(async () => {
  for (const { child, exited } of children) await stopChild(child, exited);
});

/** SIGTERM, and SIGKILL if it has not exited within 20 s. */
async function stopChild(child: ChildProcess, exited: Promise<number | null>): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), 20_000);
  await exited;
  clearTimeout(timer);
}

/**
 * A service as its own process (`node --import tsx <entry>`), once it listens (/liveness). Not
 * /readiness: on a shared stack its consumer groups may be rebalancing for a while, and the
 * test waits for the outcome it needs anyway.
 */
export async function spawnService(entry: string[], portVariable: string, hostVariable: string, env: Record<string, string> = {}): Promise<Child> {
  const port = await freePort();
  const child = spawn(process.execPath, ['--import', 'tsx', ...entry], {
    env: { ...process.env, [portVariable]: String(port), [hostVariable]: '127.0.0.1', LOG_LEVEL: process.env.ITEST_LOG_LEVEL ?? 'warn', ...env },
    stdio: ['ignore', 'inherit', 'inherit'],
  });
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  const handle = { child, port, exited };
  children.push(handle);
  await eventually(
    `${entry.join(' ')} to listen`,
    async () => ((await request(`http://127.0.0.1:${port}/liveness`)).statusCode === 200 ? true : undefined),
    60_000,
  );
  return handle;
}

export async function startInProcess(t: Test, env: Record<string, string> = {}): Promise<{ monitoring: Monitoring; url: string }> {
  const config = loadMonitoringConfig({
    ...process.env,
    MONITORING_PORT: '0',
    MONITORING_HOST: '127.0.0.1',
    LOG_LEVEL: process.env.ITEST_LOG_LEVEL ?? 'warn',
    MONITORING_LAG_INTERVAL_MS: '500',
    ...env,
  });
  const monitoring = await startMonitoring(config, createLogger(config.log, 'monitoring-itest'));
  t.teardown(() => monitoring.close());
  const url = `http://127.0.0.1:${monitoring.port}`;
  await eventually('the monitoring to be ready', async () => ((await request(`${url}/readiness`)).statusCode === 200 ? true : undefined), 90_000);
  return { monitoring, url };
}

export async function getJson(url: string): Promise<{ status: number; json: any; headers: Record<string, unknown> }> {
  const response = await request(url);
  const text = await response.body.text();
  return { status: response.statusCode, json: text === '' ? undefined : JSON.parse(text), headers: response.headers };
}

export async function lineageOf(url: string, requestId: string, tenant?: string): Promise<ImportJson | undefined> {
  const response = await getJson(`${url}/imports/${requestId}${tenant === undefined ? '' : `?tenant=${tenant}`}`);
  return response.status === 200 ? (response.json as ImportJson) : undefined;
}

export async function waitForStatus(url: string, requestId: string, status: string, timeoutMs = 180_000, tenant?: string): Promise<ImportJson> {
  return eventually(
    `import ${requestId} to be ${status}`,
    async () => {
      const lineage = await lineageOf(url, requestId, tenant);
      return lineage?.status === status ? lineage : undefined;
    },
    timeoutMs,
  );
}

/**
 * Waits until the monitoring (groups `etl-monitoring-<topic>`) has applied every event its
 * topics hold now: each group's stored offset is past the last message of each partition. The
 * topics' end offsets cannot be the target: a transactional producer's last commit marker sits
 * at the end of a partition, and no consumer is ever handed it.
 */
export async function waitAllApplied(): Promise<void> {
  const targets: Array<{ topic: string; partition: number; next: bigint }> = [];
  for (const topic of lineageTopics) {
    const reader = new TopicReader(topic);
    const next = new Map<number, bigint>();
    try {
      for (const message of await reader.readToEnd()) next.set(message.partition, BigInt(message.offset) + 1n);
    } finally {
      await reader.close();
    }
    for (const [partition, offset] of next) targets.push({ topic, partition, next: offset });
  }
  const postgres = createPostgres(loadMonitoringConfig().postgres);
  const store = createLineageStore(postgres);
  try {
    await eventually(
      'the monitoring applied every event its topics hold',
      async () => {
        for (const { topic, partition, next } of targets) {
          const stored = (await store.storedOffsets(`etl-monitoring-${topic}`, topic)).get(partition);
          if (stored === undefined || BigInt(stored) < next) return undefined;
        }
        return true;
      },
      180_000,
    );
  } finally {
    await postgres.close();
  }
}
