import t from 'tap';
import { createS3 } from '../../core/s3.js';
import { loadConfig } from '../../core/config.js';
import { etlTopology } from '../etl/topology.js';
import { describeTopology } from './describe.js';
import { defineTopology } from './types.js';

t.test('describe lists every stage with its group, input, outputs and error route', async (t) => {
  const s3 = createS3(loadConfig({}).s3);
  t.teardown(() => s3.destroy());
  const text = describeTopology(etlTopology({ s3 }));
  t.match(text, /Stage split \(transform\)[\s\S]*consumer group: etl-split \(\d+ partitions[\s\S]*<-- FileExtractSuccess[\s\S]*--> FilePiece \(pieces\)/);
  t.match(
    text,
    /Stage extract \(transform\)[\s\S]*consumer group: etl-extract \(\d+ partitions[\s\S]*<-- FilePiece[\s\S]*--> RecordExtracted \(records\)[\s\S]*--> FileExtracted \(summary\)/,
  );
  t.match(text, /Stage validate \(transform\)[\s\S]*<-- RecordExtracted[\s\S]*--> RecordValidated \(valid\)[\s\S]*--> ValidationError \(invalid\)/);
  t.match(text, /Stage load \(sink\)[\s\S]*consumer group: etl-load[\s\S]*<-- RecordValidated[\s\S]*--> RecordsLoaded[\s\S]*--> ProcessingError \(errors\)/);
});

t.test('a topology is checked when declared', async (t) => {
  const stage = { kind: 'transform' as const, name: 'a', doc: '', input: 'X', outputs: { out: 'Y' }, errors: 'E', process: () => [] };
  t.throws(() => defineTopology({ name: 'bad', stages: [stage, stage] }), /duplicate stage name a/);
  t.throws(() => defineTopology({ name: 'loop', stages: [{ ...stage, outputs: { out: 'X' } }] }), /writes to its own input/);
});

t.test('describe prints the partition counts it is given, else the configured PIPELINE_PARTITIONS', async (t) => {
  const stage = { kind: 'transform' as const, name: 'a', doc: '', input: 'X', outputs: { out: 'Y' }, errors: 'E', process: () => [] };
  const topology = defineTopology({ name: 'counts', stages: [stage, { ...stage, name: 'b', input: 'Y', outputs: { out: 'Z' } }] });
  t.match(describeTopology(topology), new RegExp(`etl-a \\(${loadConfig().pipeline.partitions} partitions`));
  t.match(describeTopology(topology, 6), /etl-a \(6 partitions: up to 6 replicas share it\)[\s\S]*etl-b \(6 partitions/);
  const real = describeTopology(topology, (topic) => ({ X: 3, Y: 12 })[topic]!);
  t.match(
    real,
    /etl-a \(3 partitions: up to 3 replicas share it\)[\s\S]*etl-b \(12 partitions: up to 12 replicas share it\)/,
    "each stage its input topic's count",
  );
});
