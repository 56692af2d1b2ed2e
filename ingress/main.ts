/** Entry point of the ingress service: `node dist/ingress/main.js` (or `tsx ingress/main.ts`). */
import { ConfigError } from '../core/errors.js';
import { createLogger } from '../core/logger.js';
import { loadIngressConfig } from './config.js';
import { startIngress } from './server.js';

let config;
try {
  config = loadIngressConfig();
} catch (error) {
  process.stderr.write(`${error instanceof ConfigError ? error.message : String(error)}\n`);
  process.exit(2);
}
const logger = createLogger(config.log, 'ingress');
try {
  const ingress = await startIngress(config, logger);
  let stopping = false;
  const stop = (signal: string) => {
    if (stopping) return;
    stopping = true;
    logger.info({ signal }, 'shutting down');
    ingress.close().then(
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
  logger.fatal({ err: error }, 'ingress failed to start');
  process.exit(1);
}
