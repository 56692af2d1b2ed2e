-- The load sink's outbox: the events announcing a batch (RecordsLoaded, ProcessingError for
-- refused rows) are stored in the same transaction as the batch's rows and offset, and sent to
-- Kafka only after that transaction commits; a row is deleted once Kafka acknowledged its
-- events. Sending them before the commit (as before) let a replica killed in between announce a
-- batch that was then written again with other boundaries, under another batch_id: its records
-- were counted twice in the import's lineage.
CREATE TABLE sink_outbox (
  id             bigserial   PRIMARY KEY,
  consumer_group text        NOT NULL,
  topic          text        NOT NULL,
  partition      integer     NOT NULL,
  events         jsonb       NOT NULL,
  created_at     timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX sink_outbox_by_partition ON sink_outbox (consumer_group, topic, partition, id);
