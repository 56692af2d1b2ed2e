import t from 'tap';
import { metric, parseMetrics } from './metrics.js';

const exposition = `# HELP processor_records_in_total Records read.
# TYPE processor_records_in_total counter
processor_records_in_total{stage="extract",partition="0"} 12
processor_records_in_total{stage="extract",partition="1"} 30
processor_records_in_total{stage="load",partition="0"} 5
processor_consumer_lag{stage="load",topic="Record\\"Validated",partition="2"} 0
nodejs_eventloop_lag_p99_seconds 0.0125
process_cpu_seconds_total 1.5e+1

`;

t.test('parseMetrics reads names, labels (escapes kept) and values, and skips comments', async (t) => {
  const samples = parseMetrics(exposition);
  t.equal(samples.length, 6);
  t.same(samples[0], { name: 'processor_records_in_total', labels: { stage: 'extract', partition: '0' }, value: 12 });
  t.same(samples[3]?.labels, { stage: 'load', topic: 'Record\\"Validated', partition: '2' });
  t.same(samples[4], { name: 'nodejs_eventloop_lag_p99_seconds', labels: {}, value: 0.0125 });
  t.equal(samples[5]?.value, 15);
});

t.test('metric sums the series whose labels include the ones asked for', async (t) => {
  const samples = parseMetrics(exposition);
  t.equal(metric(samples, 'processor_records_in_total'), 47);
  t.equal(metric(samples, 'processor_records_in_total', { stage: 'extract' }), 42);
  t.equal(metric(samples, 'processor_records_in_total', { stage: 'extract', partition: '1' }), 30);
  t.equal(metric(samples, 'processor_records_in_total', { stage: 'validate' }), 0);
  t.equal(metric(samples, 'no_such_metric'), 0);
});
