/**
 * End-to-end: `worker stop` reaches idle workers through the wake-up, and `worker stop ID`
 * stops that worker only.
 *
 * `poll-interval` 60 s and `lease` 3600 s (a heartbeat every 1200 s): an idle worker has no
 * timer of its own that would look for a stop request within the test, only the wake-up.
 */

import assert from "node:assert/strict";
import { json, runCli, waitFor } from "./helpers.ts";
import { enqueue, jobState, show, withIdleWorkers } from "./e2e_helpers.ts";

const POLL_MS = 60_000;
const NO_TIMERS = { "poll-interval": String(POLL_MS / 1000), "lease": "3600" };

const listed = async (home: string) =>
  json<Array<{ id: string }>>(await runCli(home, ["worker", "list", "--json"])).map((w) => w.id);

Deno.test("e2e stop: 'worker stop --wait' reaches an idle worker through the wake-up", () =>
  withIdleWorkers({ config: NO_TIMERS }, async (home, [worker]) => {
    const started = Date.now();
    const stop = await runCli(home, ["worker", "stop", "--wait"]);
    const took = Date.now() - started;
    assert.equal(stop.code, 0, stop.stderr);
    assert.equal((await worker.child.status).code, 0);
    // Without the wake-up the worker would only look at its next poll, 60 s after its
    // warm-up job; half of it leaves a loaded machine plenty.
    assert.ok(took < POLL_MS / 2, `stop --wait took ${took} ms`);
    console.log(`stop --wait of an idle worker: ${took} ms`);
    assert.deepEqual(await listed(home), []);
  }));

Deno.test("e2e stop: 'worker stop ID' stops that worker; the other runs on; an unknown id is refused", () =>
  withIdleWorkers({ count: 2, config: NO_TIMERS }, async (home, [a, b]) => {
    assert.deepEqual((await listed(home)).sort(), [a.id, b.id].sort());

    const stop = await runCli(home, ["worker", "stop", a.id, "--wait"]);
    assert.equal(stop.code, 0, stop.stderr);
    assert.match(stop.stderr, /asked 1 worker\(s\) to stop/);
    assert.equal((await a.child.status).code, 0, "the named worker exited cleanly");
    assert.deepEqual(await listed(home), [b.id], "the other worker is still registered");

    const unknown = await runCli(home, ["worker", "stop", "wnosuch00", "--wait"]);
    assert.equal(unknown.code, 2);
    assert.equal(unknown.stdout, "");
    assert.equal(
      unknown.stderr,
      'queuectl: cannot stop workers: no live worker with id "wnosuch00"\n',
    );

    // The other worker got the same wake-ups; it still runs and takes new work.
    await enqueue(home, { id: "after", command: "true" });
    await waitFor(() => jobState(home, "after") === "completed", {
      timeoutMs: POLL_MS / 2,
      what: "the remaining worker to run a new job",
    });
    assert.equal((await show(home, "after")).attempts_log[0].worker_id, b.id);
    assert.equal(b.exited(), null, "the other worker is still running");
    assert.deepEqual(await listed(home), [b.id]);
  }));
