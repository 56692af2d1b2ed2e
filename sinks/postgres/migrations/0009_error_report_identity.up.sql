-- A stage that processes a message again (a redelivery) emits its error again, as a new event at
-- another offset: an entry is the error (its import, kind, stage and source record), not the
-- event that carried it, so the report lists it once.
DELETE FROM import_error_report a USING import_error_report b
  WHERE a.id > b.id AND a.tenant = b.tenant AND a.request_id = b.request_id AND a.kind = b.kind AND a.stage = b.stage
    AND a.source_topic = b.source_topic AND a.source_partition = b.source_partition AND a.source_offset = b.source_offset
    AND coalesce(a.record_index, -1) = coalesce(b.record_index, -1);
CREATE UNIQUE INDEX import_error_report_identity
  ON import_error_report (tenant, request_id, kind, stage, source_topic, source_partition, source_offset, (coalesce(record_index, -1)));
