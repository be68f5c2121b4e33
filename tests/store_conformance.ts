/**
 * The store conformance suite: every Store implementation must pass it. A storage
 * behaviour change lands here first.
 *
 * @module
 */

import assert from "node:assert/strict";
import { DuplicateJobError, JobNotFoundError, UsageError } from "../src/errors.ts";
import type { AttemptFinished, ClaimedJob, JobInsert, Store } from "../src/store/store.ts";
import { JOB_STATES } from "../src/job.ts";

/** Makes a fresh, empty store; `dispose` removes it. */
export type StoreFactory = () => Promise<{ store: Store; dispose: () => Promise<void> }>;

const T0 = Date.UTC(2026, 0, 1);
const LEASE = 30_000;

function job(id: string, extra: Partial<JobInsert> = {}): JobInsert {
  return {
    id,
    command: `echo ${id}`,
    max_retries: 2,
    priority: 0,
    run_at_ms: T0,
    timeout_s: null,
    queue: "default",
    cwd: null,
    ...extra,
  };
}

function finished(
  c: ClaimedJob,
  outcome: AttemptFinished["outcome"],
  extra: Partial<AttemptFinished> = {},
): AttemptFinished {
  return {
    job_id: c.job.id,
    token: c.token,
    attempt: c.attempt,
    outcome,
    exit_code: outcome === "succeeded" ? 0 : 1,
    signal: null,
    error: outcome === "succeeded" ? null : "exit code 1",
    ended_ms: T0 + 1000,
    duration_ms: 1000,
    output_bytes: 10,
    disposition: "retry",
    retry_at_ms: T0 + 5000,
    ...extra,
  };
}

const HOST = "host/1/boot";
const claimOne = (store: Store, now = T0, workerId = "w1") =>
  store.claim({ workerId, host: HOST, limit: 1, queues: null, nowMs: now, leaseMs: LEASE });

/** Registers the conformance tests for one backend. */
export function storeConformance(name: string, factory: StoreFactory): void {
  const test = (title: string, fn: (store: Store) => Promise<void>) =>
    Deno.test(`${name} store: ${title}`, async () => {
      const { store, dispose } = await factory();
      try {
        await fn(store);
      } finally {
        store.close();
        await dispose();
      }
    });

  test("enqueue then read back every field", async (store) => {
    await store.enqueue([job("a", { priority: 5, timeout_s: 2.5, queue: "q1", cwd: "/tmp" })], T0);
    const got = await store.getJob("a");
    assert.ok(got);
    assert.equal(got.command, "echo a");
    assert.equal(got.state, "pending");
    assert.equal(got.attempts, 0);
    assert.equal(got.max_retries, 2);
    assert.equal(got.priority, 5);
    assert.equal(got.timeout_s, 2.5);
    assert.equal(got.queue, "q1");
    assert.equal(got.cwd, "/tmp");
    assert.equal(got.run_at, new Date(T0).toISOString());
    assert.equal(got.created_at, new Date(T0).toISOString());
    assert.equal(got.last_error, null);
    assert.deepEqual(got.attempts_log, []);
    assert.equal(await store.getJob("missing"), null);
  });

  test("a batch with a duplicate id writes nothing", async (store) => {
    await store.enqueue([job("a")], T0);
    await assert.rejects(store.enqueue([job("b"), job("a"), job("c")], T0), DuplicateJobError);
    assert.equal(await store.getJob("b"), null);
    assert.equal(await store.getJob("c"), null);
    assert.equal((await store.countByState()).pending, 1);
  });

  test("claim order: priority, then run_at, then id; future jobs wait", async (store) => {
    await store.enqueue([
      job("late", { run_at_ms: T0 + 60_000, priority: 100 }),
      job("b", { run_at_ms: T0 - 10 }),
      job("a", { run_at_ms: T0 - 10 }),
      job("old", { run_at_ms: T0 - 1000 }),
      job("high", { priority: 9 }),
    ], T0);
    const claims = await store.claim({
      workerId: "w1",
      host: HOST,
      limit: 10,
      queues: null,
      nowMs: T0,
      leaseMs: LEASE,
    });
    assert.deepEqual(claims.map((c) => c.job.id), ["high", "old", "a", "b"]);
    for (const c of claims) {
      assert.equal(c.job.state, "processing");
      assert.equal(c.job.attempts, 1);
      assert.equal(c.attempt, 1);
      assert.equal(c.lease_expires_ms, T0 + LEASE);
    }
    assert.deepEqual(await claimOne(store), []);
    const late = await claimOne(store, T0 + 60_000);
    assert.equal(late[0].job.id, "late");
  });

  test("claim respects the limit and the queue filter, never handing a job out twice", async (store) => {
    await store.enqueue([job("a", { queue: "x" }), job("b", { queue: "y" }), job("c")], T0);
    const x = await store.claim({
      workerId: "w1",
      host: HOST,
      limit: 5,
      queues: ["x"],
      nowMs: T0,
      leaseMs: LEASE,
    });
    assert.deepEqual(x.map((c) => c.job.id), ["a"]);
    const one = await claimOne(store, T0, "w2");
    const two = await claimOne(store, T0, "w3");
    assert.equal(one.length + two.length, 2);
    assert.notEqual(one[0].job.id, two[0].job.id);
    assert.deepEqual(await claimOne(store, T0, "w4"), []);
  });

  test("success completes; the attempt is recorded", async (store) => {
    await store.enqueue([job("a")], T0);
    const [c] = await claimOne(store);
    await store.recordStarted([{
      job_id: "a",
      token: c.token,
      attempt: 1,
      process: { host: "h", pid: 123, start_ticks: 456 },
      output_path: "/x/a.1.log",
    }]);
    assert.deepEqual(await store.finish([finished(c, "succeeded")]), []);
    const got = await store.getJob("a");
    assert.equal(got?.state, "completed");
    assert.equal(got?.exit_code, 0);
    assert.equal(got?.attempts_log.length, 1);
    const a = got!.attempts_log[0];
    assert.equal(a.outcome, "succeeded");
    assert.equal(a.worker_id, "w1");
    assert.equal(a.pid, 123);
    assert.equal(a.output_path, "/x/a.1.log");
    assert.equal(a.duration_ms, 1000);
    assert.equal(a.output_bytes, 10);
  });

  test("failure retries at retry_at, then goes dead after max_retries", async (store) => {
    await store.enqueue([job("a", { max_retries: 1 })], T0);
    const [c1] = await claimOne(store);
    await store.finish([finished(c1, "failed")]);
    let got = await store.getJob("a");
    assert.equal(got?.state, "failed");
    assert.equal(got?.run_at, new Date(T0 + 5000).toISOString());
    assert.equal(got?.last_error, "exit code 1");
    assert.deepEqual(await claimOne(store, T0 + 4999), [], "not before its retry time");
    const [c2] = await claimOne(store, T0 + 5000);
    assert.equal(c2.attempt, 2);
    await store.finish([finished(c2, "timed_out", { exit_code: null, error: "timed out" })]);
    got = await store.getJob("a");
    assert.equal(got?.state, "dead");
    assert.equal(got?.attempts, 2);
    assert.deepEqual(got?.attempts_log.map((a) => a.outcome), ["failed", "timed_out"]);
  });

  test("release puts an interrupted job back to pending at once", async (store) => {
    await store.enqueue([job("a")], T0);
    const [c] = await claimOne(store);
    await store.finish([
      finished(c, "aborted", { disposition: "release", ended_ms: T0 + 10, error: "shutdown" }),
    ]);
    const got = await store.getJob("a");
    assert.equal(got?.state, "pending");
    assert.equal(got?.attempts, 0, "a release spends none of the job's retries");
    assert.equal(got?.run_at, new Date(T0 + 10).toISOString());
    assert.equal((await claimOne(store, T0 + 10)).length, 1);
  });

  test("fencing: a stale token changes nothing", async (store) => {
    await store.enqueue([job("a")], T0);
    const [c] = await claimOne(store);
    const stale = { ...c, token: "not-the-token" };
    assert.deepEqual(await store.finish([finished(stale, "succeeded")]), ["a"]);
    assert.equal((await store.getJob("a"))?.state, "processing");
    const beat = await store.heartbeat("w1", [{ job_id: "a", token: "not-the-token" }], {
      nowMs: T0 + 1,
      leaseMs: LEASE,
    });
    assert.deepEqual(beat.lost, ["a"]);
  });

  test("rescue: an expired lease fails through the retry path and fences the old holder", async (store) => {
    await store.enqueue([job("a", { max_retries: 3 })], T0);
    const [c] = await claimOne(store);
    assert.deepEqual(await store.expiredLeases(T0 + LEASE - 1, 10), []);
    const expired = await store.expiredLeases(T0 + LEASE + 1, 10);
    assert.equal(expired.length, 1);
    assert.equal(expired[0].job_id, "a");
    assert.equal(expired[0].worker_id, "w1");
    assert.deepEqual(expired[0].process, { host: HOST, pid: null, start_ticks: null });
    const rescued = await store.rescue(
      expired.map((e) => ({ ...e, retry_at_ms: T0 + LEASE + 2, error: "worker lost" })),
      T0 + LEASE + 1,
    );
    assert.deepEqual(rescued, ["a"]);
    let got = await store.getJob("a");
    assert.equal(got?.state, "failed");
    assert.equal(got?.last_error, "worker lost");
    assert.equal(got?.attempts_log[0].outcome, "lost");
    // The old worker wakes up: its complete, fail and heartbeat are all refused.
    assert.deepEqual(await store.finish([finished(c, "succeeded")]), ["a"]);
    assert.deepEqual(await store.finish([finished(c, "failed")]), ["a"]);
    const beat = await store.heartbeat("w1", [{ job_id: "a", token: c.token }], {
      nowMs: T0 + LEASE + 2,
      leaseMs: LEASE,
    });
    assert.deepEqual(beat.lost, ["a"]);
    got = await store.getJob("a");
    assert.equal(got?.state, "failed");
    // The retry runs as attempt 2 under a new token; the old one still cannot touch it.
    const [c2] = await claimOne(store, T0 + LEASE + 2, "w2");
    assert.equal(c2.attempt, 2);
    assert.notEqual(c2.token, c.token);
    assert.deepEqual(await store.finish([finished(c, "succeeded")]), ["a"]);
    assert.equal((await store.getJob("a"))?.state, "processing");
  });

  test("rescue is fenced by the lease still being expired", async (store) => {
    await store.enqueue([job("a")], T0);
    const [c] = await claimOne(store);
    const expired = await store.expiredLeases(T0 + LEASE + 1, 10);
    // The holder was only slow: it heartbeats before the rescuer writes.
    await store.heartbeat("w1", [{ job_id: "a", token: c.token }], {
      nowMs: T0 + LEASE + 1,
      leaseMs: LEASE,
    });
    const rescued = await store.rescue(
      expired.map((e) => ({ ...e, retry_at_ms: T0, error: "lost" })),
      T0 + LEASE + 1,
    );
    assert.deepEqual(rescued, []);
    assert.equal((await store.getJob("a"))?.state, "processing");
  });

  test("a rescued job with no retries left goes dead", async (store) => {
    await store.enqueue([job("a", { max_retries: 0 })], T0);
    await claimOne(store);
    const expired = await store.expiredLeases(T0 + LEASE + 1, 10);
    await store.rescue(
      expired.map((e) => ({ ...e, retry_at_ms: T0, error: "lost" })),
      T0 + LEASE + 1,
    );
    assert.equal((await store.getJob("a"))?.state, "dead");
  });

  test("retryDead: by id, all, and refusing what is not dead", async (store) => {
    await store.enqueue([job("a", { max_retries: 0 }), job("b", { max_retries: 0 }), job("c")], T0);
    for (let i = 0; i < 2; i++) {
      const [c] = await store.claim({
        workerId: "w",
        host: HOST,
        limit: 1,
        queues: null,
        nowMs: T0,
        leaseMs: LEASE,
      });
      await store.finish([finished(c, "failed")]);
    }
    assert.equal((await store.countByState()).dead, 2);
    await assert.rejects(store.retryDead(["a", "c"], T0 + 1), UsageError);
    assert.equal((await store.getJob("a"))?.state, "dead", "all or nothing");
    await assert.rejects(store.retryDead(["nope"], T0 + 1), JobNotFoundError);
    assert.deepEqual(await store.retryDead(["a"], T0 + 1), ["a"]);
    const a = await store.getJob("a");
    assert.equal(a?.state, "pending");
    assert.equal(a?.attempts, 0);
    assert.equal(a?.last_error, null);
    assert.deepEqual(await store.retryDead(null, T0 + 2), ["b"]);
    assert.equal((await store.countByState()).dead, 0);
    // The retried job's next attempt is attempt 1 of its budget but keeps its history.
    const again = (await store.claim({
      workerId: "w",
      host: HOST,
      limit: 3,
      queues: null,
      nowMs: T0 + 3,
      leaseMs: LEASE,
    })).find((c) => c.job.id === "a")!;
    assert.equal(again.job.attempts, 1);
    assert.equal(again.attempt, 2, "attempt records are numbered across DLQ retries");
    await store.finish([finished(again, "succeeded")]);
    const log = (await store.getJob(again.job.id))!.attempts_log;
    assert.deepEqual(log.map((a) => [a.attempt, a.outcome]), [[1, "failed"], [2, "succeeded"]]);
  });

  test("listJobs filters, pages, newest first; countByState counts every state", async (store) => {
    for (let i = 0; i < 5; i++) {
      await store.enqueue([job(`j${i}`, { queue: i % 2 ? "odd" : "even" })], T0 + i);
    }
    await claimOne(store, T0 + 10);
    assert.deepEqual((await store.listJobs({})).map((j) => j.id), ["j4", "j3", "j2", "j1", "j0"]);
    assert.deepEqual((await store.listJobs({ limit: 2, offset: 1 })).map((j) => j.id), [
      "j3",
      "j2",
    ]);
    assert.deepEqual((await store.listJobs({ queue: "odd" })).map((j) => j.id), ["j3", "j1"]);
    assert.deepEqual((await store.listJobs({ states: ["processing"] })).map((j) => j.id), ["j0"]);
    const counts = await store.countByState();
    assert.deepEqual(counts, {
      pending: 4,
      processing: 1,
      completed: 0,
      failed: 0,
      dead: 0,
      cancelled: 0,
    });
  });

  test("a dead worker's leases end at once, and only its own", async (store) => {
    await store.enqueue([job("a"), job("b")], T0);
    await store.registerWorker(
      { id: "w1", host: HOST, pid: 10, start_ticks: 1, slots: 1, queues: null },
      T0,
    );
    const [mine] = await claimOne(store, T0, "w1");
    const [theirs] = await claimOne(store, T0, "w2");
    assert.deepEqual(await store.expiredLeases(T0 + 1, 10), []);
    assert.equal(await store.forgetDeadWorker("w1", T0 + 1), 1);
    const expired = await store.expiredLeases(T0 + 1, 10);
    assert.deepEqual(expired.map((e) => [e.job_id, e.token]), [[mine.job.id, mine.token]]);
    assert.deepEqual(await store.listWorkers(T0 + 1, LEASE), [], "its registry row is gone");
    // The usual fenced rescue takes it; the other worker's job is untouched.
    const rescued = await store.rescue(
      expired.map((e) => ({ ...e, retry_at_ms: T0 + 2, error: "worker gone" })),
      T0 + 1,
    );
    assert.deepEqual(rescued, [mine.job.id]);
    assert.equal((await store.getJob(theirs.job.id))?.state, "processing");
    assert.equal(await store.forgetDeadWorker("w1", T0 + 2), 0, "nothing left to end");
  });

  test("workers: register, heartbeat, list live ones, stop through the store", async (store) => {
    await store.registerWorker({
      id: "w1",
      host: "h/1/b",
      pid: 10,
      start_ticks: 777,
      slots: 3,
      queues: null,
    }, T0);
    await store.registerWorker({
      id: "w2",
      host: "h/1/b",
      pid: 11,
      start_ticks: null,
      slots: 1,
      queues: ["x"],
    }, T0);
    await store.heartbeat("w1", [], { nowMs: T0 + 50_000, leaseMs: LEASE });
    const live = await store.listWorkers(T0 + 50_000, LEASE);
    assert.deepEqual(live.map((w) => w.id), ["w1"], "w2 stopped heartbeating");
    assert.equal(live[0].slots, 3);
    assert.equal(live[0].start_ticks, 777, "the process identity is kept");
    assert.equal(live[0].state, "running");
    assert.equal(await store.stopRequested("w1"), false);
    assert.equal(await store.requestStop(null, T0 + 50_000, LEASE), 1);
    assert.equal(await store.stopRequested("w1"), true);
    assert.equal((await store.listWorkers(T0 + 50_000, LEASE))[0].state, "stopping");
    const beat = await store.heartbeat("w1", [], { nowMs: T0 + 50_001, leaseMs: LEASE });
    assert.equal(beat.stop_requested, true);
    assert.equal(beat.registered, true);
    await store.unregisterWorker("w1");
    assert.deepEqual(await store.listWorkers(T0 + 50_001, LEASE), []);
    const gone = await store.heartbeat("w1", [], { nowMs: T0 + 50_002, leaseMs: LEASE });
    assert.equal(gone.registered, false, "a dropped worker learns it must register again");
  });

  test("prune: old terminal jobs go with their attempts, in batches; others stay", async (store) => {
    await store.enqueue(
      [job("old1"), job("old2"), job("old3"), job("live", { run_at_ms: T0 + 1e9 })],
      T0,
    );
    for (let i = 0; i < 3; i++) {
      const [c] = await claimOne(store);
      await store.recordStarted([{
        job_id: c.job.id,
        token: c.token,
        attempt: c.attempt,
        process: { host: HOST, pid: 100 + i, start_ticks: 1 },
        output_path: `/out/${c.job.id}.log`,
      }]);
      await store.finish([finished(c, "succeeded")]);
    }
    await store.enqueue([job("recent")], T0 + 10_000);
    const [r] = await claimOne(store, T0 + 10_000);
    await store.finish([finished(r, "succeeded", { ended_ms: T0 + 10_000 })]);
    await assert.rejects(
      store.prune({ states: ["processing"], beforeMs: T0 + 5000, limit: 10 }),
      UsageError,
    );
    const first = await store.prune({
      states: ["completed", "dead"],
      beforeMs: T0 + 5000,
      limit: 2,
    });
    assert.equal(first.ids.length, 2);
    assert.equal(first.outputPaths.length, 2);
    const second = await store.prune({ states: ["completed"], beforeMs: T0 + 5000, limit: 2 });
    assert.equal(second.ids.length, 1);
    assert.deepEqual(
      [...first.ids, ...second.ids].sort(),
      ["old1", "old2", "old3"],
    );
    assert.deepEqual(await store.prune({ states: ["completed"], beforeMs: T0 + 5000, limit: 2 }), {
      ids: [],
      outputPaths: [],
    });
    assert.equal(await store.getJob("old1"), null);
    assert.equal((await store.getJob("recent"))?.state, "completed");
    assert.equal((await store.getJob("live"))?.state, "pending");
  });

  test("countByState agrees with the jobs after every kind of move", async (store) => {
    const agree = async (when: string) => {
      const all = await store.listJobs({ limit: 0 });
      const expected = Object.fromEntries(JOB_STATES.map((st) => [st, 0]));
      for (const j of all) expected[j.state]++;
      assert.deepEqual(await store.countByState(), expected, when);
    };
    await store.enqueue(
      Array.from({ length: 6 }, (_, i) => job(`c${i}`, { max_retries: i < 3 ? 0 : 1 })),
      T0,
    );
    await agree("enqueued");
    const claims = await store.claim({
      workerId: "w1",
      host: HOST,
      limit: 5,
      queues: null,
      nowMs: T0,
      leaseMs: LEASE,
    });
    await agree("claimed");
    await store.finish([
      finished(claims[0], "succeeded"),
      finished(claims[1], "failed"), // max_retries 0: dead
      finished(claims[3], "failed"), // retries left: failed
      finished(claims[4], "aborted", { disposition: "release" }),
    ]);
    await agree("finished");
    const expired = await store.expiredLeases(T0 + LEASE + 1, 10);
    await store.rescue(
      expired.map((e) => ({ ...e, retry_at_ms: T0, error: "lost" })),
      T0 + LEASE + 1,
    );
    await agree("rescued");
    await store.retryDead(null, T0 + LEASE + 2);
    await agree("retried from the DLQ");
    await store.prune({ states: ["completed", "dead"], beforeMs: T0 + 1e9, limit: 10 });
    await agree("pruned");
  });

  test("cycle: records starts and results and claims more in one call, fenced", async (store) => {
    await store.enqueue([job("a"), job("b"), job("c")], T0);
    const [a] = await claimOne(store);
    const stale = { ...a, token: "stale" };
    const out = await store.cycle({
      started: [{
        job_id: "a",
        token: a.token,
        attempt: a.attempt,
        process: { host: HOST, pid: 42, start_ticks: 7 },
        output_path: "/o/a.log",
      }],
      finished: [finished(a, "succeeded"), finished(stale, "failed")],
      claim: { workerId: "w1", host: HOST, limit: 5, queues: null, nowMs: T0, leaseMs: LEASE },
    });
    assert.deepEqual(out.refused, ["a"], "the second result for a names a stale token");
    assert.deepEqual(out.claimed.map((c) => c.job.id), ["b", "c"]);
    const got = await store.getJob("a");
    assert.equal(got?.state, "completed");
    assert.equal(got?.attempts_log[0].pid, 42);
    assert.deepEqual(await store.cycle({ started: [], finished: [], claim: null }), {
      refused: [],
      claimed: [],
    });
  });
}
