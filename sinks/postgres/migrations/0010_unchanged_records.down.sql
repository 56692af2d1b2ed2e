ALTER TABLE imports DROP COLUMN unchanged;
ALTER TABLE companies DROP COLUMN content_hash;
