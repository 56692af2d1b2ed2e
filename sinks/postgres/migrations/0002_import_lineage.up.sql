-- Lineage of every import, kept by the monitoring service from the pipeline's events. Each
-- event topic is consumed by its own group whose sink updates these rows and its offsets
-- (sink_offsets) in one transaction, so every count is exactly once. Events of different
-- topics arrive in any order, so rows are created by whichever event comes first and every
-- update only adds counts or fills fields.
CREATE TABLE imports (
  request_id       text        PRIMARY KEY,
  tenant           text        NOT NULL DEFAULT '',
  status           text        NOT NULL DEFAULT 'received'
                   CHECK (status IN ('received', 'extracting', 'extracted', 'complete', 'failed')),
  filename         text,
  -- Bytes of the file (FileExtractSuccess.size, or FileExtractError.bytes_received).
  size             bigint,
  -- Records the ingress counted (FileExtractSuccess.record_count).
  records_expected bigint,
  -- Records the extract stage produced (FileExtracted.record_count); NULL until it is known.
  extracted        bigint,
  -- Records that broke the record contract (one per ValidationError).
  invalid          bigint      NOT NULL DEFAULT 0,
  -- inserted + updated (RecordsLoaded, each batch_id counted once).
  loaded           bigint      NOT NULL DEFAULT 0,
  inserted         bigint      NOT NULL DEFAULT 0,
  updated          bigint      NOT NULL DEFAULT 0,
  -- Records the database refused (RecordsLoaded.rejected).
  rejected         bigint      NOT NULL DEFAULT 0,
  -- Records a validate/load stage could not process otherwise (ProcessingError, not counted above).
  unprocessed      bigint      NOT NULL DEFAULT 0,
  -- The failure (FileExtractError, extract ProcessingError), else the first record-level error.
  error_code       text,
  error_message    text,
  received_at      timestamptz,
  extracted_at     timestamptz,
  completed_at     timestamptz,
  failed_at        timestamptz,
  -- Latest event time seen for the import (the completion time when it completes).
  last_event_at    timestamptz,
  created_at       timestamptz NOT NULL DEFAULT now(),
  updated_at       timestamptz NOT NULL DEFAULT now()
);

-- GET /imports lists newest first, optionally by tenant and status.
CREATE INDEX imports_tenant_status ON imports (tenant, status, received_at DESC NULLS LAST);
CREATE INDEX imports_tenant_received_at ON imports (tenant, received_at DESC NULLS LAST);
CREATE INDEX imports_received_at ON imports (received_at DESC NULLS LAST);

-- RecordsLoaded batches already counted: the load sink may announce a batch again after a retry.
CREATE TABLE import_batches (
  batch_id   text        PRIMARY KEY,
  request_id text        NOT NULL,
  counted_at timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX import_batches_request_id ON import_batches (request_id);

-- ProcessingErrors already counted, by the message that failed (a non-transactional producer may repeat one).
CREATE TABLE import_errors (
  stage            text        NOT NULL,
  source_topic     text        NOT NULL,
  source_partition integer     NOT NULL,
  source_offset    bigint      NOT NULL,
  request_id       text        NOT NULL,
  reason_code      text        NOT NULL,
  counted_at       timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (stage, source_topic, source_partition, source_offset)
);

CREATE INDEX import_errors_request_id ON import_errors (request_id);
