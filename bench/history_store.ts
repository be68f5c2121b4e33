/**
 * A store with a long history, built fast: the database is created by queuectl (so the
 * schema and migrations are the real ones), then `size` completed jobs, each with one
 * succeeded attempt row, are inserted by SQL through node:sqlite in one transaction, and
 * the final-state counts that `status` reads are brought up to date. Rows are shaped like
 * real ones (16-character ids, a UUID lease token, absolute output paths, the host
 * identity string), so bytes per job is realistic. Built once per invocation and shared by
 * scenarios 4 and 6.
 *
 * If a migration changes the jobs or attempts columns, this is the one place to adapt.
 *
 * @module
 */

import { DatabaseSync } from "node:sqlite";
import { hostIdentity } from "../src/pool/process.ts";
import { type Context, dbPath, fileSize, freshHome } from "./lib.ts";

/** A built history store. */
export interface HistoryStore {
  home: string;
  jobs: number;
  /** Database file size right after building (WAL checkpointed), bytes. */
  bytes: number;
  buildSeconds: number;
}

const DAY_MS = 86_400_000;

export async function historyStore(ctx: Context, size: number): Promise<HistoryStore> {
  const key = `history-${size}`;
  const cached = ctx.shared.get(key) as HistoryStore | undefined;
  if (cached) return cached;
  ctx.log(`building a store with ${size.toLocaleString("en-US")} finished jobs…`);
  const home = await freshHome(ctx, "history");
  const t0 = performance.now();
  const db = new DatabaseSync(dbPath(home));
  try {
    db.exec("PRAGMA busy_timeout = 5000");
    db.exec("PRAGMA synchronous = OFF"); // a fixture: durability is not the point here
    const start = Date.now() - 30 * DAY_MS;
    const step = (30 * DAY_MS) / size;
    const host = hostIdentity().replaceAll("'", "''");
    db.exec("BEGIN IMMEDIATE");
    db.exec(`
      WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < ${size})
      INSERT INTO jobs (id, command, state, attempts, attempt_seq, max_retries, priority, run_at,
                        timeout_s, queue, cwd, created_at, updated_at, last_error, exit_code)
      SELECT printf('h%015d', x), 'echo history job ' || x, 'completed', 1, 1, 3, 0,
             ${start} + CAST(x * ${step} AS INTEGER), NULL, 'default', '/home/user/project',
             ${start} + CAST(x * ${step} AS INTEGER), ${start} + CAST(x * ${step} AS INTEGER) + 25,
             NULL, 0
      FROM c`);
    db.exec(`
      INSERT INTO attempts (job_id, attempt, token, worker_id, started_at, ended_at, outcome,
                            exit_code, signal, duration_ms, error, output_path, output_bytes,
                            host, pid, start_ticks)
      SELECT id, 1,
             substr(h, 1, 8) || '-' || substr(h, 9, 4) || '-' || substr(h, 13, 4) || '-' ||
               substr(h, 17, 4) || '-' || substr(h, 21, 12),
             'w1vm1nx7w', run_at + 3, run_at + 25, 'succeeded', 0, NULL, 22, NULL,
             '${home}/output/' || strftime('%Y-%m-%d', run_at / 1000, 'unixepoch') || '/' || id
               || '.1.log',
             18, '${host}', 10000 + (run_at % 50000), 1234567
      FROM (SELECT id, run_at, lower(hex(randomblob(16))) AS h FROM jobs WHERE state = 'completed')`);
    const hasCounts = db.prepare(
      "SELECT count(*) AS n FROM sqlite_master WHERE type = 'table' AND name = 'terminal_counts'",
    ).get() as { n: number };
    if (Number(hasCounts.n) > 0) {
      db.prepare("UPDATE terminal_counts SET n = n + ? WHERE state = 'completed'").run(size);
    }
    db.exec("COMMIT");
    db.exec("PRAGMA wal_checkpoint(TRUNCATE)");
  } finally {
    db.close();
  }
  const store: HistoryStore = {
    home,
    jobs: size,
    bytes: fileSize(dbPath(home)) + fileSize(`${dbPath(home)}-wal`),
    buildSeconds: (performance.now() - t0) / 1000,
  };
  ctx.log(`built in ${store.buildSeconds.toFixed(1)} s, ${(store.bytes / 1e6).toFixed(0)} MB`);
  ctx.shared.set(key, store);
  return store;
}
