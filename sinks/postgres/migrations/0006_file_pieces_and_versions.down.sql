ALTER TABLE companies DROP COLUMN source_accepted_at;
ALTER TABLE imports DROP COLUMN pieces_extracted;
ALTER TABLE imports DROP COLUMN pieces;
