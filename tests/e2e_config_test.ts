/**
 * End-to-end: configuration reaching jobs and running workers. The `job-timeout` default
 * is applied to jobs that give none; a running worker picks up `config set` within a
 * second, without a restart.
 */

import assert from "node:assert/strict";
import { groupMembers, runCli, waitFor } from "./helpers.ts";
import { enqueue, jobState, show, storeTimes, withIdleWorkers } from "./e2e_helpers.ts";

Deno.test("e2e config: the job-timeout default bounds a job that gives no timeout_s", () =>
  withIdleWorkers({ config: { "job-timeout": "1", "kill-grace": "0.2" } }, async (home) => {
    await enqueue(home, { id: "sleepy", command: "sleep 30", max_retries: 0 });
    assert.equal((await show(home, "sleepy")).timeout_s, 1, "the default was applied");
    const pid = await waitFor(async () => (await show(home, "sleepy")).attempts_log[0]?.pid, {
      what: "the attempt's process recorded",
    });
    // Far below the job's own 30 s: only the timeout can end it by then.
    await waitFor(() => jobState(home, "sleepy") === "dead", {
      timeoutMs: 15_000,
      what: "sleepy ended by its timeout",
    });
    const job = await show(home, "sleepy");
    assert.equal(job.timeout_s, 1);
    assert.equal(job.attempts_log.length, 1);
    assert.equal(job.attempts_log[0].outcome, "timed_out");
    assert.match(job.last_error!, /time/);
    assert.deepEqual(groupMembers(pid), [], "no process of the attempt's group is left");
  }));

Deno.test("e2e config: a running worker uses a new output-limit within a second, no restart", () =>
  withIdleWorkers({}, async (home, [worker]) => {
    const print5000 = "head -c 5000 /dev/zero | tr '\\0' x";
    await enqueue(home, { id: "before", command: print5000 });
    await waitFor(() => jobState(home, "before") === "completed", { what: "before completed" });
    assert.equal((await show(home, "before")).attempts_log[0].output_bytes, 5000);

    const set = await runCli(home, ["config", "set", "output-limit", "100"]);
    assert.equal(set.code, 0, set.stderr);
    const setAt = Date.now(); // config.json was replaced before the CLI exited
    // Due 1.1 s after the set: whenever the worker claims it, it has re-read its config
    // since (it re-reads at most 1 s apart), so it must keep 100 bytes.
    await enqueue(home, {
      id: "after",
      command: print5000,
      run_at: new Date(setAt + 1100).toISOString(),
    });
    await waitFor(() => jobState(home, "after") === "completed", { what: "after completed" });
    const claimed = storeTimes(home, "after").starts[0];
    assert.ok(claimed >= setAt + 1000, `claimed ${claimed - setAt} ms after the set`);
    const after = await show(home, "after");
    const kept = after.attempts_log[0].output_bytes!;
    assert.ok(kept < 200, `kept ${kept} bytes: the new output-limit (100) was not used`);
    const logs = await runCli(home, ["logs", "after"]);
    assert.equal(logs.stdout, `${"x".repeat(100)}\n[queuectl: output truncated at 100 bytes]\n`);

    // The same process did both, and is still running.
    assert.equal(after.attempts_log[0].worker_id, worker.id);
    assert.equal((await show(home, "before")).attempts_log[0].worker_id, worker.id);
    assert.equal(worker.exited(), null, "the worker was not restarted");
    console.log(`after: claimed ${claimed - setAt} ms after config set`);
  }));
