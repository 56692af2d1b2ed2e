/**
 * Consumer lag of a group on a topic: the end of each partition, as a read_committed consumer
 * sees it (the last stable offset: an open transaction is not lag yet), minus the group's
 * committed offset. A group that has committed nothing for a partition lags by all of it
 * (end − start). The processor measures its stages' groups, monitoring every group it follows;
 * both with these functions.
 */
import { connectOnce, readCommitted, type Admin, type CommittedOffset, type GroupOffsetReader, type KafkaClients, type LazyClient } from '../../core/kafka.js';
import type { Logger } from '../../core/logger.js';

export interface LagTarget {
  group: string;
  topic: string;
}

export interface PartitionLag {
  partition: number;
  lag: number;
}

/** Pure: lag per partition, ordered by partition, never negative. */
export function computeLag(
  ends: ReadonlyArray<{ partition: number; high: string; low: string }>,
  committed: ReadonlyMap<number, Pick<CommittedOffset, 'offset'>>,
): PartitionLag[] {
  return ends
    .map((end) => {
      const done = committed.get(end.partition)?.offset ?? null;
      const lag = BigInt(end.high) - BigInt(done ?? end.low);
      return { partition: end.partition, lag: lag > 0n ? Number(lag) : 0 };
    })
    .sort((a, b) => a.partition - b.partition);
}

export async function measureLag(admin: Admin, offsets: GroupOffsetReader, topic: string): Promise<PartitionLag[]> {
  const ends = await admin.fetchTopicOffsets(topic, { isolationLevel: readCommitted });
  const committed = await offsets.committed(
    topic,
    ends.map((end) => end.partition),
  );
  return computeLag(ends, committed);
}

export interface LagMonitor {
  stop(): Promise<void>;
}

/**
 * Measures every target every `intervalMs` (one round at a time; a round that is still running
 * when the next is due is not doubled) and hands each result to `onMeasured`; `onRound` learns
 * whether every target of a round was measured.
 */
export function startLagMonitor(
  kafka: Pick<KafkaClients, 'admin' | 'groupOffsets'>,
  targets: readonly LagTarget[],
  options: {
    intervalMs: number;
    logger: Logger;
    onMeasured: (target: LagTarget, lags: PartitionLag[]) => void;
    onRound?: (allMeasured: boolean) => void;
    /** An admin client the caller owns and disconnects; by default the monitor opens its own. */
    admin?: LazyClient<Admin>;
  },
): LagMonitor {
  const admin = options.admin ?? connectOnce(kafka.admin());
  const readers = new Map(targets.map((target) => [target, kafka.groupOffsets(target.group)]));
  let round: Promise<void> | undefined;
  let stopped = false;
  const measure = async () => {
    const client = await admin.connected();
    const outcomes = await Promise.all(
      targets.map(async (target) => {
        try {
          options.onMeasured(target, await measureLag(client, readers.get(target)!, target.topic));
          return true;
        } catch (error) {
          options.logger.debug({ err: error, group: target.group, topic: target.topic }, 'measuring lag failed');
          return false;
        }
      }),
    );
    options.onRound?.(outcomes.every(Boolean));
  };
  const tick = () => {
    if (stopped || round !== undefined) return;
    round = measure()
      .catch((error: unknown) => options.logger.debug({ err: error }, 'measuring lag failed'))
      .finally(() => {
        round = undefined;
      });
  };
  tick();
  const timer = setInterval(tick, options.intervalMs);
  timer.unref();
  return {
    async stop() {
      stopped = true;
      clearInterval(timer);
      await round;
      await Promise.all([...readers.values()].map((reader) => reader.close().catch(() => undefined)));
      if (options.admin === undefined) await admin.disconnect().catch(() => undefined);
    },
  };
}
