/**
 * Consumer lag of the pipeline's groups, measured with the Kafka admin client: the end of
 * each partition minus the group's committed offset (the sink stages commit theirs as a hint
 * after each stored batch). A group that has committed nothing yet lags by the whole
 * partition (end − start).
 */
import { readCommitted, type Admin } from '../core/kafka.js';
import type { Logger } from '../core/logger.js';
import type { LagTarget } from './config.js';
import type { MonitoringMetrics } from './metrics.js';

export interface PartitionLag {
  partition: number;
  lag: number;
}

/** Pure: lag per partition from the topic's offsets and the group's committed ones ('-1': none). */
export function computeLag(
  ends: ReadonlyArray<{ partition: number; high: string; low: string }>,
  committed: ReadonlyArray<{ partition: number; offset: string }>,
): PartitionLag[] {
  const byPartition = new Map(committed.map((entry) => [entry.partition, BigInt(entry.offset)]));
  return ends
    .map((end) => {
      const done = byPartition.get(end.partition) ?? -1n;
      const from = done < 0n ? BigInt(end.low) : done;
      const lag = BigInt(end.high) - from;
      return { partition: end.partition, lag: lag > 0n ? Number(lag) : 0 };
    })
    .sort((a, b) => a.partition - b.partition);
}

export async function measureLag(admin: Admin, target: LagTarget): Promise<PartitionLag[]> {
  const [ends, committed] = await Promise.all([
    // Under read_committed the end is the last stable offset: open transactions are not lag yet.
    admin.fetchTopicOffsets(target.topic, { isolationLevel: readCommitted }),
    admin.fetchOffsets({ groupId: target.group, topics: [target.topic] }),
  ]);
  return computeLag(ends, committed.find((entry) => entry.topic === target.topic)?.partitions ?? []);
}

/** Measures every target every `intervalMs` into the metrics; returns a stop function. */
export function startLagMonitor(
  admin: Admin,
  targets: readonly LagTarget[],
  metrics: MonitoringMetrics,
  options: { intervalMs: number; logger: Logger },
): () => void {
  let running = false;
  const measure = async () => {
    if (running) return;
    running = true;
    try {
      let ok = true;
      await Promise.all(
        targets.map(async (target) => {
          try {
            const lags = await measureLag(admin, target);
            let total = 0;
            for (const { partition, lag } of lags) {
              metrics.consumerLag.set({ group: target.group, topic: target.topic, partition: String(partition) }, lag);
              total += lag;
            }
            metrics.groupLag.set({ group: target.group, topic: target.topic }, total);
          } catch (error) {
            ok = false;
            options.logger.debug({ err: error, group: target.group, topic: target.topic }, 'measuring lag failed');
          }
        }),
      );
      if (ok) metrics.lagMeasuredAt.set(Date.now() / 1000);
    } finally {
      running = false;
    }
  };
  void measure();
  const timer = setInterval(() => void measure(), options.intervalMs);
  timer.unref();
  return () => clearInterval(timer);
}
