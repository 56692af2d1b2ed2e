/**
 * The lifecycle every service entry point shares: read and validate the configuration (exit 2
 * naming the bad variables), start, and on SIGTERM/SIGINT close once — finishing in-flight
 * work — then exit 0 (1 if closing failed).
 */
import type { Config } from './config.js';
import { ConfigError } from './errors.js';
import { createLogger, type Logger } from './logger.js';

export interface Closable {
  close(): Promise<void>;
}

export function readConfigOrExit<C>(load: () => C): C {
  try {
    return load();
  } catch (error) {
    process.stderr.write(`${error instanceof ConfigError ? error.message : String(error)}\n`);
    process.exit(2);
  }
}

export async function runService<C extends Config>(
  name: string,
  config: C,
  start: (config: C, logger: Logger) => Promise<Closable>,
): Promise<void> {
  const logger = createLogger(config.log, name);
  let service: Closable;
  try {
    service = await start(config, logger);
  } catch (error) {
    logger.fatal({ err: error }, `${name} failed to start`);
    process.exit(1);
  }
  let stopping = false;
  const stop = (signal: string) => {
    if (stopping) return;
    stopping = true;
    logger.info({ signal }, 'shutting down');
    service.close().then(
      () => process.exit(0),
      (error: unknown) => {
        logger.error({ err: error }, 'shutdown failed');
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
}
