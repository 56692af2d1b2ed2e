/**
 * Consumer lag of the pipeline's groups into monitoring's metrics (the measurement itself is
 * the stream library's, topology/lib/lag.ts). The sink stages commit their offsets as a hint
 * after each stored batch, so their lag is as fresh as their last batch.
 */
import type { KafkaClients } from '../core/kafka.js';
import type { Logger } from '../core/logger.js';
import { startLagMonitor, type LagMonitor, type LagTarget } from '../topology/lib/index.js';
import type { MonitoringMetrics } from './metrics.js';

export function startMonitoringLag(
  kafka: Pick<KafkaClients, 'admin' | 'groupOffsets'>,
  targets: readonly LagTarget[],
  metrics: MonitoringMetrics,
  options: { intervalMs: number; logger: Logger },
): LagMonitor {
  return startLagMonitor(kafka, targets, {
    ...options,
    onMeasured(target, lags) {
      let total = 0;
      for (const { partition, lag } of lags) {
        metrics.consumerLag.set({ group: target.group, topic: target.topic, partition: String(partition) }, lag);
        total += lag;
      }
      metrics.groupLag.set({ group: target.group, topic: target.topic }, total);
    },
    onRound(allMeasured) {
      if (allMeasured) metrics.lagMeasuredAt.set(Date.now() / 1000);
    },
  });
}
