import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import t from 'tap';
import { closeOnce } from './service.js';

const fixture = fileURLToPath(new URL('./service.fixture.ts', import.meta.url));

/** Runs the fixture; with `signalWhenReady`, sends it that signal once it printed "ready". */
function run(env: Record<string, string>, signalWhenReady?: NodeJS.Signals): Promise<{ code: number | null; stdout: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', fixture], { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'inherit'] });
    let stdout = '';
    let signalled = false;
    child.stdout.on('data', (chunk: Buffer) => {
      stdout += chunk.toString();
      if (signalWhenReady !== undefined && !signalled && stdout.split('\n').includes('ready')) {
        signalled = true;
        child.kill(signalWhenReady);
      }
    });
    child.once('error', reject);
    child.once('exit', (code) => resolve({ code, stdout }));
  });
}

t.test('a service that reports it failed for good is closed and the process exits 1', async (t) => {
  const { code, stdout } = await run({ FIXTURE_FAIL_AFTER_MS: '100' });
  t.equal(code, 1, 'exit 1: its supervisor restarts it');
  t.equal(stdout, 'ready\nclosed\n', 'started, then closed once');
});

t.test('SIGTERM still closes it and exits 0', async (t) => {
  const { code, stdout } = await run({}, 'SIGTERM');
  t.equal(code, 0);
  t.equal(stdout, 'ready\nclosed\n', 'signalled once ready, closed once');
});

t.test('closeOnce runs the steps once; every call waits for that run', async (t) => {
  let runs = 0;
  const close = closeOnce(async () => {
    runs++;
    await new Promise((resolve) => setTimeout(resolve, 10));
  });
  const first = close();
  const second = close();
  t.equal(first, second, 'the same promise');
  await Promise.all([first, second, close()]);
  t.equal(runs, 1);
});
