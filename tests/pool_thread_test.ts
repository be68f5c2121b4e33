/**
 * Execution-thread crash recovery (src/pool/pool.ts, #newThread): when the thread that
 * runs the attempts dies of an uncaught error, the pool kills the running attempts'
 * process groups (by pid, or by the attempt's environment marker when the thread died
 * before reporting the pid), records each attempt as the crash, retries the job on a new
 * thread, and keeps running. The thread is the real one (slot.ts), crashed by a test module
 * (tests/fixtures/crashing_slot.ts) through the pool's test-only `threadModule` option.
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import { cleanup, tempHome, waitFor } from "./helpers.ts";
import { attemptProcesses, killAttempt, uniqueId } from "./other_host.ts";
import { setConfigValue } from "../src/config.ts";
import { Pool } from "../src/pool/pool.ts";
import { openQueue, type Queue } from "../src/queue.ts";
import type { JobDetail } from "../src/job.ts";

const CRASHING_SLOT = new URL("./fixtures/crashing_slot.ts", import.meta.url);

/** Attempt 1 leaves a grandchild and would run for good; attempt 2 prints and ends. */
const COMMAND = '[ "$QUEUECTL_ATTEMPT" -gt 1 ] || { sleep 300 & sleep 300; wait; }; ' +
  'echo "attempt $QUEUECTL_ATTEMPT"';

async function withPool(
  fn: (ctx: { queue: Queue; home: string; log: string[]; running: () => boolean }) => Promise<void>,
): Promise<void> {
  const home = await tempHome("queuectl-thread-");
  const queue = await openQueue({ home, db: null });
  // backoff-max 0: the crashed job is due again at once; kill-grace 1 s bounds the kill.
  setConfigValue(home, "backoff-max", "0");
  setConfigValue(home, "kill-grace", "1");
  const log: string[] = [];
  const pool = new Pool(queue.store, {
    home,
    log: (level, message) => log.push(`${level} ${message}`),
    threadModule: CRASHING_SLOT,
  });
  let ended = false;
  const run = pool.run().finally(() => ended = true);
  let failure: unknown = null;
  try {
    await fn({ queue, home, log, running: () => !ended });
  } catch (e) {
    failure = e;
  }
  pool.kill();
  // A pool that lost track of a slot would never stop: fail instead of hanging.
  let timer: ReturnType<typeof setTimeout> | undefined;
  const stuck = new Promise<boolean>((resolve) => timer = setTimeout(resolve, 30_000, true));
  const hung = await Promise.race([run.then(() => false), stuck]);
  clearTimeout(timer);
  queue.close();
  await cleanup(home);
  if (failure) throw failure;
  if (hung) throw new Error("the pool did not stop within 30 s of kill()");
}

async function job(queue: Queue, id: string): Promise<JobDetail> {
  return (await queue.store.getJob(id))!;
}

/** The checks after a crash of attempt 1 of `id`, once the job completed. */
async function assertRecovered(queue: Queue, id: string, log: string[], running: () => boolean) {
  const done = await waitFor(async () => {
    const j = await job(queue, id);
    return j.state === "completed" && j;
  }, { what: "the job retried and completed on a new thread" });
  assert.deepEqual(attemptProcesses(id, 1), [], "attempt 1's processes were killed");
  const [crashed, retry] = done.attempts_log;
  assert.equal(crashed.outcome, "spawn_failed");
  assert.equal(
    crashed.error,
    "execution thread crashed: Uncaught Error: test crash of the execution thread",
  );
  assert.ok(crashed.ended_at !== null, "attempt 1 ended, not left running");
  assert.equal(retry.outcome, "succeeded");
  assert.equal(retry.worker_id, crashed.worker_id, "the same worker retried it");
  assert.equal(done.attempts, 2);
  assert.equal(Deno.readTextFileSync(retry.output_path!), "attempt 2\n");
  assert.ok(log.some((l) => l.startsWith("error execution thread crashed: ")), log.join("\n"));
  assert.ok(running(), "the worker keeps running");
}

Deno.test("pool thread: a crash mid-attempt kills its group, records the crash, retries on a new thread", async () => {
  const id = uniqueId("crash-reported");
  await withPool(async ({ queue, home, log, running }) => {
    try {
      await queue.enqueue([{ id, command: COMMAND }], { cwd: home });
      const pid = await waitFor(async () => (await job(queue, id)).attempts_log[0]?.pid, {
        what: "attempt 1's pid recorded",
      });
      await waitFor(() => attemptProcesses(id, 1).length >= 3, { what: "sh and two sleeps" });
      assert.ok(attemptProcesses(id, 1).includes(pid));
      Deno.writeTextFileSync(join(home, "crash-now"), "");
      await assertRecovered(queue, id, log, running);
      // The new thread takes further work too.
      const [next] = await queue.enqueue([{ command: "echo next" }], { cwd: home });
      await waitFor(async () => (await job(queue, next)).state === "completed", {
        what: "a later job run by the new thread",
      });
    } finally {
      killAttempt(id, 1);
    }
  });
});

Deno.test("pool thread: a crash before the spawn was reported kills the attempt by its marker", async () => {
  const id = uniqueId("crash-unreported");
  await withPool(async ({ queue, home, log, running }) => {
    try {
      await queue.enqueue([{ id, command: COMMAND }], { cwd: home });
      await assertRecovered(queue, id, log, running);
      assert.equal((await job(queue, id)).attempts_log[0].pid, null, "its pid was never known");
    } finally {
      killAttempt(id, 1);
    }
  });
});
