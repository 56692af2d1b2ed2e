-- The content hash of the copy a company row holds (sinks/postgres/content-hash.ts: its data
-- columns, document and child rows, not its source_* columns). A copy with the stored hash is
-- counted as unchanged and rewrites nothing. Rows stored before have none: their next copy
-- counts as updated once and stores its hash.
ALTER TABLE companies ADD COLUMN content_hash text;

-- Records of an import that changed no data (RecordsLoaded.unchanged), apart from updated ones;
-- loaded = inserted + updated + unchanged. Imports counted before have none.
ALTER TABLE imports ADD COLUMN unchanged bigint NOT NULL DEFAULT 0;
