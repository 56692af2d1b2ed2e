-- The error report of an import (GET /imports/<id>/errors): every ValidationError and
-- ProcessingError the monitoring follows, with what the user needs to fix the record.
-- An entry is the error event itself: (event_topic, event_partition, event_offset) is unique,
-- so a batch applied again adds nothing.
CREATE TABLE import_error_report (
  id               bigserial   PRIMARY KEY,
  tenant           text        NOT NULL,
  request_id       text        NOT NULL,
  -- validation: the record broke the contract; processing: a stage could not process it;
  -- rejected: the database refused the row (a load ProcessingError with a PG_ code).
  kind             text        NOT NULL CHECK (kind IN ('validation', 'processing', 'rejected')),
  stage            text        NOT NULL,
  code             text        NOT NULL,
  message          text        NOT NULL,
  record_index     bigint,
  record_key       text,
  -- [{ "path", "keyword", "message" }] of a validation error.
  violations       jsonb,
  source_topic     text        NOT NULL,
  source_partition integer     NOT NULL,
  source_offset    bigint      NOT NULL,
  event_topic      text        NOT NULL,
  event_partition  integer     NOT NULL,
  event_offset     bigint      NOT NULL,
  detected_at      timestamptz NOT NULL,
  stored_at        timestamptz NOT NULL DEFAULT now(),
  UNIQUE (event_topic, event_partition, event_offset)
);

-- Pages of one import in record order: file-level errors (no record index) first.
CREATE INDEX import_error_report_page ON import_error_report (tenant, request_id, (coalesce(record_index, -1)), id);
-- The retention sweep.
CREATE INDEX import_error_report_stored_at ON import_error_report (stored_at);

-- Where the ingress stored the file (s3://bucket/key), for the import's page.
ALTER TABLE imports ADD COLUMN raw_object text;
-- When the ingress accepted the file (a replay carries its original's, so it orders the same way)
-- and, for a replay, the import it replays.
ALTER TABLE imports ADD COLUMN accepted_at timestamptz;
ALTER TABLE imports ADD COLUMN replay_of text;

-- Replay runs (npm run replay, POST /imports/<id>/replay, POST /tenants/<t>/replay): one row per
-- file of a run. A run resumed skips the files it already emitted.
CREATE TABLE replay_files (
  run_id            text        NOT NULL,
  tenant            text        NOT NULL,
  request_id        text        NOT NULL,
  replay_request_id text        NOT NULL,
  -- pending → emitting → emitted, or failed (with its code and message)
  state             text        NOT NULL CHECK (state IN ('pending', 'emitting', 'emitted', 'failed')),
  error_code        text,
  error_message     text,
  updated_at        timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (run_id, tenant, request_id)
);
