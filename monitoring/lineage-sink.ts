/**
 * The monitoring's sink: a partition batch of one event topic → lineage updates of the
 * imports it names, plus the partition's next offset, in one Postgres transaction
 * (runSinkStage then never applies a message twice, also after a crash or a rebalance).
 * Metrics are counted only after that transaction committed.
 */
import type { Emit, Sink, SinkBatch } from '../topology/lib/index.js';
import { toLineageEvent, type LineageEffects, type LineageEvent } from './lineage.js';
import type { LineageStore } from './lineage-store.js';

export function createLineageSink(store: LineageStore, options: { onCommitted?: (effects: LineageEffects) => void } = {}): Sink<unknown> {
  return {
    storedOffsets: (groupId, topic) => store.storedOffsets(groupId, topic),
    async write(batch: SinkBatch<unknown>, produce: (emits: Emit[]) => Promise<void>, groupId: string) {
      const events: Array<{ offset: string; event: LineageEvent }> = [];
      for (const message of batch.messages) {
        const event = toLineageEvent(batch.topic, message.value);
        if (event !== undefined) events.push({ offset: message.offset, event });
      }
      const result = await store.applyBatch(
        { consumerGroup: groupId, topic: batch.topic, partition: batch.partition, nextOffset: batch.nextOffset, events },
        // The monitoring emits nothing of its own; this only sends the runner's ProcessingErrors
        // for messages it could not decode, before the offsets commit (so none is ever lost).
        { beforeCommit: () => produce(batch.events) },
      );
      if (!result.skipped) options.onCommitted?.(result.effects);
      return { written: result.applied };
    },
  };
}
