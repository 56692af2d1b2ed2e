/**
 * deployments/docker/Dockerfile without a Docker engine: its build stage's steps run here as
 * plain commands, in a copy of the build context (the repository less .dockerignore), with
 * the build args as the environment; then the runtime stage's files alone (package.json,
 * node_modules, dist) start the ingress with the image's CMD against the running stack.
 * /liveness must report the build args, /readiness must turn ready, and the image's
 * HEALTHCHECK command must pass.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, renameSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import t from 'tap';
import { request } from 'undici';
import { eventually, freePort } from './helpers.js';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const dockerfile = readFileSync(join(root, 'deployments/docker/Dockerfile'), 'utf8');

interface Stage {
  name: string;
  instructions: Array<{ op: string; args: string }>;
}

/** The Dockerfile's stages and instructions (continuation lines joined, comments dropped). */
function parseDockerfile(text: string): Stage[] {
  const stages: Stage[] = [];
  const lines = text.replace(/\\\r?\n/g, ' ').split(/\r?\n/);
  for (const line of lines) {
    if (/^\s*(#|$)/.test(line)) continue;
    const [, op, args] = /^\s*(\w+)\s+(.*)$/.exec(line) ?? [];
    if (op === undefined || args === undefined) continue;
    if (op.toUpperCase() === 'FROM') {
      stages.push({ name: /\bAS\s+(\S+)\s*$/i.exec(args)?.[1] ?? String(stages.length), instructions: [] });
    } else if (stages.length > 0) {
      stages.at(-1)!.instructions.push({ op: op.toUpperCase(), args: args.trim() });
    }
  }
  return stages;
}

/** KEY=value pairs of an ENV instruction. */
function envPairs(args: string): Record<string, string> {
  return Object.fromEntries([...args.matchAll(/(\w+)=("[^"]*"|\S+)/g)].map(([, key, value]) => [key!, value!.replace(/^"|"$/g, '')]));
}

/** What `docker build` sends: every file not excluded by .dockerignore. */
function copyBuildContext(to: string): number {
  const rules = readFileSync(join(root, '.dockerignore'), 'utf8')
    .split('\n')
    .map((line) => line.trim())
    .filter((line) => line !== '' && !line.startsWith('#'))
    .map((rule) => {
      const negate = rule.startsWith('!');
      const pattern = (negate ? rule.slice(1) : rule).replace(/\/$/, '');
      const source = pattern
        .replace(/[.+^$()|[\]\\]/g, '\\$&')
        .replace(/\*\*\/?/g, '\u0000')
        .replace(/\*/g, '[^/]*')
        .replace(/\?/g, '[^/]')
        .replace(/\u0000/g, '(?:.*/)?');
      return { negate, pattern, regex: new RegExp(`^${source}(?:/.*)?$`) };
    });
  const excluded = (path: string) => rules.reduce((out, rule) => (rule.regex.test(path) ? !rule.negate : out), false);
  let copied = 0;
  const walk = (relativeDir: string) => {
    for (const entry of readdirSync(join(root, relativeDir), { withFileTypes: true })) {
      const path = relativeDir === '' ? entry.name : `${relativeDir}/${entry.name}`;
      if (entry.isDirectory()) {
        // A directory is skipped whole unless an exception could re-include something inside.
        if (excluded(path) && !rules.some((rule) => rule.negate && (rule.pattern.startsWith(`${path}/`) || rule.pattern.includes('*')))) continue;
        walk(path);
      } else if (entry.isFile() && !excluded(path)) {
        mkdirSync(join(to, relativeDir), { recursive: true });
        cpSync(join(root, path), join(to, path));
        copied++;
      }
    }
  };
  walk('');
  return copied;
}

const stages = parseDockerfile(dockerfile);
const build = stages.find((stage) => stage.name === 'build');
const runtime = stages.find((stage) => stage.name === 'runtime');
const ingressStage = stages.find((stage) => stage.name === 'ingress');

const buildArgs = {
  BUILD_VERSION: `9.8.7-itest.${randomBytes(2).toString('hex')}`,
  GIT_COMMIT: randomBytes(20).toString('hex'),
  GIT_BRANCH: 'itest/docker-build-steps',
  BUILD_TIME: new Date().toISOString(),
};

/** The environment without anything that could stand in for the build args. */
function cleanEnv(): NodeJS.ProcessEnv {
  const env = { ...process.env };
  for (const name of Object.keys(buildArgs)) delete env[name];
  return env;
}

const work = mkdtempSync(join(tmpdir(), 'etl-docker-build-'));
t.teardown(() => rmSync(work, { recursive: true, force: true }));
const src = join(work, 'src');
const app = join(work, 'app');

t.test('the build stage runs: npm ci, npm run build with the build args, npm prune', async (t) => {
  t.ok(build && runtime && ingressStage, 'stages build, runtime and ingress');
  const files = copyBuildContext(src);
  t.ok(files > 50, `${files} files in the build context`);
  t.notOk(existsSync(join(src, 'node_modules')), 'no node_modules in the context');
  t.notOk(existsSync(join(src, '.git')), 'no .git in the context');

  const env: NodeJS.ProcessEnv = { ...cleanEnv(), ...buildArgs };
  const declaredArgs = new Set<string>();
  for (const { op, args } of build!.instructions) {
    if (op === 'ENV') Object.assign(env, envPairs(args));
    if (op === 'ARG') declaredArgs.add(args.split('=')[0]!);
    if (op !== 'RUN') continue;
    // BuildKit flags (--mount=type=cache,...) are for the builder, not the command.
    const command = args.replace(/^(--\S+\s+)+/, '');
    const started = Date.now();
    const result = spawnSync('sh', ['-c', command], { cwd: src, env, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], maxBuffer: 64 * 1024 * 1024 });
    t.equal(result.status, 0, `RUN ${command.slice(0, 60)}… (${Math.round((Date.now() - started) / 1000)} s)`, {
      output: result.status === 0 ? undefined : `${result.stdout}\n${result.stderr}`.slice(-4000),
    });
    if (result.status !== 0) return;
  }
  t.same([...declaredArgs].sort(), Object.keys(buildArgs).sort(), 'the build args are ARGs of the build stage');
  const info = JSON.parse(readFileSync(join(src, 'dist/build-info.json'), 'utf8')) as Record<string, string>;
  t.same(info, { version: buildArgs.BUILD_VERSION, commit: buildArgs.GIT_COMMIT, branch: buildArgs.GIT_BRANCH, build_time: buildArgs.BUILD_TIME });
  t.notOk(existsSync(join(src, 'node_modules/typescript')), 'dev dependencies pruned');
  t.ok(existsSync(join(src, 'node_modules/uWebSockets.js')), 'production dependencies kept');

  // The runtime stage: only what it copies from the build stage.
  const copies = runtime!.instructions.filter((instruction) => instruction.op === 'COPY');
  mkdirSync(app);
  for (const { args } of copies) {
    const [from, to] = args.split(/\s+/).filter((part) => !part.startsWith('--')) as [string, string];
    t.match(args, /--from=build/, `COPY ${args}`);
    renameSync(join(src, from.replace(/^\/src\//, '')), join(app, to.replace(/^\.\//, '')));
  }
  t.same(readdirSync(app).sort(), ['dist', 'node_modules', 'package.json']);
});

t.test("the runtime files start the ingress with the image's CMD; /liveness reports the build", async (t) => {
  if (!existsSync(join(app, 'dist'))) return t.fail('the build did not finish');
  const cmd = JSON.parse(
    /^CMD\s+(\[.*\])$/m.exec(
      ingressStage!.instructions
        .filter((i) => i.op === 'CMD')
        .map((i) => `CMD ${i.args}`)
        .join('\n'),
    )?.[1] ?? '[]',
  ) as string[];
  t.same(cmd, ['node', 'dist/ingress/main.js']);
  const port = await freePort();
  const env: NodeJS.ProcessEnv = { ...cleanEnv(), INGRESS_PORT: String(port), INGRESS_HOST: '127.0.0.1', LOG_LEVEL: 'warn' };
  for (const { op, args } of runtime!.instructions) if (op === 'ENV') Object.assign(env, envPairs(args));
  t.equal(env.NODE_ENV, 'production');
  const child: ChildProcess = spawn(cmd[0] === 'node' ? process.execPath : cmd[0]!, cmd.slice(1), { cwd: app, env, stdio: ['ignore', 'inherit', 'inherit'] });
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  t.teardown(async () => {
    if (child.exitCode === null) {
      child.kill('SIGTERM');
      await exited;
    }
  });
  const url = `http://127.0.0.1:${port}`;
  const liveness = await eventually(
    'the ingress to answer /liveness',
    async () => {
      if (child.exitCode !== null) throw new Error(`the ingress exited with ${child.exitCode}`);
      const response = await request(`${url}/liveness`);
      return response.statusCode === 200 ? ((await response.body.json()) as Record<string, unknown>) : undefined;
    },
    60_000,
  );
  t.equal(liveness.service, 'ingress');
  t.equal(liveness.version, buildArgs.BUILD_VERSION, 'version from BUILD_VERSION');
  t.equal(liveness.commit, buildArgs.GIT_COMMIT, 'commit from GIT_COMMIT');
  t.equal(liveness.branch, buildArgs.GIT_BRANCH, 'branch from GIT_BRANCH');
  t.equal(liveness.build_time, buildArgs.BUILD_TIME, 'build time from BUILD_TIME');

  const readiness = await eventually(
    'the ingress to be ready against the stack',
    async () => {
      const response = await request(`${url}/readiness`);
      const body = (await response.body.json()) as { ready?: boolean };
      return response.statusCode === 200 ? body : undefined;
    },
    60_000,
  );
  t.equal(readiness.ready, true, 'ready: Kafka, the registry and S3 reached with production dependencies only');

  // The image's HEALTHCHECK command, as Docker would run it inside the container.
  const healthcheck = ingressStage!.instructions.find((instruction) => instruction.op === 'HEALTHCHECK');
  const check = JSON.parse(/CMD\s+(\[.*\])\s*$/.exec(healthcheck?.args ?? '')?.[1] ?? '[]') as string[];
  t.equal(check[0], 'node');
  const result = spawnSync(process.execPath, check.slice(1), { cwd: app, env, encoding: 'utf8', timeout: 10_000 });
  t.equal(result.status, 0, 'HEALTHCHECK passes', { stderr: result.stderr });
  const failing = spawnSync(process.execPath, check.slice(1), {
    cwd: app,
    env: { ...env, INGRESS_PORT: String(await freePort()) },
    encoding: 'utf8',
    timeout: 10_000,
  });
  t.not(failing.status, 0, 'and fails when nothing answers');
});

t.test("the runtime files also run the processor's describe and the migrations CLI", async (t) => {
  if (!existsSync(join(app, 'dist'))) return t.fail('the build did not finish');
  const env = { ...cleanEnv(), NODE_ENV: 'production', LOG_LEVEL: 'warn' };
  const describe = spawnSync(process.execPath, ['dist/topology/main.js', 'describe'], { cwd: app, env, encoding: 'utf8', timeout: 60_000 });
  t.equal(describe.status, 0, 'node dist/topology/main.js describe', { stderr: describe.stderr });
  t.match(describe.stdout, /FileExtractSuccess/);
  const status = spawnSync(process.execPath, ['dist/sinks/postgres/migrate-cli.js', 'status'], { cwd: app, env, encoding: 'utf8', timeout: 60_000 });
  t.equal(status.status, 0, 'node dist/sinks/postgres/migrate-cli.js status', { stderr: status.stderr });
  t.match(status.stdout, /0001_companies/);
  t.ok(existsSync(join(app, 'dist/monitoring/main.js')), "the monitoring target's entry point is built");
});
