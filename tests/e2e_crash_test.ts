/**
 * End-to-end: a worker killed with SIGKILL mid-job, with default settings.
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import { DatabaseSync } from "node:sqlite";
import { cleanup, json, runCli, spawnCli, tempHome, waitFor } from "./helpers.ts";
import type { JobDetail } from "../src/job.ts";

const show = async (home: string, id: string) =>
  json<JobDetail>(await runCli(home, ["show", id, "--json"]));

const alive = (pid: number) => {
  try {
    const stat = Deno.readTextFileSync(`/proc/${pid}/stat`);
    return stat.slice(stat.lastIndexOf(")") + 2)[0] !== "Z";
  } catch {
    return false;
  }
};

/** The parent pid of `pid`, from /proc (field 4 of stat). */
function parentOf(pid: number): number {
  const stat = Deno.readTextFileSync(`/proc/${pid}/stat`);
  return Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
}

/** The command name of `pid`. */
function commOf(pid: number): string {
  return Deno.readTextFileSync(`/proc/${pid}/comm`).trim();
}

/** The victim job's lease end and its first attempt's outcome and end, from the store. */
function victimRow(home: string) {
  const db = new DatabaseSync(join(home, "queue.db"), { readOnly: true });
  try {
    return db.prepare(
      `SELECT j.lease_expires_at, a.outcome, a.ended_at FROM jobs j
       JOIN attempts a ON a.job_id = j.id AND a.attempt = 1 WHERE j.id = 'victim'`,
    ).get() as { lease_expires_at: number | null; outcome: string; ended_at: number | null };
  } finally {
    db.close();
  }
}

/**
 * Enqueues job "victim", whose attempt 1 hangs (and would hang forever) and attempt 2
 * prints "retried"; returns the pid of attempt 1 once a worker started it.
 */
async function startVictim(home: string): Promise<number> {
  const pidFile = join(home, "orphan.pid");
  const command =
    `if [ "$QUEUECTL_ATTEMPT" = 1 ]; then echo $$ > ${pidFile}; exec sleep 1000; fi; echo retried`;
  await runCli(home, ["enqueue", JSON.stringify({ id: "victim", command })]);
  return await waitFor(() => {
    try {
      return Number(Deno.readTextFileSync(pidFile).trim()) || null;
    } catch {
      return null;
    }
  }, { what: "job started" });
}

Deno.test("e2e crash: kill -9 of a worker mid-job is rescued within 60 s and the orphan is killed", async () => {
  const home = await tempHome();
  const first = spawnCli(home, ["worker", "start"]);
  let second: Deno.ChildProcess | null = null;
  try {
    const orphan = await startVictim(home);
    first.kill("SIGKILL");
    await first.status;
    const killedAt = Date.now();
    assert.ok(alive(orphan), "the orphan outlives its worker");
    assert.equal((await show(home, "victim")).state, "processing");

    second = spawnCli(home, ["worker", "start"]);
    const done = await waitFor(async () => {
      const j = await show(home, "victim");
      return j.state !== "processing" && j;
    }, { timeoutMs: 70_000, intervalMs: 250, what: "rescue" });
    const recoveredMs = Date.now() - killedAt;
    assert.ok(recoveredMs <= 60_000, `rescued after ${recoveredMs} ms`);
    assert.ok(!alive(orphan), "the orphaned attempt was killed before the retry");
    assert.match(done.attempts_log[0].error!, /lost its lease.*orphaned process group was killed/);
    assert.equal(done.attempts_log[0].outcome, "lost");
    const final = await waitFor(async () => {
      const j = await show(home, "victim");
      return j.state === "completed" && j;
    }, { what: "retry completed" });
    assert.equal(final.attempts, 2, "retried through the normal retry path");
    assert.match((await runCli(home, ["logs", "victim"])).stdout, /retried/);
  } finally {
    await runCli(home, ["worker", "stop", "--wait"]);
    if (second) await second.status;
    await cleanup(home);
  }
});

Deno.test("e2e crash: a live worker on the same host rescues a kill -9'd worker's job at once, not after its lease", async () => {
  const home = await tempHome();
  const first = spawnCli(home, ["worker", "start"]);
  let second: Deno.ChildProcess | null = null;
  try {
    const orphan = await startVictim(home);
    second = spawnCli(home, ["worker", "start"]);
    await waitFor(async () => {
      const r = await runCli(home, ["worker", "list", "--json"]);
      return json<unknown[]>(r).length === 2;
    }, { what: "the second worker registered" });
    first.kill("SIGKILL");
    await first.status;
    const killedAt = Date.now();
    // The dead worker's lease as it stands: nothing renews it any more, and the lease path
    // (expiredLeases) cannot take the job before it ends.
    const leaseEnd = victimRow(home).lease_expires_at;
    assert.ok(leaseEnd !== null && leaseEnd > killedAt, `lease ends at ${leaseEnd}`);
    // Read from the store, not through `show` processes; long enough for the lease path to
    // act too, so a broken pid check fails on the times below rather than on this wait.
    const lost = await waitFor(() => {
      const row = victimRow(home);
      return row.outcome !== "running" && row;
    }, { timeoutMs: leaseEnd - killedAt + 30_000, intervalMs: 50, what: "rescue" });
    // The live worker looks every poll (1 s) and sees the pid gone; the lease (30 s) ends
    // 20-30 s after the kill. Ending the attempt before the lease could expire is what "at
    // once" means, and it holds however slow the machine: only the pid check can do it.
    const recoveredMs = lost.ended_at! - killedAt;
    assert.ok(
      lost.ended_at! < leaseEnd,
      `rescued ${recoveredMs} ms after the kill, ${
        lost.ended_at! - leaseEnd
      } ms after the lease ended`,
    );
    console.log(
      `same-host rescue ${recoveredMs} ms after the kill (lease ${leaseEnd - killedAt} ms)`,
    );
    const done = await show(home, "victim");
    assert.ok(!alive(orphan), "the orphaned attempt was killed before the retry");
    assert.match(done.attempts_log[0].error!, /lost its lease.*orphaned process group was killed/);
    const final = await waitFor(async () => {
      const j = await show(home, "victim");
      return j.state === "completed" && j;
    }, { what: "retry completed" });
    assert.equal(final.attempts, 2);
  } finally {
    await runCli(home, ["worker", "stop", "--wait"]);
    if (second) await second.status;
    await cleanup(home);
  }
});

Deno.test("e2e crash: a job's timeout still bounds it when its worker is gone", async () => {
  const home = await tempHome();
  const pidFile = join(home, "orphan.pid");
  await runCli(home, ["config", "set", "kill-grace", "0.5"]);
  // timeout_s 5: the test sees the job start and kills its worker long before the worker's
  // own timer would end it (if it did, the assertion that the job outlived it says so).
  await runCli(home, [
    "enqueue",
    JSON.stringify({ id: "t", command: `echo $$ > ${pidFile}; exec sleep 1000`, timeout_s: 5 }),
  ]);
  const worker = spawnCli(home, ["worker", "start"]);
  try {
    const orphan = await waitFor(() => {
      try {
        return Number(Deno.readTextFileSync(pidFile).trim()) || null;
      } catch {
        return null;
      }
    });
    // Its watchdog is timeout(1), the parent of the job's sh (whose pid the job wrote).
    const watchdog = parentOf(orphan);
    assert.equal(commOf(watchdog), "timeout", "the job runs under timeout(1)");
    worker.kill("SIGKILL");
    await worker.status;
    // The job outlives its worker: nothing else than its watchdog is left to end it.
    assert.ok(alive(orphan), "the job died with its worker: nothing left for a watchdog to do");
    assert.ok(alive(watchdog), "the watchdog died with the worker");
    // timeout(1) fires at timeout + grace + 2 s (7.5 s) and SIGKILLs 1 s later; sleep 1000
    // would end after 1000 s. Any end before that is the watchdog's (the worker is gone),
    // so the wait allows far more than a loaded machine needs and far less than 1000 s.
    await waitFor(() => !alive(orphan), {
      timeoutMs: 120_000,
      what: "orphan ended by its timeout",
    });
    await waitFor(() => !alive(watchdog), { what: "the watchdog gone with it" });
  } finally {
    await cleanup(home);
  }
});

Deno.test("e2e crash: a kill -9'd worker leaves 'worker list' at once; 'stop --wait' does not wait for it", async () => {
  const home = await tempHome();
  const dead = spawnCli(home, ["worker", "start"]);
  const live = spawnCli(home, ["worker", "start"]);
  try {
    const listed = async () =>
      json<Array<{ id: string; pid: number }>>(await runCli(home, ["worker", "list", "--json"]));
    await waitFor(async () => (await listed()).length === 2, { what: "two workers registered" });
    dead.kill("SIGKILL");
    await dead.status;
    // Its heartbeat is still fresh (lease 30 s), but its process is gone on this host.
    assert.deepEqual((await listed()).map((w) => w.pid), [live.pid]);
    const started = performance.now();
    const stop = await runCli(home, ["worker", "stop", "--wait"]);
    assert.equal(stop.code, 0, stop.stderr);
    assert.match(stop.stderr, /^asked 1 worker\(s\) to stop\nall stopped\n$/);
    assert.equal((await live.status).code, 0);
    // The live worker stops within its poll; waiting out the dead one's lease would be 30 s.
    const waited = performance.now() - started;
    assert.ok(waited < 15_000, `stop --wait took ${Math.round(waited)} ms`);
    assert.deepEqual(await listed(), []);
  } finally {
    for (const w of [dead, live]) {
      try {
        w.kill("SIGKILL");
      } catch { /* exited */ }
      await w.status;
    }
    await cleanup(home);
  }
});
