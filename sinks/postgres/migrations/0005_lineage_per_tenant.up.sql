-- Request ids are chosen by clients: two tenants may send the same X-Request-Id, and each is
-- its own import. An import is (tenant, request_id); so are its counted batches and errors.
ALTER TABLE imports DROP CONSTRAINT imports_pkey;
ALTER TABLE imports ADD PRIMARY KEY (tenant, request_id);
CREATE INDEX imports_request_id ON imports (request_id);

ALTER TABLE import_batches ADD COLUMN tenant text NOT NULL DEFAULT '';
ALTER TABLE import_batches DROP CONSTRAINT import_batches_pkey;
ALTER TABLE import_batches ADD PRIMARY KEY (batch_id, tenant, request_id);

ALTER TABLE import_errors ADD COLUMN tenant text NOT NULL DEFAULT '';
DROP INDEX import_errors_request_id;
CREATE INDEX import_errors_import ON import_errors (tenant, request_id);
