/** Entry point of the monitoring service: `node dist/monitoring/main.js` (or `tsx monitoring/main.ts`). */
import { ConfigError } from '../core/errors.js';
import { createLogger } from '../core/logger.js';
import { loadMonitoringConfig } from './config.js';
import { startMonitoring } from './server.js';

let config;
try {
  config = loadMonitoringConfig();
} catch (error) {
  process.stderr.write(`${error instanceof ConfigError ? error.message : String(error)}\n`);
  process.exit(2);
}
const logger = createLogger(config.log, 'monitoring');
try {
  const monitoring = await startMonitoring(config, logger);
  let stopping = false;
  const stop = (signal: string) => {
    if (stopping) return;
    stopping = true;
    logger.info({ signal }, 'shutting down');
    monitoring.close().then(
      () => process.exit(0),
      (error: unknown) => {
        logger.error({ err: error }, 'shutdown failed');
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
} catch (error) {
  logger.fatal({ err: error }, 'monitoring failed to start');
  process.exit(1);
}
