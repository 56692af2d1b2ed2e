DROP TABLE replay_files;
ALTER TABLE imports DROP COLUMN replay_of;
ALTER TABLE imports DROP COLUMN accepted_at;
ALTER TABLE imports DROP COLUMN raw_object;
DROP TABLE import_error_report;
