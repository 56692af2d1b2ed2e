/**
 * The load stage's sink: turns RecordValidated messages of one partition into a
 * CompanyWriter batch (rows + offset in one Postgres transaction) and announces it with a
 * RecordsLoaded per import and a ProcessingError per record the database refused. The events
 * are stored in sink_outbox in the batch's transaction and sent after it commits, so only a
 * committed batch is ever announced, under the batch_id it was committed with; events whose
 * send did not complete are sent again (`sendPending`), and monitoring counts a batch_id once.
 */
import type { Postgres } from '../../core/postgres.js';
import type { CompanyRecordEvent, ProcessingError, RecordsLoaded } from '../../schemas/index.js';
import type { Emit, Sink, SinkBatch } from '../../topology/lib/index.js';
import { createCompanyWriter, type SinkRecord } from './company-writer.js';

export function toSinkRecord(message: { offset: string; key: string | undefined; value: CompanyRecordEvent }): SinkRecord {
  const record = message.value;
  const document = JSON.parse(record.document) as Record<string, unknown>;
  return {
    tenant: record.tenant,
    permalink: String(document.permalink),
    document,
    documentJson: record.document,
    source: {
      requestId: record.request_id,
      bucket: record.bucket,
      key: record.key,
      recordIndex: Number(record.record_index),
      // Events written before accepted_at existed: their load time, as the migration gave stored rows.
      acceptedAt: record.accepted_at === null || record.accepted_at === undefined ? Date.now() : Number(record.accepted_at),
    },
    offset: message.offset,
  };
}

export function createLoadSink(postgres: Postgres): Sink<CompanyRecordEvent> {
  const writer = createCompanyWriter(postgres);
  return {
    storedOffsets: (groupId, topic) => writer.storedOffsets(groupId, topic),
    async sendPending(groupId, topic, partitions, produce) {
      const entries = await writer.pendingOutbox(groupId, topic, partitions);
      for (const entry of entries) {
        await produce(entry.events as Emit[]);
        await writer.deleteOutbox([entry.id]);
      }
      return entries.length;
    },
    async write(batch: SinkBatch<CompanyRecordEvent>, produce, groupId) {
      const records = batch.messages.map(toSinkRecord);
      const firstOffset = batch.messages[0]?.offset ?? batch.nextOffset;
      const batchId = `${groupId}/${batch.topic}/${batch.partition}/${firstOffset}-${batch.nextOffset}`;
      const result = await writer.writeBatch(
        { consumerGroup: groupId, topic: batch.topic, partition: batch.partition, records, nextOffset: batch.nextOffset },
        {
          outbox: (written) => {
            const now = Date.now();
            const emits: Emit[] = [...batch.events];
            for (const counts of written.perRequest) {
              const event: RecordsLoaded = {
                request_id: counts.requestId,
                tenant: counts.tenant,
                batch_id: batchId,
                inserted: counts.inserted,
                updated: counts.updated,
                rejected: counts.rejected,
                loaded_at: now,
                unchanged: counts.unchanged,
              };
              emits.push({ to: 'loaded', key: counts.requestId, value: event, requestId: counts.requestId });
            }
            for (const rejected of written.rejected) {
              const event: ProcessingError = {
                stage: 'load',
                request_id: rejected.record.source.requestId,
                tenant: rejected.record.tenant,
                reason_code: `PG_${rejected.code}`,
                message: rejected.message,
                record_key: rejected.record.permalink,
                record_index: rejected.record.source.recordIndex,
                source_topic: batch.topic,
                source_partition: batch.partition,
                source_offset: Number(rejected.record.offset),
                failed_at: now,
              };
              emits.push({ to: 'errors', key: rejected.record.source.requestId, value: event, requestId: rejected.record.source.requestId });
            }
            return emits;
          },
        },
      );
      if (result.skipped) return { written: 0 };
      await produce((result.outbox?.events ?? []) as Emit[]);
      if (result.outbox !== undefined) await writer.deleteOutbox([result.outbox.id]);
      return { written: records.length };
    },
  };
}
