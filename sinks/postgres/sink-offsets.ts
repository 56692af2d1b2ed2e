/**
 * The sink-offset protocol every PostgreSQL sink of the pipeline follows for exactly-once
 * writes (table sink_offsets, migration 0001): in the transaction that writes a partition
 * batch, lock the partition's offset row first (created at 0 if new), skip what lies below the
 * stored offset, write, then advance the offset in the same transaction. A replica that takes
 * the partition over waits on the lock and then sees the advanced offset; a crash before the
 * commit leaves both the rows and the offset as they were.
 */
import pgPromise, { type IDatabase, type ITask } from 'pg-promise';

/** Which offset row: the consumer group, topic and partition of a batch. */
export interface OffsetKey {
  consumerGroup: string;
  topic: string;
  partition: number;
}

const where = 'consumer_group = $1 AND topic = $2 AND partition = $3';
const keyOf = (key: OffsetKey) => [key.consumerGroup, key.topic, key.partition];

/** Locks the partition's offset row for the rest of the transaction; the stored next offset (one round trip). */
export async function lockStoredOffset(task: ITask<unknown>, key: OffsetKey): Promise<bigint> {
  const [, rows] = await task.multi(
    pgPromise.as.format(
      'INSERT INTO sink_offsets (consumer_group, topic, partition, next_offset) VALUES ($1, $2, $3, 0) ' +
        `ON CONFLICT (consumer_group, topic, partition) DO NOTHING;\nSELECT next_offset FROM sink_offsets WHERE ${where} FOR UPDATE`,
      keyOf(key),
    ),
  );
  return BigInt((rows?.[0] as { next_offset: string } | undefined)?.next_offset ?? '0');
}

/** Stores the partition's next offset, in the transaction that holds its lock. */
export async function advanceStoredOffset(task: ITask<unknown>, key: OffsetKey, next: bigint): Promise<void> {
  await task.none(`UPDATE sink_offsets SET next_offset = $4, updated_at = now() WHERE ${where}`, [...keyOf(key), next.toString()]);
}

/** The stored next offset of each partition of `topic` for `consumerGroup` (where to resume on assignment). */
export async function readStoredOffsets(db: IDatabase<unknown>, consumerGroup: string, topic: string): Promise<Map<number, string>> {
  const rows = await db.any<{ partition: number; next_offset: string }>(
    'SELECT partition, next_offset FROM sink_offsets WHERE consumer_group = $1 AND topic = $2',
    [consumerGroup, topic],
  );
  return new Map(rows.map((row) => [row.partition, String(row.next_offset)]));
}
