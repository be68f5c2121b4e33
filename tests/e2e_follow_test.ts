/**
 * End-to-end: `logs --follow` against a job a real worker runs. The job prints a line and
 * then waits for a marker that the test creates only once the follower has shown that line:
 * the follower streams output while the attempt runs, not only after it ended.
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import { spawnCli, waitFor } from "./helpers.ts";
import { collect, enqueue, show, withIdleWorkers } from "./e2e_helpers.ts";

Deno.test("e2e follow: logs --follow streams a running job's output and exits 0 when it ends", () =>
  withIdleWorkers({}, async (home) => {
    const marker = join(home, "go-on");
    let follower: Deno.ChildProcess | null = null;
    try {
      await enqueue(home, {
        id: "chatty",
        command: `echo first; while [ ! -e '${marker}' ]; do sleep 0.02; done; echo second`,
      });
      follower = spawnCli(home, ["logs", "chatty", "--follow"], {
        stdout: "piped",
        stderr: "piped",
      });
      let status: Deno.CommandStatus | null = null;
      follower.status.then((s) => status = s);
      const out = collect(follower.stdout);
      const err = collect(follower.stderr);
      await waitFor(() => out.text === "first\n", { what: "the follower to show the first line" });
      assert.equal((await show(home, "chatty")).state, "processing", "the job is still running");
      Deno.writeTextFileSync(marker, "");
      await waitFor(() => status, { what: "the follower to exit once the attempt ended" });
      await Promise.all([out.done, err.done]);
      assert.equal(status!.code, 0, err.text);
      assert.equal(out.text, "first\nsecond\n");
      // A follower that came before the attempt's output was recorded says it waits first.
      assert.match(
        err.text,
        /^(waiting for job "chatty" to start\n)?\(attempt 1 ended: succeeded, exit 0\)\n$/,
      );
      assert.equal((await show(home, "chatty")).state, "completed");
    } finally {
      if (follower) {
        try {
          follower.kill("SIGKILL");
        } catch { /* already exited */ }
        await follower.status;
      }
      Deno.writeTextFileSync(marker, ""); // lets the job end if the test failed before
    }
  }));
