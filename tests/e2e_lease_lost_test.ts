/**
 * End-to-end: a worker that lost its lease kills its own attempt. The rescuer cannot do it
 * for it when it runs on another host (here: another UTS namespace, see other_host.ts), so
 * a stalled worker that wakes up is the last line against its attempt running beside the
 * retry: its next heartbeat learns the lease is gone and it kills the attempt's group.
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import {
  cleanup,
  groupMembers,
  json,
  needs,
  runCli,
  spawnCli,
  tempHome,
  waitFor,
} from "./helpers.ts";
import {
  attemptProcesses,
  CAN_UNSHARE_UTS,
  collect,
  freezeOutsideWrite,
  killAttempt,
  reap,
  spawnCliElsewhere,
  uniqueId,
} from "./other_host.ts";
import type { JobDetail } from "../src/job.ts";

const LEASE_S = 3;
const KILL_GRACE_S = 1;

const show = async (home: string, id: string) =>
  json<JobDetail>(await runCli(home, ["show", id, "--json"]));

Deno.test({
  name: "e2e lease: a stalled worker whose lease was taken over kills its own attempt's group",
  sanitizeResources: false, // the stderr pump ends with the worker
  sanitizeOps: false,
  ...needs("root and unshare", CAN_UNSHARE_UTS, async () => {
    const home = await tempHome("queuectl-lost-");
    const id = uniqueId("lost");
    const go = join(home, "go");
    let a: Deno.ChildProcess | null = null;
    let b: Deno.ChildProcess | null = null;
    let frozen = false;
    try {
      // lease 3 s: heartbeats every 1 s. backoff-max 0: the rescued job is due at once.
      // Attempt 1 ignores SIGTERM, so only the whole kill (TERM, grace, KILL) ends it.
      const settings = { lease: String(LEASE_S), "backoff-max": "0", "kill-grace": "1" };
      for (const [k, v] of Object.entries(settings)) {
        assert.equal((await runCli(home, ["config", "set", k, v])).code, 0);
      }
      const command = `if [ "$QUEUECTL_ATTEMPT" = 1 ]; then trap '' TERM; sleep 300 & sleep 300; ` +
        `wait; fi; while [ ! -e ${go} ]; do sleep 0.05; done; echo "attempt $QUEUECTL_ATTEMPT"`;
      const enq = await runCli(home, ["enqueue", JSON.stringify({ id, command, max_retries: 2 })]);
      assert.equal(enq.code, 0, enq.stderr);

      a = spawnCli(home, ["worker", "start", "--id", "a"], { stderr: "piped" });
      const logA = collect(a.stderr);
      const first = await waitFor(async () => (await show(home, id)).attempts_log[0]?.pid, {
        timeoutMs: 30_000,
        what: "attempt 1 running on worker a",
      });
      await waitFor(() => groupMembers(first).length >= 3, { what: "sh and its two sleeps" });
      b = spawnCliElsewhere(home, "queuectl-b", ["worker", "start", "--id", "b"]);
      await waitFor(async () => {
        const r = await runCli(home, ["worker", "list", "--json"]);
        return json<unknown[]>(r).length === 2;
      }, { what: "worker b registered" });

      // a stalls. b cannot reach a's process: it waits out the lease, then takes the job.
      await freezeOutsideWrite(a, home);
      frozen = true;
      const second = await waitFor(async () => {
        const log = (await show(home, id)).attempts_log;
        return log[1]?.worker_id === "b" && log[1].pid;
      }, { timeoutMs: 30_000, intervalMs: 100, what: "attempt 2 running on worker b" });
      const rescued = await show(home, id);
      assert.equal(rescued.attempts_log[0].outcome, "lost");
      assert.match(
        rescued.attempts_log[0].error!,
        new RegExp(`its process on ${Deno.hostname()} could not be reached$`),
      );
      assert.ok(groupMembers(first).length >= 3, "attempt 1 still runs beside attempt 2");

      // a wakes up: its heartbeat is overdue, so its first round learns the lease is lost.
      a.kill("SIGCONT");
      frozen = false;
      const thawedAt = performance.now();
      await waitFor(() => groupMembers(first).length === 0, {
        // one heartbeat interval (lease/3) + kill-grace, doubled for a loaded machine
        timeoutMs: 2 * ((LEASE_S * 1000) / 3 + KILL_GRACE_S * 1000),
        intervalMs: 20,
        what: "attempt 1's whole group killed by its own worker",
      });
      const killedIn = performance.now() - thawedAt;
      console.log(`attempt 1's group gone ${Math.round(killedIn)} ms after its worker woke`);
      assert.match(logA.text, new RegExp(`lost the lease of job ${id}: killing its attempt`));
      assert.deepEqual(
        attemptProcesses(id, 1),
        [],
        "nothing of attempt 1 left, in or out of its group",
      );
      // No overlap from here on: attempt 2 was still running when attempt 1 ended.
      assert.deepEqual((await show(home, id)).attempts_log.map((x) => x.outcome), [
        "lost",
        "running",
      ]);
      assert.ok(groupMembers(second).length > 0, "attempt 2 still running");

      // a's late result is refused; the job stays b's, whose attempt then completes.
      await waitFor(() => logA.text.includes(`result of job ${id} refused`), {
        what: "a's stale result refused",
      });
      Deno.writeTextFileSync(go, "");
      const done = await waitFor(async () => {
        const j = await show(home, id);
        return j.state === "completed" && j;
      }, { what: "attempt 2 completed" });
      assert.deepEqual(done.attempts_log.map((x) => [x.attempt, x.worker_id, x.outcome]), [
        [1, "a", "lost"],
        [2, "b", "succeeded"],
      ]);
      assert.equal(done.attempts_log[0].exit_code, null, "attempt 1 keeps the rescuer's record");
      assert.equal(done.attempts, 2);
      assert.equal((await runCli(home, ["logs", id])).stdout, "attempt 2\n");

      const stop = await runCli(home, ["worker", "stop", "--wait"]);
      assert.equal(stop.code, 0, stop.stderr);
      assert.equal((await a.status).code, 0, logA.text);
      assert.equal((await b.status).code, 0);
      a = b = null;
    } finally {
      if (frozen) a?.kill("SIGCONT");
      await reap(a);
      await reap(b);
      killAttempt(id, 1);
      killAttempt(id, 2);
      await cleanup(home);
    }
  }),
});
