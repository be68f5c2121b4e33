import assert from "node:assert/strict";
import { cleanup, json, runCli, spawnCli, tempHome, waitFor } from "./helpers.ts";
import { parseAge } from "../src/commands/prune.ts";
import type { Job, JobDetail } from "../src/job.ts";

Deno.test("parseAge: units and bare seconds", () => {
  assert.equal(parseAge("90"), 90_000);
  assert.equal(parseAge("30m"), 1_800_000);
  assert.equal(parseAge("1.5h"), 5_400_000);
  assert.equal(parseAge("7d"), 604_800_000);
  assert.throws(() => parseAge("soon"), /--older-than must be an age/);
});

Deno.test("e2e prune: finished jobs and their output files go; others stay", async () => {
  const home = await tempHome();
  try {
    await runCli(home, ["enqueue", '{"id":"done","command":"echo out"}']);
    await runCli(home, ["enqueue", '{"id":"later","command":"true","delay_s":3600}']);
    const worker = spawnCli(home, ["worker", "start"]);
    await waitFor(async () =>
      json<JobDetail>(await runCli(home, ["show", "done", "--json"])).state === "completed"
    );
    await runCli(home, ["worker", "stop", "--wait"]);
    await worker.status;
    const output = json<JobDetail>(await runCli(home, ["show", "done", "--json"]))
      .attempts_log[0].output_path!;
    assert.ok(Deno.statSync(output).isFile);

    const kept = await runCli(home, ["prune", "--older-than", "1h", "--json"]);
    assert.equal(kept.code, 0, kept.stderr);
    assert.deepEqual(json(kept), { pruned: 0, output_files_removed: 0 });

    const r = await runCli(home, ["prune", "--older-than", "0s", "--batch", "1", "--json"]);
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(json(r), { pruned: 1, output_files_removed: 1 });
    assert.throws(() => Deno.statSync(output));
    const left = json<Job[]>(await runCli(home, ["list", "--json"]));
    assert.deepEqual(left.map((j) => j.id), ["later"]);

    const bad = await runCli(home, ["prune", "--older-than", "0s", "--state", "pending"]);
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /pending jobs are not finished/);
  } finally {
    await cleanup(home);
  }
});
