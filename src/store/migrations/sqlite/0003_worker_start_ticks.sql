-- A worker's process start time (clock ticks since boot, /proc/<pid>/stat field 22): with
-- host and pid it tells, on the same host, a dead worker from a live one at once, without
-- waiting for its heartbeat to go stale. Null when /proc could not be read.
ALTER TABLE workers ADD COLUMN start_ticks INTEGER;
