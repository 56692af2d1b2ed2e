-- A load batch can hold records of several imports, and the sink announces one RecordsLoaded
-- per batch and import: the same batch_id arrives once per import in it. Keyed by batch_id
-- alone, the second import's count was dropped as a repeat (its lineage never completed).
ALTER TABLE import_batches DROP CONSTRAINT import_batches_pkey;
ALTER TABLE import_batches ADD PRIMARY KEY (batch_id, request_id);
