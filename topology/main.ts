/**
 * The processor service.
 *   processor [run] [--stages split,extract,validate,load] run stages (default: PROCESSOR_STAGES or all)
 *   processor describe                                 print the topology: stages, topics, groups, partitions
 */
import { createS3 } from '../core/s3.js';
import { readConfigOrExit, runService } from '../core/service.js';
import { loadProcessorConfig } from './config.js';
import { etlTopology } from './etl/topology.js';
import { describeTopology } from './lib/describe.js';
import { startProcessor } from './processor.js';

const args = process.argv.slice(2);
const command = args[0] === undefined || args[0].startsWith('--') ? 'run' : args[0];
const stagesIndex = args.indexOf('--stages');
const env = { ...process.env };
if (stagesIndex >= 0) env.PROCESSOR_STAGES = args[stagesIndex + 1] ?? '';

const config = readConfigOrExit(() => loadProcessorConfig(env));

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

await runService('processor', config, startProcessor);
