/**
 * The pipeline's own services as children of a benchmark, each on a free port of 127.0.0.1 with
 * LOG_LEVEL=warn. They run compiled, as their images run them, unless `fromSource` asks for tsx.
 * The caller waits for them (waitForHttp on /readiness).
 */
import { freePort, spawnNode, spawnSource, type Child } from './children.js';

export interface ServiceOptions {
  name?: string;
  /** Extra node flags (--cpu-prof, …). */
  nodeArgs?: string[];
  /** Added to (and over) the benchmark's own environment. */
  env?: NodeJS.ProcessEnv;
  fromSource?: boolean;
}

async function spawnService(script: string, args: string[], portVariable: string, hostVariable: string, name: string, options: ServiceOptions): Promise<Child> {
  const port = await freePort();
  const env = { ...process.env, [portVariable]: String(port), [hostVariable]: '127.0.0.1', LOG_LEVEL: 'warn', ...options.env };
  const spawn = options.fromSource === true ? spawnSource : spawnNode;
  return spawn(name, script, args, env, `http://127.0.0.1:${port}`, options.nodeArgs ?? []);
}

/** The ingress (ingress/main.ts). */
export function spawnIngress(options: ServiceOptions = {}): Promise<Child> {
  return spawnService('ingress/main.ts', [], 'INGRESS_PORT', 'INGRESS_HOST', options.name ?? 'ingress', options);
}

/** One processor replica (`topology/main.ts run`: every stage), named `processor-<index + 1>`. */
export function spawnProcessor(index: number, options: ServiceOptions = {}): Promise<Child> {
  return spawnService('topology/main.ts', ['run'], 'PROCESSOR_PORT', 'PROCESSOR_HOST', options.name ?? `processor-${index + 1}`, options);
}
