/**
 * End-to-end: a worker killed with SIGKILL mid-job, with default settings.
 */

import assert from "node:assert/strict";
import { join } from "node:path";
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
    const done = await waitFor(async () => {
      const j = await show(home, "victim");
      return j.state !== "processing" && j;
    }, { timeoutMs: 40_000, intervalMs: 100, what: "rescue" });
    const recoveredMs = Date.now() - killedAt;
    // The lease is 30 s; the live worker looks every poll (1 s) and sees the pid is gone.
    assert.ok(recoveredMs < 10_000, `rescued after ${recoveredMs} ms`);
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
  await runCli(home, [
    "enqueue",
    JSON.stringify({ id: "t", command: `echo $$ > ${pidFile}; exec sleep 1000`, timeout_s: 1 }),
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
    worker.kill("SIGKILL");
    await worker.status;
    const killedAt = Date.now();
    // No worker is left to enforce the timeout: the job's own watchdog must.
    await waitFor(() => !alive(orphan), { timeoutMs: 15_000, what: "orphan ended by its timeout" });
    // timeout(1) fires at timeout + grace + 2 s and SIGKILLs 1 s later; allow for a busy machine.
    assert.ok(Date.now() - killedAt < 12_000, "ended by the watchdog, not by sleep 1000");
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
