import { partitions } from '../../core/pipeline.js';
import { groupIdOf, type Topology } from './types.js';

/** Kafka Streams' Topology.describe(): stages, topics, consumer groups and partitions, as text. */
export function describeTopology(topology: Topology): string {
  const lines = [`Topology ${topology.name}`];
  for (const stage of topology.stages) {
    lines.push(`  Stage ${stage.name} (${stage.kind}) — ${stage.doc}`);
    lines.push(`    consumer group: ${groupIdOf(stage)} (${partitions} partitions: up to ${partitions} replicas share it)`);
    lines.push(`    <-- ${stage.input}`);
    for (const [name, topic] of Object.entries(stage.outputs)) lines.push(`    --> ${topic} (${name})`);
    lines.push(`    --> ${stage.errors} (errors)`);
  }
  return `${lines.join('\n')}\n`;
}
