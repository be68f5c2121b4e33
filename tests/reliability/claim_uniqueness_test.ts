/**
 * Claim uniqueness under contention: several processes (claimer.ts) claim from one file
 * full of ready jobs, all starting at the same moment, round after round on a fresh
 * database. Every job must be claimed exactly once, by one claimer, with one attempt
 * record and one lease; and no store call may throw (no "database is locked" or busy
 * error reaching the caller).
 *
 * The full size is the default: 8 processes, 10,000 jobs, 20 rounds, about 35 s on
 * 2 cores (each round ~1.5 s: ~2,200 claim transactions, each with an fsync). Override with
 * `QUEUECTL_CLAIM_PROCS`, `QUEUECTL_CLAIM_JOBS` and `QUEUECTL_CLAIM_ROUNDS`.
 *
 * SQLite's busy handler is not fair: a claimer that commits and begins again at once can
 * take most of a round while the others sleep in their busy handler. The test reports the
 * longest single claim call (how long a starved process waited) and jobs per process.
 */

import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";
import { join } from "node:path";
import { cleanup, envInt, tempHome, waitFor } from "../helpers.ts";
import { openSqliteStore } from "../../src/store/sqlite/sqlite_store.ts";
import type { JobInsert } from "../../src/store/store.ts";
import { openReadOnly } from "./ledger.ts";
import type { RoundReport } from "./claimer.ts";

const PROCS = envInt("QUEUECTL_CLAIM_PROCS", 8);
const JOBS = envInt("QUEUECTL_CLAIM_JOBS", 10_000);
const ROUNDS = envInt("QUEUECTL_CLAIM_ROUNDS", 20);
const CLAIMER = fileURLToPath(new URL("./claimer.ts", import.meta.url));

Deno.test(`claim uniqueness: ${PROCS} processes claim ${JOBS} ready jobs at once, ${ROUNDS} rounds: each claimed exactly once, no busy error`, async () => {
  const base = await tempHome("queuectl-claim-");
  const names = Array.from({ length: PROCS }, (_, i) => `claimer-${i + 1}`);
  const children = names.map((name) =>
    new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", CLAIMER, base, name],
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).spawn()
  );
  const figures: string[] = [];
  // Claimers that got at least one job in some round: one round may go almost all to one
  // process (see above), twenty rounds show the processes really raced.
  const winners = new Set<string>();
  let maxWait = 0;
  try {
    for (let round = 1; round <= ROUNDS; round++) {
      // A fresh database full of ready jobs, closed again: the claimers open it together.
      const dbPath = join(base, `round-${round}.db`);
      const store = openSqliteStore(dbPath);
      const now = Date.now();
      const ids = Array.from({ length: JOBS }, (_, i) => `r${round}-${String(i).padStart(6, "0")}`);
      const rows: JobInsert[] = ids.map((id) => ({
        id,
        command: "true",
        max_retries: 3,
        priority: 0,
        run_at_ms: now,
        timeout_s: null,
        queue: "default",
        cwd: null,
      }));
      await store.enqueue(rows, now);
      store.close();

      const t0 = performance.now();
      // Written aside and renamed: a claimer that sees the go file sees the path in it.
      Deno.writeTextFileSync(join(base, "go.tmp"), dbPath);
      Deno.renameSync(join(base, "go.tmp"), join(base, `go-${round}`));
      const reports = await waitFor(() => {
        const done = names.map((n) => {
          try {
            return JSON.parse(
              Deno.readTextFileSync(join(base, `done-${round}-${n}.json`)),
            ) as RoundReport;
          } catch {
            return null;
          }
        });
        return done.every((d) => d !== null) && (done as RoundReport[]);
      }, { timeoutMs: 120_000, intervalMs: 10, what: `round ${round} to finish` });
      const ms = Math.round(performance.now() - t0);

      // Nothing thrown at any caller.
      const errors = reports.flatMap((r) => r.errors.map((e) => `${r.name}: ${e}`));
      assert.deepEqual(errors, [], `round ${round}: errors reached a caller`);
      // Every job claimed exactly once.
      const owner = new Map<string, string>();
      const twice: string[] = [];
      for (const r of reports) {
        for (const id of r.ids) {
          if (owner.has(id)) twice.push(`${id} by ${owner.get(id)} and ${r.name}`);
          owner.set(id, r.name);
        }
      }
      assert.deepEqual(twice.slice(0, 10), [], `round ${round}: jobs claimed twice`);
      const missing = ids.filter((id) => !owner.has(id));
      assert.deepEqual(missing.slice(0, 10), [], `round ${round}: jobs never claimed`);
      assert.equal(owner.size, JOBS);
      for (const r of reports) winners.add(r.name);

      // The store agrees: one lease and one attempt per job, held by the claimer that got it.
      const db = openReadOnly(dbPath);
      try {
        const rowsBad = db.prepare(
          `SELECT j.id, j.state, j.attempts, j.attempt_seq, j.worker_id, count(a.attempt) AS n,
                  max(a.worker_id) AS a_worker, max(a.token = j.lease_token) AS same_token
           FROM jobs j LEFT JOIN attempts a ON a.job_id = j.id GROUP BY j.id`,
        ).all() as Array<Record<string, unknown>>;
        const wrong = rowsBad.filter((r) =>
          r.state !== "processing" || r.attempts !== 1 || r.attempt_seq !== 1 || r.n !== 1 ||
          r.worker_id !== owner.get(String(r.id)) || r.a_worker !== r.worker_id ||
          r.same_token !== 1
        );
        assert.deepEqual(wrong.slice(0, 5), [], `round ${round}: store disagrees`);
        assert.equal(rowsBad.length, JOBS);
        const integrity = db.prepare("PRAGMA integrity_check").get() as Record<string, unknown>;
        assert.equal(integrity.integrity_check, "ok");
      } finally {
        db.close();
      }
      const claims = reports.reduce((n, r) => n + r.claims, 0);
      const spread = reports.map((r) => r.ids.length).sort((a, b) => b - a);
      const wait = Math.max(...reports.map((r) => r.maxClaimMs));
      const open = Math.max(...reports.map((r) => r.openMs));
      maxWait = Math.max(maxWait, wait);
      figures.push(
        `round ${round}: ${ms} ms, ${claims} claims, longest claim ${wait} ms, longest open ${open} ms, jobs per process ${
          spread.join("/")
        }`,
      );
    }
  } finally {
    Deno.writeTextFileSync(join(base, "quit"), "");
    const outputs = await Promise.all(children.map((c) => c.output()));
    await cleanup(base);
    for (const [i, out] of outputs.entries()) {
      const stderr = new TextDecoder().decode(out.stderr);
      assert.equal(out.code, 0, `${names[i]} exited ${out.code}: ${stderr}`);
      assert.equal(stderr, "", `${names[i]} wrote to stderr`);
    }
  }
  assert.ok(winners.size >= 2, `only ${[...winners]} ever got jobs: the claimers never raced`);
  console.log(
    `claim uniqueness: procs=${PROCS} jobs=${JOBS} rounds=${ROUNDS} longest_claim_ms=${maxWait}\n  ${
      figures.join("\n  ")
    }`,
  );
});
