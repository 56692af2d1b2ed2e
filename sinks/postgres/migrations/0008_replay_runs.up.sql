-- A replay run as it was asked for: its tenant, its time window and, in replay_files, every file
-- it replays, listed when it starts. A run resumed replays that list, not a new listing (which
-- would lose the window), and its progress has a real total from the first answer on.
CREATE TABLE replay_runs (
  run_id     text        PRIMARY KEY,
  tenant     text        NOT NULL,
  since      timestamptz,
  until      timestamptz,
  created_at timestamptz NOT NULL DEFAULT now()
);
-- Runs started before this table: their window is not known.
INSERT INTO replay_runs (run_id, tenant) SELECT run_id, min(tenant) FROM replay_files GROUP BY run_id;

-- What the replay of a file needs, copied from the import when the run starts: the object to read
-- (a replay's own raw_object is its original's file) and the record count, for the run's total.
ALTER TABLE replay_files ADD COLUMN position integer NOT NULL DEFAULT 0;
ALTER TABLE replay_files ADD COLUMN raw_object text;
ALTER TABLE replay_files ADD COLUMN received_at timestamptz;
ALTER TABLE replay_files ADD COLUMN accepted_at timestamptz;
ALTER TABLE replay_files ADD COLUMN filename text;
ALTER TABLE replay_files ADD COLUMN records_expected bigint;
-- Who emits the file: a monitoring replica takes a pending file with one UPDATE (so two replicas,
-- or a resumed run and an old one, never replay it both) and renews claimed_at while it reads and
-- sends it; a claim left by a process that died is taken over once it is older than the lease.
ALTER TABLE replay_files ADD COLUMN claimed_by text;
ALTER TABLE replay_files ADD COLUMN claimed_at timestamptz;
CREATE INDEX replay_files_claim ON replay_files (run_id, state, position);
