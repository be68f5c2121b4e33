/**
 * Fencing under fire: a lease taken over is never overwritten by its old holder, and a
 * rescuer never overwrites a job whose holder finished or heartbeated in time.
 *
 * The first test is process-level and deterministic: a real worker runs a job; the test
 * freezes the worker (SIGSTOP: a stalled worker, the case fencing exists for), back-dates
 * the job's lease in SQL and runs the rescuer itself. The rescuer kills the orphaned
 * attempt (same host) and fails the job into its retry; then the worker is thawed, and its
 * heartbeat learns the lease is lost and its late result is refused. The rest are the
 * races at store level, with time injected: a slow stale attempt finishing after a
 * re-claim, a rescuer acting on an expired lease that its holder completed or extended
 * meanwhile, and two rescuers at once.
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import { DatabaseSync } from "node:sqlite";
import { cleanup, json, runCli, spawnCli, tempHome, waitFor } from "../helpers.ts";
import { loadConfig } from "../../src/config.ts";
import type { JobDetail } from "../../src/job.ts";
import { rescueExpired } from "../../src/pool/rescuer.ts";
import { openSqliteStore, type SqliteStore } from "../../src/store/sqlite/sqlite_store.ts";
import type { AttemptFinished, ClaimedJob, ExpiredLease } from "../../src/store/store.ts";

/** Accumulates a stream's text as it arrives. */
function collect(stream: ReadableStream<Uint8Array>): { text: string } {
  const sink = { text: "" };
  (async () => {
    for await (const chunk of stream.pipeThrough(new TextDecoderStream())) sink.text += chunk;
  })().catch(() => {});
  return sink;
}

/** The state letter of `pid` from /proc, or null once it is gone. */
function procState(pid: number): string | null {
  try {
    const stat = Deno.readTextFileSync(`/proc/${pid}/stat`);
    return stat.slice(stat.lastIndexOf(")") + 2)[0];
  } catch {
    return null;
  }
}

/** Live (non-zombie) processes whose environment names job `jobId`. */
function jobProcesses(jobId: string): number[] {
  const found: number[] = [];
  const dec = new TextDecoder();
  for (const entry of Deno.readDirSync("/proc")) {
    if (!/^\d+$/.test(entry.name)) continue;
    try {
      const env = dec.decode(Deno.readFileSync(`/proc/${entry.name}/environ`)).split("\0");
      if (!env.includes(`QUEUECTL_JOB_ID=${jobId}`)) continue;
      const state = procState(Number(entry.name));
      if (state !== null && state !== "Z" && state !== "X") found.push(Number(entry.name));
    } catch { /* it ended while we looked */ }
  }
  return found;
}

const show = async (home: string, id: string) =>
  json<JobDetail>(await runCli(home, ["show", id, "--json"]));

/** A job id unique to this run, so the /proc scan sees only this run's processes. */
function uniqueId(prefix: string): string {
  const hex = [...crypto.getRandomValues(new Uint8Array(4))]
    .map((b) => b.toString(16).padStart(2, "0")).join("");
  return `${prefix}-${hex}`;
}

/**
 * Back-dates the lease of `jobId` through a connection of the test's own. Returns false
 * when the database is busy (the frozen worker was caught inside a transaction).
 */
function backdateLease(dbPath: string, jobId: string): boolean {
  const db = new DatabaseSync(dbPath);
  try {
    db.exec("PRAGMA busy_timeout = 300");
    const r = db.prepare(
      "UPDATE jobs SET lease_expires_at = 0 WHERE id = ? AND state = 'processing'",
    ).run(jobId);
    assert.equal(r.changes, 1, "the job was processing");
    return true;
  } catch (e) {
    if (/locked|busy/i.test((e as Error).message)) return false;
    throw e;
  } finally {
    db.close();
  }
}

Deno.test({
  name: "fencing: a stalled worker's job is rescued, its orphan killed, its late result refused",
  sanitizeResources: false, // the stderr pump ends with the worker
  sanitizeOps: false,
  async fn() {
    const home = await tempHome("queuectl-fence-");
    const dbPath = join(home, "queue.db");
    const id = uniqueId("fence");
    let worker: Deno.ChildProcess | null = null;
    let frozen = false;
    let store: SqliteStore | null = null;
    try {
      // lease 3 s: the worker heartbeats every second. poll-interval 3600: its own rescuer
      // runs once at start, never again, so the rescue below is the test's. backoff-max 0:
      // the rescued job is due again at once.
      for (const [k, v] of [["lease", "3"], ["poll-interval", "3600"], ["backoff-max", "0"]]) {
        const r = await runCli(home, ["config", "set", k, v]);
        assert.equal(r.code, 0, r.stderr);
      }
      worker = spawnCli(home, ["worker", "start"], { stderr: "piped" });
      const log = collect(worker.stderr);
      // Attempt 1 runs for good (with a grandchild); any later attempt ends at once.
      const command = '[ "$QUEUECTL_ATTEMPT" -gt 1 ] || { sleep 300 & sleep 3; wait; }; ' +
        'echo "attempt $QUEUECTL_ATTEMPT"';
      const enq = await runCli(home, [
        "enqueue",
        JSON.stringify({ id, command, max_retries: 2 }),
      ]);
      assert.equal(enq.code, 0, enq.stderr);
      const pid = await waitFor(async () => (await show(home, id)).attempts_log[0]?.pid, {
        timeoutMs: 30_000,
        what: "attempt 1 running",
      });
      assert.notEqual(procState(pid), null, "attempt 1's sh is alive");
      assert.ok(jobProcesses(id).length >= 2, "sh and its sleeps run");

      // Freeze the worker outside a transaction, then take its lease away.
      let stoppedAt = 0;
      await waitFor(async () => {
        worker!.kill("SIGSTOP");
        frozen = true;
        stoppedAt = performance.now();
        if (backdateLease(dbPath, id)) return true;
        worker!.kill("SIGCONT");
        frozen = false;
        await new Promise((r) => setTimeout(r, 50));
        return false;
      }, { what: "the lease back-dated while the worker is frozen" });

      store = openSqliteStore(dbPath);
      const report = await rescueExpired(store, loadConfig(home), { now: Date.now() });
      assert.deepEqual(report.rescued, [id]);
      assert.equal(report.orphansKilled, 1, "the orphan on this host was killed");
      assert.equal(report.unreachable, 0);
      // Killed: SIGKILL to its group (the frozen worker cannot reap sh, so it lingers as Z).
      await waitFor(() => jobProcesses(id).length === 0, {
        timeoutMs: 10_000,
        what: "no process of the job alive",
      });
      const rescued = await show(home, id);
      assert.equal(rescued.state, "failed", "through the normal retry path");
      assert.equal(rescued.attempts, 1);
      assert.equal(rescued.attempts_log[0].outcome, "lost");
      assert.match(rescued.last_error!, /lost its lease.*orphaned process group was killed/);

      // Thaw the worker once its next heartbeat is due (it beats every lease/3 = 1 s).
      await waitFor(() => performance.now() - stoppedAt > 1_200, { what: "a heartbeat due" });
      worker.kill("SIGCONT");
      frozen = false;
      await waitFor(() => /result of job \S+ refused/.test(log.text), {
        what: "the late result refused",
      });
      assert.match(log.text, new RegExp(`lost the lease of job ${id}`), "heartbeat saw it");
      assert.match(log.text, new RegExp(`result of job ${id} refused`));

      // The refused result changed nothing; the same worker then runs the retry.
      const done = await waitFor(async () => {
        const j = await show(home, id);
        return j.state === "completed" && j;
      }, { timeoutMs: 60_000, what: "attempt 2 completed" });
      assert.deepEqual(done.attempts_log.map((a) => a.outcome), ["lost", "succeeded"]);
      assert.equal(done.attempts_log[0].exit_code, null, "attempt 1 keeps the rescuer's record");
      assert.equal(done.attempts, 2);
      assert.equal((await runCli(home, ["logs", id])).stdout, "attempt 2\n");

      const stop = await runCli(home, ["worker", "stop", "--wait"]);
      assert.equal(stop.code, 0, stop.stderr);
      assert.equal((await worker.status).code, 0, log.text);
      worker = null;
    } finally {
      store?.close();
      if (worker) {
        if (frozen) worker.kill("SIGCONT");
        try {
          worker.kill("SIGKILL");
        } catch { /* gone */ }
        await worker.status;
      }
      for (const p of jobProcesses(id)) Deno.kill(p, "SIGKILL");
      await cleanup(home);
    }
  },
});

// Store level: the races, with time injected.

const T0 = Date.UTC(2030, 0, 1);
const LEASE = 30_000;

async function freshStore(): Promise<{ store: SqliteStore; dir: string }> {
  const dir = await tempHome("queuectl-fence-store-");
  return { store: openSqliteStore(join(dir, "queue.db")), dir };
}

async function enqueueOne(store: SqliteStore, id: string, maxRetries: number): Promise<void> {
  await store.enqueue([{
    id,
    command: "true",
    max_retries: maxRetries,
    priority: 0,
    run_at_ms: T0,
    timeout_s: null,
    queue: "default",
    cwd: null,
  }], T0);
}

async function claimOne(store: SqliteStore, workerId: string, nowMs: number): Promise<ClaimedJob> {
  const claimed = await store.claim({
    workerId,
    host: "test/1/boot",
    limit: 1,
    queues: null,
    nowMs,
    leaseMs: LEASE,
  });
  assert.equal(claimed.length, 1, `${workerId} claimed a job`);
  return claimed[0];
}

function finished(
  claim: ClaimedJob,
  nowMs: number,
  over: Partial<AttemptFinished> = {},
): AttemptFinished {
  return {
    job_id: claim.job.id,
    token: claim.token,
    attempt: claim.attempt,
    outcome: "succeeded",
    exit_code: 0,
    signal: null,
    error: null,
    ended_ms: nowMs,
    duration_ms: 5,
    output_bytes: 0,
    disposition: "retry",
    retry_at_ms: nowMs + 1000,
    ...over,
  };
}

const rescueInput = (leases: ExpiredLease[], nowMs: number) =>
  leases.map((l) => ({ ...l, retry_at_ms: nowMs, error: "test rescuer" }));

/** The job row's fencing columns, straight from SQL. */
function leaseOf(store: SqliteStore, id: string) {
  return store.db.raw.prepare(
    "SELECT state, lease_token, worker_id, attempts, attempt_seq FROM jobs WHERE id = ?",
  ).get(id) as Record<string, unknown>;
}

/** countByState (kept incrementally for final states) must agree with a real count. */
async function assertCountsTrue(store: SqliteStore): Promise<void> {
  const counted = Object.fromEntries(
    (store.db.raw.prepare("SELECT state, count(*) AS n FROM jobs GROUP BY state").all() as Array<
      { state: string; n: number }
    >).map((r) => [r.state, Number(r.n)]),
  );
  const counts = await store.countByState();
  for (const [state, n] of Object.entries(counts)) {
    assert.equal(n, counted[state] ?? 0, `count of ${state}`);
  }
}

Deno.test("fencing: a slow stale attempt cannot reset a job rescued and re-claimed by another worker", async () => {
  const { store, dir } = await freshStore();
  try {
    await enqueueOne(store, "j", 3);
    const a = await claimOne(store, "wA", T0);
    await store.recordStarted([{
      job_id: "j",
      token: a.token,
      attempt: a.attempt,
      process: { host: "test/1/boot", pid: 4242, start_ticks: 1 },
      output_path: "/tmp/a.log",
    }]);
    // wA stalls; its lease expires; a rescuer fails the attempt; wB claims attempt 2.
    const t1 = T0 + LEASE + 1000;
    const expired = await store.expiredLeases(t1, 10);
    assert.deepEqual(expired.map((e) => [e.job_id, e.token, e.attempt]), [["j", a.token, 1]]);
    assert.deepEqual(await store.rescue(rescueInput(expired, t1), t1), ["j"]);
    const b = await claimOne(store, "wB", t1 + 1);
    assert.equal(b.attempt, 2);
    assert.notEqual(b.token, a.token);
    await store.recordStarted([{
      job_id: "j",
      token: b.token,
      attempt: b.attempt,
      process: { host: "test/1/boot", pid: 5151, start_ticks: 2 },
      output_path: "/tmp/b.log",
    }]);
    const before = leaseOf(store, "j");

    // wA wakes up and says everything it had to say, with its old token.
    const late = t1 + 2;
    assert.deepEqual(await store.finish([finished(a, late)]), ["j"], "success refused");
    assert.deepEqual(
      await store.finish([finished(a, late, { outcome: "failed", exit_code: 1, error: "x" })]),
      ["j"],
      "failure refused",
    );
    assert.deepEqual(
      await store.finish([finished(a, late, { outcome: "aborted", disposition: "release" })]),
      ["j"],
      "release refused",
    );
    const cycled = await store.cycle({
      started: [{
        job_id: "j",
        token: a.token,
        attempt: 2, // even naming the new attempt, the old token changes nothing
        process: { host: "test/1/boot", pid: 6666, start_ticks: 3 },
        output_path: "/tmp/evil.log",
      }],
      finished: [finished(a, late)],
      claim: null,
    });
    assert.deepEqual(cycled, { refused: ["j"], claimed: [] });
    const beat = await store.heartbeat("wA", [{ job_id: "j", token: a.token }], {
      nowMs: late,
      leaseMs: LEASE,
    });
    assert.deepEqual(beat.lost, ["j"], "the old holder learns it lost the lease");

    // Nothing moved: still wB's, attempt 2 running with wB's process.
    assert.deepEqual(leaseOf(store, "j"), before);
    assert.equal(before.state, "processing");
    assert.equal(before.lease_token, b.token);
    assert.equal(before.worker_id, "wB");
    const job = (await store.getJob("j"))!;
    assert.deepEqual(job.attempts_log.map((x) => [x.attempt, x.worker_id, x.outcome]), [
      [1, "wA", "lost"],
      [2, "wB", "running"],
    ]);
    assert.equal(job.attempts_log[0].error, "test rescuer");
    assert.equal(job.attempts_log[1].pid, 5151);
    assert.equal(job.attempts_log[1].output_path, "/tmp/b.log");
    await assertCountsTrue(store);

    // wB's own result lands.
    assert.deepEqual(await store.finish([finished(b, late + 1)]), []);
    const after = (await store.getJob("j"))!;
    assert.equal(after.state, "completed");
    assert.deepEqual(after.attempts_log.map((x) => x.outcome), ["lost", "succeeded"]);
    await assertCountsTrue(store);
  } finally {
    store.close();
    await cleanup(dir);
  }
});

Deno.test("fencing: a rescuer holding a stale expired lease cannot overwrite a just-completed job", async () => {
  const { store, dir } = await freshStore();
  try {
    // max_retries 0: a wrongful rescue would make it dead (and count it).
    await enqueueOne(store, "j", 0);
    const a = await claimOne(store, "wA", T0);
    const t1 = T0 + LEASE + 1000;
    const expired = await store.expiredLeases(t1, 10);
    assert.equal(expired.length, 1, "the rescuer saw an expired lease");
    // Meanwhile the slow-but-alive worker completes the job.
    assert.deepEqual(await store.finish([finished(a, t1)]), []);
    // The rescuer acts on what it saw.
    assert.deepEqual(await store.rescue(rescueInput(expired, t1 + 1), t1 + 1), []);
    const job = (await store.getJob("j"))!;
    assert.equal(job.state, "completed");
    assert.equal(job.last_error, null);
    assert.equal(job.exit_code, 0);
    assert.deepEqual(job.attempts_log.map((x) => [x.outcome, x.error]), [["succeeded", null]]);
    await assertCountsTrue(store);
    assert.equal((await store.countByState()).dead, 0);
    assert.deepEqual(await store.expiredLeases(t1 + 2, 10), []);
  } finally {
    store.close();
    await cleanup(dir);
  }
});

Deno.test("fencing: a rescuer cannot take a lease its holder extended after it looked", async () => {
  const { store, dir } = await freshStore();
  try {
    await enqueueOne(store, "j", 3);
    const a = await claimOne(store, "wA", T0);
    const t1 = T0 + LEASE + 1000;
    const expired = await store.expiredLeases(t1, 10);
    assert.equal(expired.length, 1);
    // The worker was only slow: its heartbeat lands before the rescue.
    const beat = await store.heartbeat("wA", [{ job_id: "j", token: a.token }], {
      nowMs: t1,
      leaseMs: LEASE,
    });
    assert.deepEqual(beat.lost, []);
    assert.deepEqual(await store.rescue(rescueInput(expired, t1 + 1), t1 + 1), []);
    const row = leaseOf(store, "j");
    assert.equal(row.state, "processing");
    assert.equal(row.lease_token, a.token);
    assert.equal((await store.getJob("j"))!.attempts_log[0].outcome, "running");
    assert.deepEqual(await store.finish([finished(a, t1 + 2)]), []);
    assert.equal((await store.getJob("j"))!.state, "completed");
    await assertCountsTrue(store);
  } finally {
    store.close();
    await cleanup(dir);
  }
});

Deno.test("fencing: two rescuers on one expired lease rescue it once", async () => {
  const dir = await tempHome("queuectl-fence-store-");
  const path = join(dir, "queue.db");
  const first = openSqliteStore(path);
  const second = openSqliteStore(path);
  try {
    await enqueueOne(first, "j", 0); // no retries left after one: dead once rescued
    await claimOne(first, "wA", T0);
    const t1 = T0 + LEASE + 1000;
    const seenByFirst = await first.expiredLeases(t1, 10);
    const seenBySecond = await second.expiredLeases(t1, 10);
    assert.deepEqual(await first.rescue(rescueInput(seenByFirst, t1), t1), ["j"]);
    assert.deepEqual(await second.rescue(rescueInput(seenBySecond, t1 + 1), t1 + 1), []);
    const job = (await first.getJob("j"))!;
    assert.equal(job.state, "dead");
    assert.deepEqual(job.attempts_log.map((x) => x.outcome), ["lost"]);
    assert.equal((await first.countByState()).dead, 1, "counted once");
    await assertCountsTrue(first);
  } finally {
    first.close();
    second.close();
    await cleanup(dir);
  }
});
