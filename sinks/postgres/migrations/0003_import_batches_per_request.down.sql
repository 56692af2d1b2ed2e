-- Back to one row per batch_id: keep the first import counted for each batch.
DELETE FROM import_batches a USING import_batches b
 WHERE a.batch_id = b.batch_id AND a.ctid > b.ctid;
ALTER TABLE import_batches DROP CONSTRAINT import_batches_pkey;
ALTER TABLE import_batches ADD PRIMARY KEY (batch_id);
