/**
 * A claiming process for claim_uniqueness_test.ts:
 *
 *     deno run -A tests/reliability/claimer.ts <dir> <name>
 *
 * For round r = 1, 2, … it waits for `<dir>/go-<r>` (which holds a database path), so that
 * every claimer starts at the same moment; then opens the store and claims 1–8 jobs at a
 * time (random) until a claim returns none, and writes what it got to
 * `<dir>/done-<r>-<name>.json` (write, then rename: the test never reads half a file). Any
 * error a call throws is recorded there, not fatal: the test wants to see every one. It
 * exits when `<dir>/quit` appears.
 *
 * @module
 */

import { hostIdentity } from "../../src/pool/process.ts";
import { openSqliteStore } from "../../src/store/sqlite/sqlite_store.ts";

/** What one claimer did in one round. */
export interface RoundReport {
  name: string;
  round: number;
  /** Ids claimed, in claim order. */
  ids: string[];
  claims: number;
  /** Messages of every error a store call threw. */
  errors: string[];
  /** From the go signal to the empty claim. */
  ms: number;
  /** Opening the store. */
  openMs: number;
  /** The longest single claim call: how long a starved claimer waited for the lock. */
  maxClaimMs: number;
}

const [dir, name] = Deno.args;
if (!dir || !name) {
  console.error("usage: claimer.ts <dir> <name>");
  Deno.exit(2);
}

const exists = (path: string) => {
  try {
    Deno.statSync(path);
    return true;
  } catch {
    return false;
  }
};
const host = hostIdentity();

for (let round = 1;; round++) {
  // Spin on the go file: a 1 ms poll keeps the claimers' starts within a millisecond or two.
  const go = `${dir}/go-${round}`;
  while (!exists(go)) {
    if (exists(`${dir}/quit`)) Deno.exit(0);
    await new Promise((r) => setTimeout(r, 1));
  }
  const dbPath = Deno.readTextFileSync(go).trim();
  const t0 = performance.now();
  const report: RoundReport = {
    name,
    round,
    ids: [],
    claims: 0,
    errors: [],
    ms: 0,
    openMs: 0,
    maxClaimMs: 0,
  };
  let store = null;
  try {
    store = openSqliteStore(dbPath);
  } catch (e) {
    report.errors.push(`open: ${(e as Error).message}`);
  }
  report.openMs = Math.round(performance.now() - t0);
  let failures = 0;
  while (store !== null && failures < 50) {
    const c0 = performance.now();
    try {
      const claimed = await store.claim({
        workerId: name,
        host,
        limit: 1 + Math.floor(Math.random() * 8),
        queues: null,
        nowMs: Date.now(),
        leaseMs: 60_000,
      });
      report.claims++;
      report.maxClaimMs = Math.max(report.maxClaimMs, Math.round(performance.now() - c0));
      if (claimed.length === 0) break;
      for (const c of claimed) report.ids.push(c.job.id);
    } catch (e) {
      failures++;
      report.errors.push(`claim: ${(e as Error).message}`);
    }
  }
  store?.close();
  report.ms = Math.round(performance.now() - t0);
  const out = `${dir}/done-${round}-${name}.json`;
  Deno.writeTextFileSync(`${out}.tmp`, JSON.stringify(report));
  Deno.renameSync(`${out}.tmp`, out);
}
