/**
 * The busy retry: a write that finds the database locked for longer than SQLite's busy
 * timeout (5 s) is retried for up to 60 s (src/store/sqlite/db.ts), so "database is
 * locked" does not reach the user while another process merely holds the lock a long time.
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import { cleanup, json, runCli, spawnCli, tempHome, waitFor } from "./helpers.ts";
import type { JobDetail } from "../src/job.ts";

/** SQLite's own wait for the lock, per statement (db.ts OpenOptions.busyTimeoutMs). */
const BUSY_TIMEOUT_MS = 5000;
/** How long the lock stays held past the enqueue's first try at it: a whole busy timeout and more. */
const HOLD_PAST_MS = BUSY_TIMEOUT_MS + 2500;

const HOLDER = new URL("./fixtures/hold_write_lock.ts", import.meta.url).pathname;

/** Whether process `pid` has the file `path` open. */
function hasOpen(pid: number, path: string): boolean {
  try {
    for (const fd of Deno.readDirSync(`/proc/${pid}/fd`)) {
      try {
        if (Deno.readLinkSync(`/proc/${pid}/fd/${fd.name}`) === path) return true;
      } catch { /* closed meanwhile */ }
    }
  } catch { /* exited */ }
  return false;
}

Deno.test("busy retry: an enqueue outwaits a write lock held longer than the busy timeout", async () => {
  const home = await tempHome("queuectl-busy-");
  const db = join(Deno.realPathSync(home), "queue.db");
  let holder: Deno.ChildProcess | null = null;
  let enqueue: Deno.ChildProcess | null = null;
  try {
    assert.equal((await runCli(home, ["status"])).code, 0); // the database, migrated
    holder = new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", HOLDER, db],
      stdin: "piped",
      stdout: "piped",
      stderr: "inherit",
    }).spawn();
    const lines = holder.stdout.pipeThrough(new TextDecoderStream()).getReader();
    assert.equal((await lines.read()).value, "held\n");
    await lines.cancel();

    enqueue = spawnCli(home, ["enqueue", "--id", "j", "--", "echo", "hi"], {
      stdout: "piped",
      stderr: "piped",
    });
    let exitedAt: number | null = null;
    const output = enqueue.output().then((out) => (exitedAt = performance.now(), out));
    // Its start-up is slow on a loaded machine; time from when it opened the database
    // (its first write follows within milliseconds).
    await waitFor(() => exitedAt !== null || hasOpen(enqueue!.pid, db), {
      intervalMs: 5,
      what: "the enqueue to open the database",
    });
    const openedAt = performance.now();
    await waitFor(() => exitedAt !== null || performance.now() - openedAt > HOLD_PAST_MS, {
      what: "a busy timeout and more to pass",
    });
    assert.equal(exitedAt, null, "the enqueue gave up while the lock was held");
    await holder.stdin.close();
    const released = performance.now();
    assert.equal((await holder.status).code, 0);
    holder = null;

    const out = await output;
    enqueue = null;
    const stderr = new TextDecoder().decode(out.stderr);
    assert.equal(out.code, 0, stderr);
    assert.doesNotMatch(stderr, /locked|busy/i);
    assert.equal(stderr, "");
    assert.equal(new TextDecoder().decode(out.stdout), "j\n");
    const waited = exitedAt! - openedAt;
    assert.ok(waited > BUSY_TIMEOUT_MS, `waited ${waited} ms: within one busy timeout`);
    console.log(
      `enqueue waited ${Math.round(waited)} ms for the lock, done ${
        Math.round(exitedAt! - released)
      } ms after its release`,
    );
    const job = json<JobDetail>(await runCli(home, ["show", "j", "--json"]));
    assert.equal(job.state, "pending");
    assert.equal(job.command, "echo hi");
  } finally {
    if (holder) {
      await holder.stdin.close().catch(() => {});
      await holder.status;
    }
    if (enqueue) {
      try {
        enqueue.kill("SIGKILL");
      } catch { /* ended */ }
      await enqueue.status;
    }
    await cleanup(home);
  }
});
