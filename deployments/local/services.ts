/**
 * Starts and stops the pipeline's own services in the background for `make up` / `make down`,
 * each with its log under .stack/dev/logs. Services are added here as they are built.
 */
import { join } from 'node:path';
import { ManagedProcess, repoRoot, stackPaths, waitFor, log } from './servers.js';

interface ServiceSpec {
  name: string;
  entry: string;
  port: number;
}

export const services: ServiceSpec[] = [
  { name: 'ingress', entry: 'ingress/main.ts', port: Number(process.env.INGRESS_PORT ?? 3000) },
  { name: 'processor', entry: 'topology/main.ts', port: Number(process.env.PROCESSOR_PORT ?? 3001) },
  { name: 'monitoring', entry: 'monitoring/main.ts', port: Number(process.env.MONITORING_PORT ?? 3002) },
];

async function main(): Promise<void> {
  const command = process.argv[2];
  const paths = stackPaths('dev');
  if (services.length === 0) {
    log('no services to manage yet');
    return;
  }
  if (command === 'running') {
    // Exit status 0 when any of them runs (check.sh stops them for the integration tests).
    const running = services.filter((service) => new ManagedProcess(`service-${service.name}`, paths).pid() !== undefined);
    if (!process.argv.includes('--quiet')) for (const service of running) log(`${service.name} running`);
    process.exit(running.length > 0 ? 0 : 1);
  }
  for (const service of services) {
    const processHandle = new ManagedProcess(`service-${service.name}`, paths);
    if (command === 'start') {
      processHandle.start(process.execPath, ['--import', 'tsx', join(repoRoot, service.entry)], {}, repoRoot);
      await waitFor(`${service.name} /liveness`, async () => {
        const response = await fetch(`http://127.0.0.1:${service.port}/liveness`);
        return response.ok;
      }, 60_000);
      log(`${service.name} listening on http://127.0.0.1:${service.port}`);
    } else if (command === 'stop') {
      await processHandle.stop('SIGTERM', 30_000);
    } else {
      throw new Error(`unknown command ${command}: use start, stop or running`);
    }
  }
}

main().catch((error: unknown) => {
  process.stderr.write(`[services] ${error instanceof Error ? error.message : String(error)}\n`);
  process.exit(1);
});
