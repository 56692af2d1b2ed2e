import { readConfig, type Config } from '../core/config.js';
import { EnvReader } from '../core/env.js';
import { stageNames, type StageName } from './etl/topology.js';

export interface ProcessorConfig extends Config {
  processor: {
    /** PROCESSOR_HOST */
    host: string;
    /** PROCESSOR_PORT: /liveness, /readiness, /metrics. */
    port: number;
    /** PROCESSOR_STAGES: comma-separated subset of split,extract,validate,load (default: all). */
    stages: StageName[];
    /** LOAD_BATCH_MAX_RECORDS: most records per Postgres transaction. */
    loadBatchMaxRecords: number;
    /** LOAD_BATCH_LINGER_MS: how long a fetch may wait to fill a batch. */
    loadBatchLingerMs: number;
    /** LOAD_BATCH_MAX_BYTES: bytes per partition per fetch. */
    loadBatchMaxBytes: number;
    /**
     * EXTRACT_RECORDS_PER_TRANSACTION: a big file's records are committed in transactions of
     * this many, so validate and load start on the first ones while extract goes on (and no
     * transaction outlives the transaction timeout however big the file).
     */
    extractRecordsPerTransaction: number;
    /** PROCESSOR_LAG_INTERVAL_MS: how often consumer lag is measured for /metrics. */
    lagIntervalMs: number;
    /**
     * PROCESSOR_MAX_ATTEMPTS: attempts of a message that fails with an unexpected error (a bug,
     * a changed table) before it goes to ProcessingError; infrastructure failures retry for ever.
     */
    maxAttempts: number;
  };
}

export function loadProcessorConfig(env: NodeJS.ProcessEnv = process.env): ProcessorConfig {
  const reader = new EnvReader(env);
  const base = readConfig(reader);
  const stages = reader.list('PROCESSOR_STAGES', stageNames);
  const unknown = stages.filter((stage) => !(stageNames as readonly string[]).includes(stage));
  if (unknown.length > 0) reader.problems.push(`PROCESSOR_STAGES: unknown stage(s) ${unknown.join(', ')}; known: ${stageNames.join(', ')}`);
  const config: ProcessorConfig = {
    ...base,
    processor: {
      host: reader.string('PROCESSOR_HOST', '127.0.0.1'),
      port: reader.int('PROCESSOR_PORT', 3001, { min: 0, max: 65535 }),
      stages: stages as StageName[],
      loadBatchMaxRecords: reader.int('LOAD_BATCH_MAX_RECORDS', 1000, { min: 1, max: 100_000 }),
      loadBatchLingerMs: reader.int('LOAD_BATCH_LINGER_MS', 200, { min: 0, max: 60_000 }),
      loadBatchMaxBytes: reader.int('LOAD_BATCH_MAX_BYTES', 4 * 1024 * 1024, { min: 1024 }),
      extractRecordsPerTransaction: reader.int('EXTRACT_RECORDS_PER_TRANSACTION', 2000, { min: 1, max: 100_000 }),
      lagIntervalMs: reader.int('PROCESSOR_LAG_INTERVAL_MS', 5000, { min: 100 }),
      maxAttempts: reader.int('PROCESSOR_MAX_ATTEMPTS', 5, { min: 1, max: 1000 }),
    },
  };
  reader.done();
  return config;
}
