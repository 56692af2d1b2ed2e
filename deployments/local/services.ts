/**
 * Starts and stops the pipeline's own services in the background for `make up` / `make down`,
 * each with its log under .stack/dev/logs:
 *
 *   tsx deployments/local/services.ts start | stop | status | running [--quiet]
 * (which ones: service-specs.ts).
 */
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { servicesOf } from './service-specs.js';
import { ManagedProcess, repoRoot, stackPaths, waitFor, log, type StackPaths } from './servers.js';

function handleOf(name: string, paths: StackPaths): ManagedProcess {
  return new ManagedProcess(`service-${name}`, paths);
}

/** Every service with a pid file, whatever PROCESSOR_REPLICAS was when it started. */
function startedNames(paths: StackPaths): string[] {
  const dir = join(paths.data, 'pids');
  if (!existsSync(dir)) return [];
  return readdirSync(dir)
    .filter((file) => file.startsWith('service-') && file.endsWith('.pid'))
    .map((file) => file.slice('service-'.length, -'.pid'.length));
}

async function main(): Promise<void> {
  const command = process.argv[2];
  const paths = stackPaths('dev');
  if (command === 'start') {
    for (const service of servicesOf(process.env)) {
      handleOf(service.name, paths).start(process.execPath, ['--import', 'tsx', join(repoRoot, service.entry)], service.env, repoRoot);
      await waitFor(`${service.name} /liveness`, async () => (await fetch(`http://127.0.0.1:${service.port}/liveness`)).ok, 60_000);
      log(`${service.name} listening on http://127.0.0.1:${service.port}`);
    }
  } else if (command === 'stop') {
    for (const name of startedNames(paths)) await handleOf(name, paths).stop('SIGTERM', 30_000);
  } else if (command === 'status') {
    const byName = new Map(servicesOf(process.env).map((service) => [service.name, service]));
    for (const name of new Set([...byName.keys(), ...startedNames(paths)])) {
      const pid = handleOf(name, paths).pid();
      const port = byName.get(name)?.port;
      process.stdout.write(
        `${pid === undefined ? 'down' : 'up  '}  ${name.padEnd(12)} ${port === undefined ? '' : `http://127.0.0.1:${port}`}${pid === undefined ? '' : ` pid ${pid}`}\n`,
      );
    }
  } else if (command === 'running') {
    // Exit status 0 when any of them runs (check.sh stops them for the integration tests).
    const running = startedNames(paths).filter((name) => handleOf(name, paths).pid() !== undefined);
    if (!process.argv.includes('--quiet')) for (const name of running) log(`${name} running`);
    process.exit(running.length > 0 ? 0 : 1);
  } else {
    throw new Error(`unknown command ${command}: use start, stop, status or running`);
  }
}

main().catch((error: unknown) => {
  process.stderr.write(`[services] ${error instanceof Error ? error.message : String(error)}\n`);
  process.exit(1);
});
