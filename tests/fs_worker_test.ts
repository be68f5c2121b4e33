/**
 * The network-file-system refusal at worker start (src/pool/foreground.ts): a database
 * that exists on a FUSE mount (made with the override) is refused by `worker start`
 * without it, whoever created the file, and accepted with it. bindfs makes a real FUSE
 * mount without a server; it needs root and /dev/fuse.
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import { cleanup, json, needs, runCli, spawnCli, tempHome, waitFor } from "./helpers.ts";
import { collect, reap } from "./other_host.ts";

const CAN_BINDFS = (() => {
  try {
    return Deno.uid() === 0 &&
      new Deno.Command("sh", { args: ["-c", "command -v bindfs && test -c /dev/fuse"] })
          .outputSync().code === 0;
  } catch {
    return false;
  }
})();

const OVERRIDE = { QUEUECTL_ALLOW_NETWORK_FS: "1" };

Deno.test({
  name: "fs check e2e: 'worker start' refuses a database on a FUSE mount unless overridden",
  sanitizeResources: false, // the stderr pump ends with the worker
  sanitizeOps: false,
  ...needs("root, bindfs and /dev/fuse", CAN_BINDFS, async () => {
    const dir = await tempHome("queuectl-fuse-worker-");
    const source = join(dir, "source");
    const mnt = join(dir, "mnt");
    Deno.mkdirSync(source);
    Deno.mkdirSync(mnt);
    const sh = (script: string) =>
      new Deno.Command("sh", { args: ["-c", script, "sh", source, mnt] }).outputSync();
    const mounted = sh('bindfs "$1" "$2"');
    assert.equal(mounted.code, 0, new TextDecoder().decode(mounted.stderr));
    let worker: Deno.ChildProcess | null = null;
    try {
      const home = join(mnt, "home");
      const enq = await runCli(home, ["enqueue", "--id", "j", "--", "echo", "hi"], {
        env: OVERRIDE,
      });
      assert.equal(enq.code, 0, enq.stderr);

      // Without the override: refused at once, one line, exit 1, nothing run.
      worker = spawnCli(home, ["worker", "start"], { stdout: "piped", stderr: "piped" });
      let refused = null as Deno.CommandOutput | null; // set from a callback
      const exited = worker.output().then((out) => refused = out);
      await waitFor(async () => {
        if (refused) return true;
        const r = await runCli(home, ["worker", "list", "--json"], { env: OVERRIDE });
        return json<unknown[]>(r).length > 0;
      }, { timeoutMs: 60_000, what: "the worker to exit or register" });
      assert.ok(refused, "the worker started on a FUSE mount");
      await exited;
      worker = null;
      assert.equal(refused.code, 1, new TextDecoder().decode(refused.stderr));
      assert.equal(new TextDecoder().decode(refused.stdout), "");
      assert.equal(
        new TextDecoder().decode(refused.stderr),
        `queuectl: cannot open database ${home}/queue.db: it is on a fuse file system, where SQLite's WAL is unsafe (shared memory and locks are not reliable); use a local disk (or set QUEUECTL_ALLOW_NETWORK_FS=1 if every process using it runs on this one machine)\n`,
      );
      const show = async () =>
        json<{ state: string }>(await runCli(home, ["show", "j", "--json"], { env: OVERRIDE }));
      assert.equal((await show()).state, "pending");

      // With it: the worker starts and runs the job.
      worker = spawnCli(home, ["worker", "start"], { stderr: "piped", env: OVERRIDE });
      const log = collect(worker.stderr);
      await waitFor(async () => (await show()).state === "completed", {
        what: "the job run by the overridden worker",
      });
      const stop = await runCli(home, ["worker", "stop", "--wait"], { env: OVERRIDE });
      assert.equal(stop.code, 0, stop.stderr);
      assert.equal((await worker.status).code, 0, log.text);
      worker = null;
    } finally {
      await reap(worker);
      sh('fusermount -u "$2" 2>/dev/null || umount "$2" || umount -l "$2"');
      await cleanup(dir);
    }
  }),
});
