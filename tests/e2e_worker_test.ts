/**
 * End-to-end: workers as real processes running real jobs. Wake-ups, stop, config reload,
 * heartbeats and `logs --follow` have files of their own (e2e_*_test.ts).
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import { cleanup, json, runCli, spawnCli, tempHome, waitFor } from "./helpers.ts";
import { collect, show, stopAll } from "./e2e_helpers.ts";
import type { Job, JobDetail } from "../src/job.ts";

Deno.test("e2e worker: a job completes, its output is kept", async () => {
  const home = await tempHome();
  const worker = spawnCli(home, ["worker", "start", "--count", "2"]);
  try {
    const r = await runCli(home, [
      "enqueue",
      '{"id":"job1","command":"echo hello; echo oops >&2"}',
    ]);
    assert.equal(r.code, 0, r.stderr);
    const job = await waitFor(async () => {
      const j = await show(home, "job1");
      return j.state === "completed" && j;
    }, { what: "job1 completed" });
    assert.equal(job.attempts, 1);
    assert.equal(job.exit_code, 0);
    assert.equal(job.attempts_log[0].outcome, "succeeded");
    const logs = await runCli(home, ["logs", "job1"]);
    assert.equal(logs.code, 0, logs.stderr);
    assert.match(logs.stdout, /hello/);
    assert.match(logs.stdout, /oops/);
    const path = job.attempts_log[0].output_path!;
    assert.equal(Deno.statSync(path).mode! & 0o777, 0o600);
    for (const f of ["queue.db", "queue.db-wal", "queue.db-shm"]) {
      assert.equal(Deno.statSync(join(home, f)).mode! & 0o777, 0o600, f);
    }
  } finally {
    await stopAll(home, [worker]);
    await cleanup(home);
  }
});

Deno.test("e2e worker: a failing job retries with backoff, lands in the DLQ, dlq retry requeues it", async () => {
  const home = await tempHome();
  await runCli(home, ["config", "set", "backoff-max", "0.3"]);
  const worker = spawnCli(home, ["worker", "start"]);
  try {
    await runCli(home, ["enqueue", '{"id":"bad","command":"exit 3","max_retries":2}']);
    const dead = await waitFor(async () => {
      const j = await show(home, "bad");
      return j.state === "dead" && j;
    }, { what: "bad dead" });
    assert.equal(dead.attempts, 3);
    assert.equal(dead.exit_code, 3);
    assert.match(dead.last_error!, /exit code 3/);
    const log = dead.attempts_log;
    assert.deepEqual(log.map((a) => a.outcome), ["failed", "failed", "failed"]);
    for (let i = 1; i < log.length; i++) {
      const gap = Date.parse(log[i].started_at) - Date.parse(log[i - 1].ended_at!);
      assert.ok(gap >= 290, `retry ${i} waited its backoff (${gap} ms)`);
    }
    const dlq = json<Job[]>(await runCli(home, ["dlq", "list", "--json"]));
    assert.deepEqual(dlq.map((j) => j.id), ["bad"]);
    // Make it succeed this time, then retry it from the DLQ.
    const retried = await runCli(home, ["dlq", "retry", "bad"]);
    assert.equal(retried.code, 0, retried.stderr);
    const again = await waitFor(async () => {
      const j = await show(home, "bad");
      return j.state === "dead" && j.attempts_log.length === 6 && j;
    }, { what: "bad dead again" });
    assert.equal(again.attempts, 3, "attempts were reset to 0 by dlq retry");
  } finally {
    await stopAll(home, [worker]);
    await cleanup(home);
  }
});

Deno.test("e2e worker: an unknown command fails gracefully with its error recorded", async () => {
  const home = await tempHome();
  const worker = spawnCli(home, ["worker", "start"]);
  try {
    await runCli(home, ["enqueue", '{"id":"nx","command":"no_such_cmd_q7","max_retries":0}']);
    await runCli(home, [
      "enqueue",
      '{"id":"cwd","command":"true","max_retries":0,"cwd":"/no/such/dir"}',
    ]);
    const nx = await waitFor(async () => {
      const j = await show(home, "nx");
      return j.state === "dead" && j;
    });
    assert.equal(nx.exit_code, 127);
    assert.match(nx.last_error!, /127/);
    assert.match((await runCli(home, ["logs", "nx"])).stdout, /not found/);
    const cwd = await waitFor(async () => {
      const j = await show(home, "cwd");
      return j.state === "dead" && j;
    });
    assert.equal(cwd.attempts_log[0].outcome, "spawn_failed");
    assert.match(cwd.last_error!, /no\/such\/dir/);
    // The worker is still healthy.
    await runCli(home, ["enqueue", '{"id":"ok","command":"true"}']);
    await waitFor(async () => (await show(home, "ok")).state === "completed");
  } finally {
    await stopAll(home, [worker]);
    await cleanup(home);
  }
});

Deno.test("e2e worker: several worker processes run 300 jobs, each exactly once", async () => {
  const home = await tempHome();
  const ledger = join(home, "ledger");
  const lines = Array.from(
    { length: 300 },
    (_, i) =>
      JSON.stringify({
        id: `j${i}`,
        command: `echo "$QUEUECTL_JOB_ID $QUEUECTL_ATTEMPT" >> ${ledger}`,
      }),
  ).join("\n");
  const enq = await runCli(home, ["enqueue", "-"], { stdin: lines });
  assert.equal(enq.code, 0, enq.stderr);
  const workers = [1, 2, 3].map(() => spawnCli(home, ["worker", "start", "--count", "2"]));
  try {
    await waitFor(async () => {
      const s = json<{ counts: Record<string, number> }>(await runCli(home, ["status", "--json"]));
      return s.counts.completed === 300;
    }, { timeoutMs: 60_000, intervalMs: 200, what: "300 completed" });
    const runs = Deno.readTextFileSync(ledger).trim().split("\n");
    assert.equal(runs.length, 300);
    assert.equal(new Set(runs).size, 300);
    assert.ok(runs.every((r) => r.endsWith(" 1")), "every job ran as attempt 1");
    const attempts = json<JobDetail>(await runCli(home, ["show", "j0", "--json"])).attempts_log;
    assert.equal(attempts.length, 1);
  } finally {
    await stopAll(home, workers);
    await cleanup(home);
  }
});

Deno.test("e2e worker: data survives a restart", async () => {
  const home = await tempHome();
  try {
    await runCli(home, ["enqueue", '{"id":"a","command":"true","queue":"first"}']);
    await runCli(home, ["enqueue", '{"id":"b","command":"true","queue":"second"}']);
    // The first worker serves only queue "first", so b is still waiting when it stops.
    let worker = spawnCli(home, ["worker", "start", "--queue", "first"]);
    await waitFor(async () => (await show(home, "a")).state === "completed");
    await stopAll(home, [worker]);
    assert.equal((await show(home, "b")).state, "pending");
    worker = spawnCli(home, ["worker", "start"]);
    await waitFor(async () => (await show(home, "b")).state === "completed");
    assert.equal((await show(home, "a")).attempts, 1, "a did not run again");
    await stopAll(home, [worker]);
  } finally {
    await cleanup(home);
  }
});

Deno.test("e2e worker: 'worker stop' from another process lets the running job finish", async () => {
  const home = await tempHome();
  const worker = spawnCli(home, ["worker", "start"]);
  try {
    await runCli(home, ["enqueue", '{"id":"slow","command":"sleep 1; echo finished"}']);
    await waitFor(async () => (await show(home, "slow")).state === "processing");
    const listed = json<Array<{ id: string; running: number }>>(
      await runCli(home, ["worker", "list", "--json"]),
    );
    assert.equal(listed.length, 1);
    assert.equal(listed[0].running, 1);
    const stop = await runCli(home, ["worker", "stop", "--wait"]);
    assert.equal(stop.code, 0, stop.stderr);
    const status = await worker.status;
    assert.equal(status.code, 0);
    const slow = await show(home, "slow");
    assert.equal(slow.state, "completed", "the running job finished");
    assert.deepEqual(json<unknown[]>(await runCli(home, ["worker", "list", "--json"])), []);
  } finally {
    await cleanup(home);
  }
});

Deno.test("e2e worker: SIGTERM lets jobs finish; a second SIGTERM kills and requeues them", async () => {
  const home = await tempHome();
  try {
    let worker = spawnCli(home, ["worker", "start", "--count", "2"]);
    await runCli(home, ["enqueue", '{"id":"s1","command":"sleep 0.5"}']);
    await waitFor(async () => (await show(home, "s1")).state === "processing");
    worker.kill("SIGTERM");
    assert.equal((await worker.status).code, 0);
    assert.equal((await show(home, "s1")).state, "completed");

    worker = spawnCli(home, ["worker", "start", "--count", "2"], { stderr: "piped" });
    const log = collect(worker.stderr);
    await runCli(home, ["enqueue", '{"id":"s2","command":"sleep 60"}']);
    await waitFor(async () => (await show(home, "s2")).attempts_log[0]?.pid);
    const pid = (await show(home, "s2")).attempts_log[0].pid!;
    worker.kill("SIGTERM");
    await waitFor(() => /finishing running jobs/.test(log.text), { what: "first SIGTERM handled" });
    worker.kill("SIGTERM");
    assert.equal((await worker.status).code, 0);
    const s2 = await show(home, "s2");
    assert.equal(s2.state, "pending", "released back to the queue");
    assert.equal(s2.attempts_log[0].outcome, "aborted");
    assert.throws(() => Deno.statSync(`/proc/${pid}`), "the job's process is gone");
  } finally {
    await cleanup(home);
  }
});

Deno.test("e2e worker: --detach returns the id at once; the worker logs to a file", async () => {
  const home = await tempHome();
  try {
    const r = await runCli(home, ["worker", "start", "--detach", "--count", "2"]);
    assert.equal(r.code, 0, r.stderr);
    const id = r.stdout.trim();
    assert.match(id, /^w[0-9a-z]{8}$/);
    const workers = json<Array<{ id: string; slots: number }>>(
      await runCli(home, ["worker", "list", "--json"]),
    );
    assert.deepEqual(workers.map((w) => [w.id, w.slots]), [[id, 2]]);
    await runCli(home, ["enqueue", '{"id":"d1","command":"true"}']);
    await waitFor(async () => (await show(home, "d1")).state === "completed");
    assert.equal((await runCli(home, ["worker", "stop", "--wait"])).code, 0);
    const log = Deno.readTextFileSync(join(home, "logs", `${id}.log`));
    assert.match(log, new RegExp(`worker ${id} started`));
    assert.match(log, new RegExp(`worker ${id} stopped`));
  } finally {
    await cleanup(home);
  }
});

Deno.test("e2e worker: 'worker stop' kills what outlives shutdown-grace and releases it", async () => {
  const home = await tempHome();
  await runCli(home, ["config", "set", "shutdown-grace", "0.5"]);
  await runCli(home, ["config", "set", "kill-grace", "0.2"]);
  const worker = spawnCli(home, ["worker", "start", "--count", "2"]);
  try {
    await runCli(home, ["enqueue", '{"id":"quick","command":"sleep 0.2"}']);
    await runCli(home, ["enqueue", '{"id":"long","command":"sleep 60"}']);
    await waitFor(async () => (await show(home, "long")).attempts_log[0]?.pid);
    const started = Date.now();
    const stop = await runCli(home, ["worker", "stop", "--wait"]);
    assert.equal(stop.code, 0, stop.stderr);
    assert.equal((await worker.status).code, 0);
    assert.ok(Date.now() - started < 10_000, "bounded by poll + grace + kill-grace");
    assert.equal((await show(home, "quick")).state, "completed");
    const long = await show(home, "long");
    assert.equal(long.state, "pending", "killed and put back to the queue");
    assert.equal(long.attempts_log[0].outcome, "aborted");
    assert.match(long.attempts_log[0].error!, /shutdown/);
  } finally {
    await cleanup(home);
  }
});
