/**
 * End-to-end: what makes an idle worker start a job. New work wakes it at once (the poll is
 * only the fallback); a delayed job is started by the poll once due, never before.
 *
 * The wake-up tests set `poll-interval` 60 s and `lease` 3600 s (a heartbeat every 1200 s),
 * so after its warm-up job the worker has no timer due for a minute: whatever starts a job
 * sooner is the wake-up.
 */

import assert from "node:assert/strict";
import { waitFor } from "./helpers.ts";
import {
  enqueue,
  gated,
  jobState,
  median,
  show,
  storeTimes,
  withIdleWorkers,
} from "./e2e_helpers.ts";

const POLL_MS = 60_000;
const NO_TIMERS = { "poll-interval": String(POLL_MS / 1000), "lease": "3600" };
const JOBS = 8;
/** The poll of the delayed-job test. */
const POLL_S = 1;

Deno.test("e2e wake: new work starts on an idle worker within milliseconds, not at the poll", () =>
  withIdleWorkers({ config: NO_TIMERS }, async (home, [worker]) => {
    const latencies: number[] = [];
    for (let i = 0; i < JOBS; i++) {
      const id = `w${i}`;
      const job = gated(home, id);
      await enqueue(home, { id, command: job.command });
      // Half the poll interval: a job the wake-up missed cannot have started by then.
      await waitFor(() => storeTimes(home, id).starts.length, {
        timeoutMs: POLL_MS / 2,
        what: `${id} started well before the 60 s poll`,
      });
      await job.run();
      const { created, starts } = storeTimes(home, id);
      assert.equal(starts.length, 1, `${id} ran once`);
      latencies.push(starts[0] - created);
    }
    console.log(`enqueue -> claim, ms: ${latencies.join(" ")} (median ${median(latencies)})`);
    const slowest = Math.max(...latencies);
    assert.ok(slowest < POLL_MS / 4, `every job started long before the poll (max ${slowest} ms)`);
    // Enqueue's commit, the inotify event and the worker's claim: milliseconds, a few
    // hundred at most with both cores busy.
    const typical = median(latencies);
    assert.ok(typical < 300, `median enqueue -> claim ${typical} ms, over 300 ms`);
    assert.equal((await show(home, "w0")).attempts_log[0].worker_id, worker.id);
  }));

Deno.test("e2e wake: a delayed job runs when due by the poll, never before", () =>
  // A heartbeat every 1200 s: only the 1 s poll can find a job that becomes due later.
  withIdleWorkers(
    { config: { "poll-interval": String(POLL_S), "lease": "3600" } },
    async (home) => {
      const pollMs = POLL_S * 1000;
      await enqueue(home, { id: "delay", command: "true", delay_s: 5 });
      await enqueue(home, {
        id: "at",
        command: "true",
        run_at: new Date(Date.now() + 6000).toISOString(),
      });
      // A job due now wakes the worker: that claim must pass over the two delayed ones.
      await enqueue(home, { id: "now", command: "true" });
      await waitFor(() => jobState(home, "now") === "completed", { what: "now completed" });
      const woken = storeTimes(home, "now").starts[0];
      assert.ok(woken < storeTimes(home, "delay").runAt, "the wake-up claim came before run_at");
      for (const id of ["delay", "at"]) {
        await waitFor(() => jobState(home, id) === "completed", { what: `${id} completed` });
        const { runAt, starts } = storeTimes(home, id);
        assert.equal(starts.length, 1, `${id} ran once`);
        const late = starts[0] - runAt;
        assert.ok(late >= 0, `${id} started ${-late} ms before its run_at`);
        // The poll fires at most pollMs after run_at; the slack is for a loaded machine, far
        // below the 1200 s heartbeat that would be the next wake without the poll.
        assert.ok(late < pollMs + 4000, `${id} started ${late} ms after its run_at`);
        console.log(`${id}: claimed ${late} ms after run_at`);
      }
    },
  ));
