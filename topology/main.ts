/**
 * The processor service.
 *   processor [run] [--stages split,extract,validate,load] run stages (default: PROCESSOR_STAGES or all)
 *   processor describe                                 print the topology: stages, topics, groups, partitions
 */
import { createKafka, partitionCountsOf } from '../core/kafka.js';
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
  const topology = etlTopology({ s3 });
  process.stdout.write(describeTopology(topology, await clusterPartitionCounts(topology.stages.map((stage) => stage.input))));
  s3.destroy();
  process.exit(0);
}

/** The partition counts the cluster reports; the configured count, said so, when it cannot answer. */
async function clusterPartitionCounts(inputs: string[]): Promise<number | ((topic: string) => number)> {
  const admin = createKafka(config.kafka, { clientId: `${config.kafka.clientId}-describe` }).admin();
  try {
    await admin.connect();
    return await partitionCountsOf(admin, inputs);
  } catch (error) {
    process.stderr.write(
      `the cluster did not give its partition counts (${(error as Error).message}): showing PIPELINE_PARTITIONS=${config.pipeline.partitions}\n`,
    );
    return config.pipeline.partitions;
  } finally {
    await admin.disconnect().catch(() => undefined);
  }
}
if (command !== 'run') {
  process.stderr.write(`unknown command ${command}: use run or describe\n`);
  process.exit(2);
}

await runService('processor', config, startProcessor);
