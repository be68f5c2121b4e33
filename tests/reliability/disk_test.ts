/**
 * A full disk and an unwritable data directory, on real mounts: a small tmpfs (filled with
 * a filler file, or out of inodes) and a read-only bind mount. Needs root and `mount`
 * (helpers.ts `needs`: without them the tests are ignored, loudly, and fail in CI).
 *
 * - Full disk, no process holding the database: every command fails with exit 1 and one
 *   line naming the cause (`… (DIR: no space left on device)`); nothing is half-written;
 *   once space is freed everything works again.
 * - Full disk under a running worker: the worker keeps running (it logs and retries), its
 *   running job is recorded once space is back, and it takes new work.
 * - Read-only data directory: exit 1, one line naming `read-only file system`.
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import { DatabaseSync } from "node:sqlite";
import { cleanup, json, needs, runCli, spawnCli, tempHome, waitFor } from "../helpers.ts";

function sh(script: string, ...args: string[]): { code: number; out: string } {
  const r = new Deno.Command("sh", { args: ["-c", script, "sh", ...args], stdin: "null" })
    .outputSync();
  const dec = new TextDecoder();
  return { code: r.code, out: dec.decode(r.stdout) + dec.decode(r.stderr) };
}

/** Whether this process may mount a tmpfs (root on a VM: yes; a plain container: no). */
const CAN_MOUNT = (() => {
  try {
    if (Deno.uid() !== 0) return false;
    const dir = Deno.makeTempDirSync({ prefix: "queuectl-mount-probe-" });
    try {
      const ok = sh('mount -t tmpfs -o size=1m tmpfs "$1"', dir).code === 0;
      if (ok) sh('umount "$1"', dir);
      return ok;
    } finally {
      Deno.removeSync(dir, { recursive: true });
    }
  } catch {
    return false;
  }
})();
const MOUNT = "root and mount(8) (a tmpfs, a bind mount)";

/** Mounts a tmpfs with `options` on a fresh folder, runs `fn`, unmounts whatever happens. */
async function withTmpfs(options: string, fn: (mnt: string, dir: string) => Promise<void>) {
  const dir = await tempHome("queuectl-disk-");
  const mnt = join(dir, "mnt");
  Deno.mkdirSync(mnt);
  const mounted = sh('mount -t tmpfs -o "$1" tmpfs "$2"', options, mnt);
  assert.equal(mounted.code, 0, mounted.out);
  try {
    await fn(mnt, dir);
  } finally {
    // A busy mount (a process still in it) is detached lazily rather than left behind.
    if (sh('umount "$1"', mnt).code !== 0) sh('umount -l "$1"', mnt);
    await cleanup(dir);
  }
}

/** Writes a filler file until the file system is full; returns its path. */
function fill(dir: string): string {
  const path = join(dir, "filler");
  const file = Deno.openSync(path, { write: true, create: true });
  try {
    for (const size of [1 << 16, 4096, 1]) {
      const block = new Uint8Array(size);
      try {
        while (true) file.writeSync(block);
      } catch (e) {
        assert.match((e as Error).message, /No space left on device/);
      }
    }
  } finally {
    file.close();
  }
  return path;
}

/** The one stderr line of a failed command, checked for the shape every error has. */
function oneLine(r: { code: number; stdout: string; stderr: string }, code = 1): string {
  assert.equal(r.code, code, `exit ${r.code}: ${r.stderr}`);
  const lines = r.stderr.trimEnd().split("\n");
  assert.equal(lines.length, 1, `one line: ${r.stderr}`);
  assert.match(lines[0], /^queuectl: cannot /);
  assert.doesNotMatch(r.stderr, /\bat .*\.ts:\d+/, "no stack trace");
  return lines[0];
}

function integrity(dbPath: string): string {
  const db = new DatabaseSync(dbPath);
  try {
    return (db.prepare("PRAGMA integrity_check").get() as { integrity_check: string })
      .integrity_check;
  } finally {
    db.close();
  }
}

function jobIds(dbPath: string): string[] {
  const db = new DatabaseSync(dbPath, { readOnly: true });
  try {
    return (db.prepare("SELECT id FROM jobs ORDER BY id").all() as { id: string }[]).map((r) =>
      r.id
    );
  } finally {
    db.close();
  }
}

const NO_SPACE = /\(\/.*: no space left on device\)$/;

Deno.test({
  name: `disk full: every command exits 1 with the cause, nothing half-written, all works after`,
  ...needs(MOUNT, CAN_MOUNT, () =>
    withTmpfs("size=2m", async (mnt) => {
      const home = join(mnt, "home");
      const db = join(home, "queue.db");
      assert.equal((await runCli(home, ["enqueue", "--id", "before", "--", "true"])).code, 0);
      const filler = fill(mnt);
      const batch = Array.from({ length: 500 }, (_, i) => `{"id":"bulk-${i}","command":"true"}`)
        .join("\n");

      // No process holds the database: SQLite cannot even size its shared-memory file.
      const single = oneLine(await runCli(home, ["enqueue", "--id", "x", "--", "true"]));
      assert.match(single, /^queuectl: cannot open database: disk I\/O error/);
      assert.match(single, NO_SPACE);
      assert.match(oneLine(await runCli(home, ["enqueue", "-"], { stdin: batch })), NO_SPACE);
      assert.match(oneLine(await runCli(home, ["status"])), NO_SPACE);
      assert.match(
        oneLine(await runCli(home, ["config", "set", "lease", "20"])),
        /^queuectl: cannot set "lease": No space left on device/,
      );

      Deno.removeSync(filler);

      // A process holding the database open (as a worker does): now the write fails.
      const holder = new DatabaseSync(db);
      let filler2: string | null = null;
      try {
        holder.prepare("SELECT count(*) FROM jobs").get();
        filler2 = fill(mnt);
        const write = oneLine(await runCli(home, ["enqueue", "-"], { stdin: batch }));
        assert.match(write, /^queuectl: cannot enqueue: database or disk is full/);
        assert.match(write, NO_SPACE);
      } finally {
        holder.close();
        if (filler2) Deno.removeSync(filler2);
      }

      assert.equal(integrity(db), "ok");
      assert.deepEqual(jobIds(db), ["before"], "nothing of the failed enqueues was written");
      assert.equal(
        Deno.readDirSync(home).toArray().filter((e) => e.name.startsWith(".queuectl-probe"))
          .length,
        0,
        "the probe files are gone",
      );
      const again = await runCli(home, ["enqueue", "-"], { stdin: batch });
      assert.equal(again.code, 0, again.stderr);
      assert.equal(again.stdout.trim().split("\n").length, 500);
      assert.equal((await runCli(home, ["config", "set", "lease", "20"])).code, 0);
      assert.equal(jobIds(db).length, 501);
      assert.equal(integrity(db), "ok");
    })),
});

Deno.test({
  name: `disk full under a running worker: it keeps running, records the job, takes new work`,
  ...needs(MOUNT, CAN_MOUNT, () =>
    withTmpfs("size=2m", async (mnt) => {
      const home = join(mnt, "home");
      const db = join(home, "queue.db");
      assert.equal((await runCli(home, ["config", "set", "poll-interval", "0.2"])).code, 0);
      const worker = spawnCli(home, ["worker", "start", "--count", "2"], { stderr: "piped" });
      let log = "";
      const reading = (async () => {
        for await (const chunk of worker.stderr.pipeThrough(new TextDecoderStream())) log += chunk;
      })();
      let filler: string | null = null;
      try {
        const job = '{"id":"long","command":"sleep 2; echo finished"}';
        assert.equal((await runCli(home, ["enqueue", job])).code, 0);
        const state = (id: string) => {
          const r = new DatabaseSync(db, { readOnly: true });
          try {
            return (r.prepare("SELECT state FROM jobs WHERE id = ?").get(id) as
              | { state: string }
              | undefined)?.state;
          } finally {
            r.close();
          }
        };
        await waitFor(() => state("long") === "processing", { what: "the job to start" });
        filler = fill(mnt);

        // While full: enqueue fails cleanly; the worker logs and retries, and stays up.
        const refused = oneLine(await runCli(home, ["enqueue", "--id", "late", "--", "true"]));
        assert.match(refused, /^queuectl: cannot enqueue: database or disk is full/);
        await waitFor(
          () => (log.match(/no space left on device\); retrying in 1 s/g) ?? []).length >= 2,
          {
            what: "the worker to report the full disk twice",
            timeoutMs: 15_000,
          },
        );
        const exited = await Promise.race([
          worker.status.then(() => true),
          new Promise<false>((r) => setTimeout(() => r(false), 200)),
        ]);
        assert.equal(exited, false, `the worker must not exit on a full disk:\n${log}`);
        assert.equal(state("long"), "processing", "the finished job waits to be recorded");

        Deno.removeSync(filler);
        filler = null;
        await waitFor(() => state("long") === "completed", {
          what: "the job to be recorded",
          timeoutMs: 15_000,
        });
        const shown = json<{ attempts: number; exit_code: number }>(
          await runCli(home, ["show", "long", "--json"]),
        );
        assert.equal(shown.attempts, 1, "no attempt lost to the outage");
        assert.equal(shown.exit_code, 0);
        // New work after the outage.
        assert.equal((await runCli(home, ["enqueue", "--id", "after", "--", "true"])).code, 0);
        await waitFor(() => state("after") === "completed", { what: "new work to run" });
        assert.equal(integrity(db), "ok");
      } finally {
        if (filler) Deno.removeSync(filler);
        await runCli(home, ["worker", "stop"]);
        const status = await Promise.race([
          worker.status,
          new Promise<null>((r) => setTimeout(() => r(null), 15_000)),
        ]);
        if (status === null) worker.kill("SIGKILL");
        await worker.status;
        await reading;
        assert.equal(status?.code, 0, `the worker stops cleanly:\n${log}`);
      }
    })),
});

Deno.test({
  name: `read-only data directory (bind mount): exit 1 with the cause`,
  ...needs(MOUNT, CAN_MOUNT, async () => {
    const dir = await tempHome("queuectl-ro-");
    const src = join(dir, "src");
    const ro = join(dir, "ro");
    Deno.mkdirSync(src);
    Deno.mkdirSync(ro);
    assert.equal((await runCli(join(src, "home"), ["enqueue", "--id", "a", "--", "true"])).code, 0);
    const mounted = sh('mount --bind -o ro "$1" "$2"', src, ro);
    assert.equal(mounted.code, 0, mounted.out);
    try {
      // chmod would not stop root; a read-only mount does.
      const home = join(ro, "home");
      for (const args of [["enqueue", "--", "true"], ["status"], ["list"]]) {
        const line = oneLine(await runCli(home, args));
        assert.match(line, /\(\/.*: read-only file system\)$/, args.join(" "));
      }
      assert.match(
        oneLine(await runCli(home, ["config", "set", "lease", "20"])),
        /^queuectl: cannot set "lease": Read-only file system/,
      );
      const worker = oneLine(await runCli(home, ["worker", "start"]));
      assert.match(worker, /read-only file system/);
      assert.match(
        oneLine(await runCli(join(ro, "new-home"), ["status"])),
        /^queuectl: cannot create data directory .*: Read-only file system/,
      );
    } finally {
      if (sh('umount "$1"', ro).code !== 0) sh('umount -l "$1"', ro);
    }
    try {
      assert.equal(integrity(join(src, "home", "queue.db")), "ok");
      assert.deepEqual(jobIds(join(src, "home", "queue.db")), ["a"]);
    } finally {
      await cleanup(dir);
    }
  }),
});

/*
 * Two pool bugs these tests found (fixed in src/pool/pool.ts): a job claimed while the
 * output folder could not be created was left processing until its lease expired, and an
 * output file that could not be created spent a retry, so a full disk sent jobs to the DLQ.
 */

/** Creates empty files until the file system has no inode left; returns them. */
function exhaustInodes(dir: string): string[] {
  const made: string[] = [];
  for (let i = 0;; i++) {
    const path = join(dir, `inode-${i}`);
    try {
      Deno.writeFileSync(path, new Uint8Array());
    } catch (e) {
      assert.match((e as Error).message, /No space left on device/);
      return made;
    }
    made.push(path);
  }
}

/** A worker on `home` with its stderr collected. */
function startWorker(home: string) {
  const child = spawnCli(home, ["worker", "start"], { stderr: "piped" });
  const state = { log: "" };
  const reading = (async () => {
    for await (const chunk of child.stderr.pipeThrough(new TextDecoderStream())) {
      state.log += chunk;
    }
  })();
  return {
    state,
    async stop() {
      await runCli(home, ["worker", "stop"]);
      const done = await Promise.race([
        child.status,
        new Promise<null>((r) => setTimeout(() => r(null), 15_000)),
      ]);
      if (done === null) child.kill("SIGKILL");
      await child.status;
      await reading;
    },
  };
}

/** The job row and the attempts of `id`, read straight from the store. */
function jobAndAttempts(home: string, id: string) {
  const db = new DatabaseSync(join(home, "queue.db"), { readOnly: true });
  try {
    const job = db.prepare("SELECT state, attempts, max_retries FROM jobs WHERE id = ?").get(
      id,
    ) as {
      state: string;
      attempts: number;
      max_retries: number;
    };
    const attempts = db.prepare(
      "SELECT attempt, outcome, error FROM attempts WHERE job_id = ? ORDER BY attempt",
    ).all(id) as { attempt: number; outcome: string; error: string | null }[];
    return { job, attempts };
  } finally {
    db.close();
  }
}

Deno.test({
  name: `out of inodes when a job is claimed: it is released with its retries unspent, runs later`,
  // Pool.#dispatch makes the output folder after the claim committed; its ENOSPC escaped
  // to the loop, and the claimed job sat in `processing` until its lease expired.
  ...needs(MOUNT, CAN_MOUNT, () =>
    withTmpfs("size=4m,nr_inodes=40", async (mnt) => {
      const home = join(mnt, "home");
      assert.equal((await runCli(home, ["config", "set", "poll-interval", "0.2"])).code, 0);
      const worker = startWorker(home);
      let inodes: string[] = [];
      try {
        await waitFor(() => worker.state.log.includes("started"), { what: "the worker" });
        inodes = exhaustInodes(mnt); // today's output folder does not exist yet
        // No retries at all: a release that spent one would leave it none.
        const enq = await runCli(home, [
          "enqueue",
          "--id",
          "j",
          "--max-retries",
          "0",
          "--",
          "true",
        ]);
        assert.equal(enq.code, 0, enq.stderr);
        const released = await waitFor(() => {
          const now = jobAndAttempts(home, "j");
          return now.attempts.some((a) => a.outcome !== "running") && now;
        }, { what: "the first claim to end" });
        const first = released.attempts[0];
        assert.equal(first.outcome, "spawn_failed", JSON.stringify(first));
        assert.match(first.error ?? "", /cannot create output folder .*No space left on device/);
        // The line reaches us through the worker's stderr pipe, maybe after the store did.
        await waitFor(
          () => /cannot create output folder .*; pausing claims for 5 s/.test(worker.state.log),
          { what: "the worker's log line about the output folder" },
        );
        // Back in the queue, not left processing; its retry budget counts only the claim it
        // may hold by now (the worker tries again after its 5 s pause), never a release.
        const { job } = released;
        assert.ok(["pending", "processing"].includes(job.state), `released: ${job.state}`);
        assert.equal(job.attempts, job.state === "processing" ? 1 : 0, "attempts spent");
        for (const path of inodes.splice(0)) Deno.removeSync(path);
        const done = await waitFor(() => {
          const now = jobAndAttempts(home, "j");
          assert.notEqual(now.job.state, "dead", "a full disk is not the job's failure");
          return now.job.state === "completed" && now;
        }, { what: "the job to run once inodes are back", timeoutMs: 30_000 });
        // Every claim before the one that ran was released; only that one counts.
        assert.deepEqual(
          done.attempts.map((a) => a.outcome),
          [...done.attempts.slice(0, -1).map(() => "spawn_failed"), "succeeded"],
        );
        assert.equal(done.job.attempts, 1, "attempts counts the one that ran");
      } finally {
        for (const path of inodes) Deno.removeSync(path);
        await worker.stop();
      }
    })),
});

Deno.test({
  name: `an output file that cannot be created does not send the job to the DLQ`,
  // Once this reported spawn_failed, a failed attempt: a disk that is full for ~15 s (the
  // default backoff 2+4+8 s) moved every job it met to `dead`. Now the file is created on
  // the job's first byte, and failing to create it loses the output, not the attempt.
  ...needs(MOUNT, CAN_MOUNT, () =>
    withTmpfs("size=4m,nr_inodes=40", async (mnt) => {
      const home = join(mnt, "home");
      assert.equal((await runCli(home, ["config", "set", "poll-interval", "0.2"])).code, 0);
      assert.equal((await runCli(home, ["config", "set", "backoff-base", "1.1"])).code, 0);
      const worker = startWorker(home);
      let inodes: string[] = [];
      try {
        // One job first, so today's output folder exists and the claim goes through.
        assert.equal((await runCli(home, ["enqueue", "--id", "first", "--", "true"])).code, 0);
        await waitFor(async () => {
          const r = await runCli(home, ["show", "first", "--json"]);
          return json<{ state: string }>(r).state === "completed";
        }, { what: "the first job" });
        inodes = exhaustInodes(mnt);
        assert.equal((await runCli(home, ["enqueue", "--id", "j", "--", "echo", "hi"])).code, 0);
        // It runs while inodes are out (its folder exists), and loses its output.
        await waitFor(() => /job j attempt 1: output lost/.test(worker.state.log), {
          what: "the job to run during the outage",
        });
        for (const path of inodes.splice(0)) Deno.removeSync(path);
        await waitFor(async () => {
          const r = await runCli(home, ["show", "j", "--json"]);
          const state = json<{ state: string }>(r).state;
          assert.notEqual(state, "dead", "a full disk is not the job's failure");
          return state === "completed";
        }, { what: "the job to run", timeoutMs: 10_000 });
        // It ran while inodes were out: its output was lost, and the worker said so.
        assert.match(worker.state.log, /job j attempt 1: output lost: cannot create output file/);
      } finally {
        for (const path of inodes) Deno.removeSync(path);
        await worker.stop();
      }
    })),
});
