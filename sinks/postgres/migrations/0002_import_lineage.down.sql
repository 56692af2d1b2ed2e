DROP TABLE IF EXISTS import_errors;
DROP TABLE IF EXISTS import_batches;
DROP TABLE IF EXISTS imports;
DELETE FROM sink_offsets WHERE consumer_group LIKE 'etl-monitoring-%';
