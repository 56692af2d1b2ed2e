-- A file is extracted in pieces: the lineage adds them up and knows the file is extracted once
-- every piece is. Imports extracted before pieces existed were one piece.
ALTER TABLE imports ADD COLUMN pieces integer;
ALTER TABLE imports ADD COLUMN pieces_extracted integer NOT NULL DEFAULT 0;
UPDATE imports SET pieces = 1, pieces_extracted = 1 WHERE extracted IS NOT NULL;

-- The version of a company row: (source_accepted_at, source_request_id, source_record_index).
-- The load stage writes a copy only over an older one, so the final row is the copy of the
-- import the ingress accepted last (within a file, the last record), in whatever order the
-- copies are loaded. Rows loaded before carry their load time as the acceptance time.
ALTER TABLE companies ADD COLUMN source_accepted_at bigint;
UPDATE companies SET source_accepted_at = (extract(epoch FROM loaded_at) * 1000)::bigint;
ALTER TABLE companies ALTER COLUMN source_accepted_at SET NOT NULL;
