/**
 * End-to-end: heartbeats keep a job that runs longer than its lease alive, while another
 * worker stands by that would rescue the job the moment its lease expired.
 */

import assert from "node:assert/strict";
import { waitFor } from "./helpers.ts";
import { enqueue, jobState, query, show, withIdleWorkers } from "./e2e_helpers.ts";

const LEASE_MS = 2000;
const STANDBY = { "lease": String(LEASE_MS / 1000), "poll-interval": "1" };

Deno.test("e2e heartbeat: a job running three leases keeps its one attempt; nobody rescues it", () =>
  // Both workers look for expired leases every poll (1 s): either would rescue the other's.
  withIdleWorkers({ count: 2, config: STANDBY }, async (home, workers) => {
    const runS = (3 * LEASE_MS) / 1000;
    await enqueue(home, { id: "long", command: `sleep ${runS}`, max_retries: 3 });
    // The lease was renewed past what the claim gave it: a heartbeat extended it.
    await waitFor(() => {
      const [row] = query(
        home,
        `SELECT a.started_at, j.lease_expires_at FROM jobs j JOIN attempts a
         ON a.job_id = j.id AND a.attempt = j.attempt_seq WHERE j.id = 'long' AND j.state = 'processing'`,
      );
      return row && Number(row.lease_expires_at) > Number(row.started_at) + LEASE_MS + 500;
    }, { what: "the lease of long extended by a heartbeat" });
    await waitFor(() => ["completed", "dead"].includes(jobState(home, "long")!), {
      timeoutMs: 60_000,
      what: "long ended",
    });
    const job = await show(home, "long");
    assert.deepEqual(job.attempts_log.map((a) => a.outcome), ["succeeded"], "one attempt");
    assert.equal(job.attempts, 1);
    const ran = job.attempts_log[0].duration_ms!;
    assert.ok(ran >= 3 * LEASE_MS, `the attempt outlived its lease three times (${ran} ms)`);
    // The stand-by worker was there the whole time.
    for (const w of workers) assert.equal(w.exited(), null, `worker ${w.id} still runs`);
  }));
