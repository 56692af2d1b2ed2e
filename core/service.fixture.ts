/**
 * A service for core/service.test.ts: it starts, and reports that it failed when
 * FIXTURE_FAIL_AFTER_MS is set; closing prints "closed" so the test sees it happened.
 */
import { loadConfig } from './config.js';
import { runService } from './service.js';

const failAfterMs = process.env.FIXTURE_FAIL_AFTER_MS;
await runService('fixture', loadConfig({ LOG_LEVEL: 'silent' }), async () => ({
  failed:
    failAfterMs === undefined
      ? undefined
      : new Promise<Error>((resolve) => setTimeout(() => resolve(new Error('the consumer stopped for good')), Number(failAfterMs))),
  async close() {
    process.stdout.write('closed\n');
  },
}));
// runService resolves once the service started and its signal handlers are installed: only a
// signal sent after this line is sure to reach them.
process.stdout.write('ready\n');
// Keeps the event loop alive like a real service's listeners do.
setInterval(() => undefined, 1000);
