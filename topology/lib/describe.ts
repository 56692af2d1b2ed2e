import { loadConfig } from '../../core/config.js';
import { groupIdOf, type Topology } from './types.js';

/**
 * Kafka Streams' Topology.describe(): stages, topics, consumer groups and partitions, as text.
 * `partitions`: each input topic's count, best as the cluster reports it (`partitionCountsOf`);
 * by default the configured PIPELINE_PARTITIONS, which a grown topic may exceed.
 */
export function describeTopology(topology: Topology, partitions: number | ((topic: string) => number) = loadConfig().pipeline.partitions): string {
  const countOf = typeof partitions === 'number' ? () => partitions : partitions;
  const lines = [`Topology ${topology.name}`];
  for (const stage of topology.stages) {
    const count = countOf(stage.input);
    lines.push(`  Stage ${stage.name} (${stage.kind}) — ${stage.doc}`);
    lines.push(`    consumer group: ${groupIdOf(stage)} (${count} partitions: up to ${count} replicas share it)`);
    lines.push(`    <-- ${stage.input}`);
    for (const [name, topic] of Object.entries(stage.outputs)) lines.push(`    --> ${topic} (${name})`);
    lines.push(`    --> ${stage.errors} (errors)`);
  }
  return `${lines.join('\n')}\n`;
}
