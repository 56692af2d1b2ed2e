/**
 * The services a benchmark starts as child processes (their compiled entry points, with the
 * image's environment), how it waits for them and stops them. Only the processes started here are
 * ever signalled; whatever is left when the benchmark exits gets SIGKILL.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { request } from 'undici';

export { freePort } from '../../deployments/local/free-port.js';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');

export interface Child {
  name: string;
  proc: ChildProcess;
  pid: number;
  log: string[];
  url: string;
}

const children = new Set<Child>();

/** The environment the services' image gives every process (its runtime stage's allocator setting). */
export function imageEnv(): NodeJS.ProcessEnv {
  const dockerfile = readFileSync(join(root, 'deployments', 'docker', 'Dockerfile'), 'utf8');
  const env: NodeJS.ProcessEnv = {};
  for (const [, name, value] of dockerfile.matchAll(/^ENV (MALLOC_[A-Z_]+)=(\S+)$/gm)) env[name!] = value;
  return env;
}

/** Runs a service's compiled entry point (`ingress/main.ts` → `dist/ingress/main.js`), as its image does. */
export function spawnNode(name: string, script: string, args: string[], env: NodeJS.ProcessEnv, url: string, nodeArgs: string[] = []): Child {
  return spawnChild(name, process.execPath, [...nodeArgs, join('dist', script.replace(/\.ts$/, '.js')), ...args], { ...env, ...imageEnv() }, url);
}

/** Runs a TypeScript entry point from its source with tsx (`node --import tsx <script>`), without the image's environment. */
export function spawnSource(name: string, script: string, args: string[], env: NodeJS.ProcessEnv, url: string, nodeArgs: string[] = []): Child {
  return spawnChild(name, process.execPath, [...nodeArgs, '--import', 'tsx', script, ...args], env, url);
}

/** Runs any program as a child of the benchmark, keeping the last 200 lines of its output. */
export function spawnChild(name: string, command: string, args: string[], env: NodeJS.ProcessEnv, url: string): Child {
  const proc = spawn(command, args, { cwd: root, env, stdio: ['ignore', 'pipe', 'pipe'] });
  if (proc.pid === undefined) throw new Error(`could not start ${name}`);
  const child: Child = { name, proc, pid: proc.pid, log: [], url };
  const keep = (data: Buffer) => {
    for (const line of data.toString('utf8').split('\n')) {
      if (line === '') continue;
      child.log.push(line);
      if (child.log.length > 200) child.log.shift();
    }
  };
  proc.stdout?.on('data', keep);
  proc.stderr?.on('data', keep);
  children.add(child);
  proc.once('exit', () => children.delete(child));
  return child;
}

export async function stopChild(child: Child): Promise<number | null> {
  if (child.proc.exitCode !== null || child.proc.signalCode !== null) return child.proc.exitCode;
  const exited = new Promise<number | null>((resolve) => child.proc.once('exit', (code) => resolve(code)));
  child.proc.kill('SIGTERM');
  const timedOut = await Promise.race([exited.then(() => false), sleep(60_000).then(() => true)]);
  if (timedOut) {
    process.stderr.write(`${child.name} (pid ${child.pid}) ignored SIGTERM for 60 s; killing it\n`);
    child.proc.kill('SIGKILL');
  }
  return exited;
}

process.once('exit', () => {
  for (const child of children) if (child.proc.exitCode === null) child.proc.kill('SIGKILL');
});

export async function waitForHttp(child: Child, path: string, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let last = '';
  while (Date.now() < deadline) {
    if (child.proc.exitCode !== null) throw new Error(`${child.name} exited with ${child.proc.exitCode}:\n${child.log.join('\n')}`);
    try {
      const response = await request(`${child.url}${path}`, { headersTimeout: 5000, bodyTimeout: 5000 });
      const text = await response.body.text();
      if (response.statusCode === 200) return;
      last = `${response.statusCode} ${text.slice(0, 300)}`;
    } catch (error) {
      last = String(error);
    }
    await sleep(250);
  }
  throw new Error(`${child.name} not ready at ${child.url}${path} after ${timeoutMs} ms (last: ${last}):\n${child.log.join('\n')}`);
}

/** Every child still running: for a benchmark's own clean-up. */
export function runningChildren(): Child[] {
  return [...children];
}
