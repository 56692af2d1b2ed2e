/**
 * The lifecycle every service entry point shares: read and validate the configuration (exit 2
 * naming the bad variables), start, and on SIGTERM/SIGINT close once — finishing in-flight
 * work — then exit 0 (1 if closing failed); when the service reports that it failed for good,
 * close it the same way and exit 1.
 */
import type { Config } from './config.js';
import { ConfigError } from './errors.js';
import { createLogger, type Logger } from './logger.js';

export interface Closable {
  close(): Promise<void>;
  /** Settles when the service cannot go on (e.g. a consumer stopped for good): it is closed and the process exits 1, for its supervisor to restart it. */
  readonly failed?: Promise<Error>;
}

/** A service's `failed` promise and the function that settles it (first call wins). */
export function failureSignal(): { failed: Promise<Error>; fail: (error: Error) => void } {
  let fail: (error: Error) => void = () => undefined;
  const failed = new Promise<Error>((resolve) => (fail = resolve));
  return { failed, fail };
}

/**
 * A service's `close`: runs `steps` on the first call only, and every call (SIGTERM after a
 * failure, a test's second close) waits for that one run.
 */
export function closeOnce(steps: () => Promise<void>): () => Promise<void> {
  let closing: Promise<void> | undefined;
  return () => (closing ??= steps());
}

export function readConfigOrExit<C>(load: () => C): C {
  try {
    return load();
  } catch (error) {
    process.stderr.write(`${error instanceof ConfigError ? error.message : String(error)}\n`);
    process.exit(2);
  }
}

export async function runService<C extends Config>(name: string, config: C, start: (config: C, logger: Logger) => Promise<Closable>): Promise<void> {
  const logger = createLogger(config.log, name);
  let service: Closable;
  try {
    service = await start(config, logger);
  } catch (error) {
    logger.fatal({ err: error }, `${name} failed to start`);
    process.exit(1);
  }
  let stopping = false;
  const stop = (reason: string, exitCode: number) => {
    if (stopping) return;
    stopping = true;
    logger.info({ reason }, 'shutting down');
    service.close().then(
      () => process.exit(exitCode),
      (error: unknown) => {
        logger.error({ err: error }, 'shutdown failed');
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', () => stop('SIGTERM', 0));
  process.on('SIGINT', () => stop('SIGINT', 0));
  // Staying up with a dead part would look alive (liveness) while doing nothing: exit instead.
  void service.failed?.then((error) => {
    logger.fatal({ err: error }, `${name} cannot go on; closing and exiting 1 so that its supervisor restarts it`);
    stop('failed', 1);
  });
}
