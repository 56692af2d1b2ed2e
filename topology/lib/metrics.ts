import { Counter, Gauge, Histogram, type Registry } from 'prom-client';

export interface StageMetrics {
  recordsIn: Counter<'stage'>;
  recordsOut: Counter<'stage' | 'topic'>;
  errors: Counter<'stage' | 'reason'>;
  retries: Counter<'stage'>;
  skipped: Counter<'stage'>;
  failedAfterAttempts: Counter<'stage' | 'reason'>;
  batchSize: Histogram<'stage'>;
  batchSeconds: Histogram<'stage'>;
  lag: Gauge<'stage' | 'topic' | 'partition'>;
  assignedPartitions: Gauge<'stage'>;
}

export function createStageMetrics(registry: Registry): StageMetrics {
  return {
    recordsIn: new Counter({
      name: 'processor_records_in_total',
      help: 'Input messages processed (committed) per stage.',
      labelNames: ['stage'],
      registers: [registry],
    }),
    recordsOut: new Counter({
      name: 'processor_records_out_total',
      help: 'Messages produced per stage and topic (committed).',
      labelNames: ['stage', 'topic'],
      registers: [registry],
    }),
    errors: new Counter({
      name: 'processor_errors_total',
      help: 'Messages routed to the error topic, per stage and reason.',
      labelNames: ['stage', 'reason'],
      registers: [registry],
    }),
    retries: new Counter({
      name: 'processor_retries_total',
      help: 'Transient failures retried with backoff (position kept).',
      labelNames: ['stage'],
      registers: [registry],
    }),
    skipped: new Counter({
      name: 'processor_messages_skipped_total',
      help: 'Fetched messages skipped because their outputs were already committed (after a rebalance or a takeover).',
      labelNames: ['stage'],
      registers: [registry],
    }),
    failedAfterAttempts: new Counter({
      name: 'processor_messages_failed_after_attempts_total',
      help: 'Messages routed to the error topic after an unexpected error (a bug, not the infrastructure) repeated on every attempt.',
      labelNames: ['stage', 'reason'],
      registers: [registry],
    }),
    batchSize: new Histogram({
      name: 'processor_batch_size',
      help: 'Input messages per committed batch (transaction or sink write).',
      labelNames: ['stage'],
      buckets: [1, 5, 10, 50, 100, 250, 500, 1000, 2500, 5000],
      registers: [registry],
    }),
    batchSeconds: new Histogram({
      name: 'processor_batch_duration_seconds',
      help: 'Time to process and commit one batch.',
      labelNames: ['stage'],
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60],
      registers: [registry],
    }),
    lag: new Gauge({
      name: 'processor_consumer_lag',
      help: 'Messages between the group committed offset and the end of each partition.',
      labelNames: ['stage', 'topic', 'partition'],
      registers: [registry],
    }),
    assignedPartitions: new Gauge({
      name: 'processor_assigned_partitions',
      help: 'Input partitions this replica owns per stage.',
      labelNames: ['stage'],
      registers: [registry],
    }),
  };
}
