/**
 * Scenario 2: queue overhead without spawning. On a fresh database per run, `n` jobs are
 * enqueued through {@link SqliteStore}, then a loop drains them through the store API
 * alone, as fast as it can: `claim(limit k)` → `heartbeat` → `finish`, three transactions
 * per batch. Default durability (`full`: fsync per commit) and `normal`.
 *
 * The worker's loop as it really runs (`cycle` mode): one transaction per batch records the
 * attempts' starts and results and claims the next jobs (group commit), and a heartbeat
 * goes out once a third of the lease (10 s) has passed, not per job. For jobs shorter than
 * the pool's 50 ms start delay this is exactly the store's share of scenario 1.
 *
 * Baseline: plainjob's no-op scenario (Node + better-sqlite3, one job at a time, its own
 * `synchronous = NORMAL`), the same job count, run by `peers/plainjob_bench.mjs` from a
 * throwaway install in `bench/.peers` (git-ignored). The install compiles better-sqlite3
 * (about 2 minutes here): the full run installs it when missing, quick mode never does (it
 * reports the peer as skipped); `deno run -A bench/main.ts --install-peers` installs it
 * alone, as CI does before the smoke run.
 *
 * @module
 */

import { openSqliteStore } from "../src/store/sqlite/sqlite_store.ts";
import type { Durability } from "../src/store/sqlite/db.ts";
import type {
  AttemptFinished,
  AttemptStarted,
  ClaimedJob,
  ClaimOptions,
  JobInsert,
} from "../src/store/store.ts";
import { BENCH, type Context, type Figure, figure, have, run } from "./lib.ts";

const PEERS = `${BENCH}.peers`;
/** The peer's packages: better-sqlite3 13 crashes on this machine's Node 20; 12 works. */
const PLAINJOB = ["plainjob@0.0.14", "better-sqlite3@12"];
const WORKER = "bench-worker";
const HOST = "bench-host";

interface Variant {
  id: string;
  label: string;
  durability: Durability;
  k: number;
  mode: "calls" | "cycle";
}

const VARIANTS: Variant[] = [
  { id: "full.k1", durability: "full", k: 1, mode: "calls" },
  { id: "normal.k1", durability: "normal", k: 1, mode: "calls" },
  { id: "full.k8", durability: "full", k: 8, mode: "calls" },
  { id: "normal.k8", durability: "normal", k: 8, mode: "calls" },
  { id: "pool.full.k1", durability: "full", k: 1, mode: "cycle" },
  { id: "pool.normal.k1", durability: "normal", k: 1, mode: "cycle" },
  { id: "pool.full.k8", durability: "full", k: 8, mode: "cycle" },
].map((v) => ({
  ...v,
  label: v.mode === "calls"
    ? `claim(${v.k})→heartbeat→finish, durability ${v.durability}`
    : `the worker's loop: one commit per ${v.k} job(s) (starts, results, next claim), heartbeat every 10 s, durability ${v.durability}`,
} as Variant));

export async function overhead(ctx: Context): Promise<Figure[]> {
  const n = ctx.quick ? 200 : 1000;
  const peers = await ensurePlainjob(ctx, !ctx.quick);
  let plainjob: { plainjob: string; driver: string; synchronous: number } | undefined;
  const runs = new Map<string, number[]>();
  const push = (k: string, v: number) => runs.set(k, [...(runs.get(k) ?? []), v]);
  for (let r = 0; r < ctx.runs; r++) {
    if (peers) {
      const out = JSON.parse(
        await run("node", [
          `${BENCH}peers/plainjob_bench.mjs`,
          peers,
          `${ctx.tmp}/plainjob-${r}.db`,
          String(n),
        ]),
      );
      push("plainjob", out.jobsPerS);
      plainjob = out;
      ctx.log(`overhead run ${r + 1}: plainjob ${out.jobsPerS.toFixed(0)} jobs/s`);
    }
    for (const v of VARIANTS) {
      const rate = await storeLoop(`${ctx.tmp}/overhead-${v.id}-${r}.db`, v, n);
      push(v.id, rate);
      ctx.log(`overhead run ${r + 1}: ${v.id} ${rate.toFixed(0)} jobs/s`);
    }
  }
  const synchronous = ["OFF", "NORMAL", "FULL", "EXTRA"];
  const baseline = plainjob
    ? {
      label: `plainjob ${plainjob.plainjob} no-op, ${plainjob.driver}, synchronous=${
        synchronous[plainjob.synchronous] ?? plainjob.synchronous
      }`,
      runs: runs.get("plainjob")!,
    }
    : undefined;
  return VARIANTS.map((v) =>
    figure({
      id: `overhead.${v.id}`,
      scenario: "2 queue overhead",
      label: `${v.label}, ${n} jobs`,
      unit: "jobs/s",
      better: "higher",
      runs: runs.get(v.id)!,
      baseline,
      target: { text: "≥ plainjob", test: (f) => f.ratio === undefined ? null : f.ratio >= 1 },
      note: baseline
        ? undefined
        : "plainjob peer skipped: `deno run -A bench/main.ts --install-peers`",
    })
  );
}

/**
 * Enqueues `n` fresh jobs (ids `${prefix}-000001` …) into the store at `path` and drains
 * them, with any job already pending there; returns jobs per second.
 */
export async function storeLoop(
  path: string,
  v: Omit<Variant, "id" | "label">,
  n: number,
  prefix = "job",
): Promise<number> {
  const store = openSqliteStore(path, { durability: v.durability });
  try {
    const now = Date.now();
    const rows: JobInsert[] = Array.from({ length: n }, (_, i) => ({
      id: `${prefix}-${String(i).padStart(8, "0")}`,
      command: "true",
      max_retries: 3,
      priority: 0,
      run_at_ms: now,
      timeout_s: null,
      queue: "default",
      cwd: null,
    }));
    // Jobs left pending by earlier scenarios (scenario 4's enqueues) are drained too.
    const before = (await store.countByState()).pending;
    await store.enqueue(rows, now);
    return await drain(store, v, n + before);
  } finally {
    store.close();
  }
}

/** Claims and finishes jobs until none is left; returns jobs per second. */
async function drain(
  store: ReturnType<typeof openSqliteStore>,
  v: Omit<Variant, "id" | "label">,
  expected: number,
): Promise<number> {
  await store.registerWorker({
    id: WORKER,
    host: HOST,
    pid: Deno.pid,
    start_ticks: null,
    slots: v.k,
    queues: null,
  }, Date.now());
  const claimOptions = (): ClaimOptions => ({
    workerId: WORKER,
    host: HOST,
    limit: v.k,
    queues: null,
    nowMs: Date.now(),
    leaseMs: 30_000,
  });
  let done = 0;
  const t0 = performance.now();
  if (v.mode === "calls") {
    while (true) {
      const claimed = await store.claim(claimOptions());
      if (claimed.length === 0) break;
      const leases = claimed.map((c) => ({ job_id: c.job.id, token: c.token }));
      await store.heartbeat(WORKER, leases, { nowMs: Date.now(), leaseMs: 30_000 });
      const refused = await store.finish(claimed.map(succeeded));
      if (refused.length) throw new Error(`results refused: ${refused.join(", ")}`);
      done += claimed.length;
    }
  } else {
    let claimed = (await store.cycle({ started: [], finished: [], claim: claimOptions() })).claimed;
    let nextHeartbeat = 0;
    while (claimed.length) {
      if (Date.now() >= nextHeartbeat) {
        const leases = claimed.map((c) => ({ job_id: c.job.id, token: c.token }));
        await store.heartbeat(WORKER, leases, { nowMs: Date.now(), leaseMs: 30_000 });
        nextHeartbeat = Date.now() + 10_000;
      }
      const result = await store.cycle({
        started: claimed.map(started),
        finished: claimed.map(succeeded),
        claim: claimOptions(),
      });
      if (result.refused.length) throw new Error(`results refused: ${result.refused.join(", ")}`);
      done += claimed.length;
      claimed = result.claimed;
    }
  }
  const seconds = (performance.now() - t0) / 1000;
  await store.unregisterWorker(WORKER);
  if (done !== expected) throw new Error(`drained ${done} jobs, expected ${expected}`);
  return done / seconds;
}

function started(c: ClaimedJob): AttemptStarted {
  return {
    job_id: c.job.id,
    token: c.token,
    attempt: c.attempt,
    process: { host: HOST, pid: 12345, start_ticks: 1 },
    output_path: `output/2026-11-28/${c.job.id}.${c.attempt}.log`,
  };
}

function succeeded(c: ClaimedJob): AttemptFinished {
  const now = Date.now();
  return {
    job_id: c.job.id,
    token: c.token,
    attempt: c.attempt,
    outcome: "succeeded",
    exit_code: 0,
    signal: null,
    error: null,
    ended_ms: now,
    duration_ms: 1,
    output_bytes: 0,
    disposition: "retry",
    retry_at_ms: now,
  };
}

/**
 * The plainjob peer's install directory, installing it when missing and `install` is set.
 * Null, and the peer recorded as skipped, when it cannot be had.
 */
export async function ensurePlainjob(ctx: Context, install: boolean): Promise<string | null> {
  const ready = () => {
    try {
      Deno.statSync(`${PEERS}/node_modules/plainjob/package.json`);
      Deno.statSync(`${PEERS}/node_modules/better-sqlite3/build/Release/better_sqlite3.node`);
      return true;
    } catch {
      return false;
    }
  };
  const skip = (reason: string) => (ctx.peer("plainjob", reason), null);
  if (!ready()) {
    if (!have("node") || !have("npm")) return skip("node or npm missing");
    if (!install) {
      return skip("not installed in bench/.peers; deno run -A bench/main.ts --install-peers");
    }
    ctx.log(`installing ${PLAINJOB.join(" and ")} into bench/.peers (compiles, ~2 min)`);
    try {
      await run("npm", [
        "install",
        "--prefix",
        PEERS,
        "--no-audit",
        "--no-fund",
        "--loglevel=error",
        ...PLAINJOB,
      ]);
    } catch (e) {
      return skip(`npm install failed: ${(e as Error).message.split("\n").slice(0, 3).join(" ")}`);
    }
    if (!ready()) return skip("npm install did not produce better-sqlite3's binary");
  }
  ctx.peer("plainjob", null);
  return PEERS;
}
