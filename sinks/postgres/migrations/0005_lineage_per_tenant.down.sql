-- Back to one import per request id: of imports that share one, the earliest received stays.
DELETE FROM imports a USING imports b
 WHERE a.request_id = b.request_id
   AND (a.received_at, a.tenant) > (b.received_at, b.tenant);
DROP INDEX imports_request_id;
ALTER TABLE imports DROP CONSTRAINT imports_pkey;
ALTER TABLE imports ADD PRIMARY KEY (request_id);

DELETE FROM import_batches a USING import_batches b
 WHERE a.batch_id = b.batch_id AND a.request_id = b.request_id AND a.ctid > b.ctid;
ALTER TABLE import_batches DROP CONSTRAINT import_batches_pkey;
ALTER TABLE import_batches DROP COLUMN tenant;
ALTER TABLE import_batches ADD PRIMARY KEY (batch_id, request_id);

DROP INDEX import_errors_import;
ALTER TABLE import_errors DROP COLUMN tenant;
CREATE INDEX import_errors_request_id ON import_errors (request_id);
