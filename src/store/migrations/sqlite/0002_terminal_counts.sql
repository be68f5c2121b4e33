-- Counts of jobs in final states, kept by the store as it moves jobs, so `status` does not
-- count a million rows of history. Active states (pending, processing, failed) are few and
-- counted from the index. Not kept by triggers: a trigger on insert made bulk enqueue 4x
-- slower, and no insert creates a job in a final state.
CREATE TABLE terminal_counts (
  state TEXT PRIMARY KEY CHECK (state IN ('completed', 'dead', 'cancelled')),
  n     INTEGER NOT NULL CHECK (n >= 0)
) STRICT, WITHOUT ROWID;

INSERT INTO terminal_counts (state, n)
  SELECT 'completed', count(*) FROM jobs WHERE state = 'completed'
  UNION ALL SELECT 'dead', count(*) FROM jobs WHERE state = 'dead'
  UNION ALL SELECT 'cancelled', count(*) FROM jobs WHERE state = 'cancelled';
