/**
 * Scenario 3: bulk enqueue from JSON Lines. `queuectl enqueue --file F` with 100,000 jobs
 * (`{"command":"true"}` a line) into a fresh data directory; the figure is jobs divided by
 * the wall time of the CLI process (start-up, parse, validate, one transaction, print ids).
 *
 * Baseline: the storage floor, the same number of rows inserted into the same schema
 * through node:sqlite in one transaction with the same durability (synchronous = FULL), in
 * this process (so without Deno's start-up).
 *
 * @module
 */

import { DatabaseSync } from "node:sqlite";
import { cli, type Context, dbPath, DbProbe, type Figure, figure, freshHome } from "./lib.ts";

export async function bulk(ctx: Context): Promise<Figure[]> {
  const n = ctx.quick ? 5000 : 100_000;
  const file = `${ctx.tmp}/bulk-${n}.jsonl`;
  Deno.writeTextFileSync(file, `${JSON.stringify({ command: "true" })}\n`.repeat(n));
  const cliRates: number[] = [];
  const rawRates: number[] = [];
  for (let r = 0; r < ctx.runs; r++) {
    const home = await freshHome(ctx, "bulk");
    const { ms } = await cli(home, ["enqueue", "--file", file], { stdout: "null" });
    const probe = new DbProbe(home);
    const pending = probe.active();
    probe.close();
    if (pending !== n) throw new Error(`bulk enqueue left ${pending} jobs, expected ${n}`);
    cliRates.push(n / (ms / 1000));
    await Deno.remove(home, { recursive: true });

    const rawHome = await freshHome(ctx, "bulk-raw");
    rawRates.push(rawInsert(dbPath(rawHome), n));
    await Deno.remove(rawHome, { recursive: true });
    ctx.log(
      `bulk run ${r + 1}: queuectl ${cliRates.at(-1)!.toFixed(0)} jobs/s, raw ${
        rawRates.at(-1)!.toFixed(0)
      } jobs/s`,
    );
  }
  return [figure({
    id: "bulk.enqueue_file",
    scenario: "3 bulk enqueue",
    label: `queuectl enqueue --file (${n.toLocaleString("en-US")} jobs, JSON Lines), CLI wall time`,
    unit: "jobs/s",
    better: "higher",
    runs: cliRates,
    baseline: {
      label: "node:sqlite INSERT of the same rows, one transaction, in-process",
      runs: rawRates,
    },
    target: { text: "≥ 100,000 jobs/s", test: (f) => f.value >= 100_000 },
  })];
}

/** Inserts `n` rows shaped like queuectl's into `path` in one transaction; jobs per second. */
function rawInsert(path: string, n: number): number {
  const db = new DatabaseSync(path);
  try {
    db.exec("PRAGMA synchronous = FULL");
    const t0 = performance.now();
    const insert = db.prepare(
      `INSERT INTO jobs (id, command, max_retries, priority, run_at, timeout_s, queue, cwd, created_at, updated_at)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
    );
    const now = Date.now();
    db.exec("BEGIN IMMEDIATE");
    for (let i = 0; i < n; i++) {
      insert.run(
        `r${String(i).padStart(15, "0")}`,
        "true",
        3,
        0,
        now,
        null,
        "default",
        "/tmp",
        now,
        now,
      );
    }
    db.exec("COMMIT");
    return n / ((performance.now() - t0) / 1000);
  } finally {
    db.close();
  }
}
