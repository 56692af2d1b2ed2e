/**
 * The processor service.
 *   processor [run] [--stages extract,validate,load]   run stages (default: PROCESSOR_STAGES or all)
 *   processor describe                                 print the topology: stages, topics, groups, partitions
 */
import { createS3 } from '../core/s3.js';
import { ConfigError } from '../core/errors.js';
import { createLogger } from '../core/logger.js';
import { loadProcessorConfig } from './config.js';
import { etlTopology } from './etl/topology.js';
import { describeTopology } from './lib/describe.js';
import { startProcessor } from './processor.js';

const args = process.argv.slice(2);
const command = args[0] === undefined || args[0].startsWith('--') ? 'run' : args[0];
const stagesIndex = args.indexOf('--stages');
const env = { ...process.env };
if (stagesIndex >= 0) env.PROCESSOR_STAGES = args[stagesIndex + 1] ?? '';

let config;
try {
  config = loadProcessorConfig(env);
} catch (error) {
  process.stderr.write(`${error instanceof ConfigError ? error.message : String(error)}\n`);
  process.exit(2);
}

if (command === 'describe') {
  const s3 = createS3(config.s3);
  process.stdout.write(describeTopology(etlTopology({ s3 })));
  s3.destroy();
  process.exit(0);
}
if (command !== 'run') {
  process.stderr.write(`unknown command ${command}: use run or describe\n`);
  process.exit(2);
}

const logger = createLogger(config.log, 'processor');
try {
  const processor = await startProcessor(config, logger);
  let stopping = false;
  const stop = (signal: string) => {
    if (stopping) return;
    stopping = true;
    logger.info({ signal }, 'shutting down');
    processor.close().then(
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
  logger.fatal({ err: error }, 'processor failed to start');
  process.exit(1);
}
