-- queuectl schema, version 1. Times are integer milliseconds since the epoch (UTC): they
-- index and compare cheaply; the store turns them into ISO-8601 at the edge.

CREATE TABLE jobs (
  id               TEXT PRIMARY KEY,
  command          TEXT NOT NULL,
  -- The DLQ is the 'dead' state, not a table.
  state            TEXT NOT NULL DEFAULT 'pending'
                   CHECK (state IN ('pending', 'processing', 'completed', 'failed', 'dead', 'cancelled')),
  -- Attempts that count toward max_retries (a DLQ retry resets them to 0).
  attempts         INTEGER NOT NULL DEFAULT 0 CHECK (attempts >= 0),
  -- Every attempt ever started: numbers attempt records, which a DLQ retry keeps.
  attempt_seq      INTEGER NOT NULL DEFAULT 0 CHECK (attempt_seq >= attempts),
  max_retries      INTEGER NOT NULL CHECK (max_retries >= 0),
  priority         INTEGER NOT NULL DEFAULT 0,
  run_at           INTEGER NOT NULL,
  timeout_s        REAL CHECK (timeout_s IS NULL OR timeout_s > 0),
  queue            TEXT NOT NULL DEFAULT 'default',
  cwd              TEXT,
  created_at       INTEGER NOT NULL,
  updated_at       INTEGER NOT NULL,
  last_error       TEXT,
  exit_code        INTEGER,
  -- The lease: set while processing, the token fences every update its holder makes.
  lease_token      TEXT,
  lease_expires_at INTEGER,
  worker_id        TEXT,
  CHECK ((state = 'processing') = (lease_token IS NOT NULL))
) STRICT;

-- The claim scans this partial index in claim order and stops after LIMIT rows; it holds
-- only runnable-or-waiting jobs, so a million rows of history do not slow it down.
CREATE INDEX jobs_ready ON jobs (priority DESC, run_at, id) WHERE state IN ('pending', 'failed');
-- The rescuer looks for expired leases among processing jobs only.
CREATE INDEX jobs_leases ON jobs (lease_expires_at) WHERE state = 'processing';
-- list --state and status counts.
CREATE INDEX jobs_state_created ON jobs (state, created_at);
CREATE INDEX jobs_created ON jobs (created_at);

CREATE TABLE attempts (
  job_id       TEXT NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
  attempt      INTEGER NOT NULL,
  token        TEXT NOT NULL,
  worker_id    TEXT NOT NULL,
  started_at   INTEGER NOT NULL,
  ended_at     INTEGER,
  outcome      TEXT NOT NULL DEFAULT 'running'
               CHECK (outcome IN ('running', 'succeeded', 'failed', 'timed_out', 'killed', 'spawn_failed', 'aborted', 'lost')),
  exit_code    INTEGER,
  signal       TEXT,
  duration_ms  INTEGER,
  error        TEXT,
  output_path  TEXT,
  output_bytes INTEGER,
  -- Where the attempt's process runs, so a rescuer on the same kernel can kill an orphan.
  host         TEXT,
  pid          INTEGER,
  start_ticks  INTEGER,
  PRIMARY KEY (job_id, attempt)
) STRICT, WITHOUT ROWID;

CREATE TABLE workers (
  id           TEXT PRIMARY KEY,
  host         TEXT NOT NULL,
  pid          INTEGER NOT NULL,
  slots        INTEGER NOT NULL,
  queues       TEXT,
  started_at   INTEGER NOT NULL,
  heartbeat_at INTEGER NOT NULL,
  stop_requested_at INTEGER
) STRICT;
