DROP TABLE import_error_report;
ALTER TABLE imports DROP COLUMN raw_object;
