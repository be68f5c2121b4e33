/**
 * CI's smoke run of the benchmark harness (issue 4): `bench/main.ts --quick` runs every
 * scenario once at a small size. It checks that the harness works (exit code 0, every
 * scenario measured with its figures, every peer reported as ran or skipped), never how
 * fast anything was.
 */

import assert from "node:assert/strict";
import { ROOT } from "./helpers.ts";

const SCENARIOS = ["e2e", "overhead", "bulk", "startup", "latency", "history", "memory"];
const PEERS = ["tsp", "nq", "plainjob"];

interface Report {
  mode: string;
  timings: { scenario: string }[];
  peers: Record<string, string>;
  figures: { id: string; value: number; baseline?: { value: number } }[];
  failures: string[];
}

Deno.test("bench --quick runs every scenario and writes bench/results/quick.json", async () => {
  const results = new URL("../bench/results/quick.json", import.meta.url);
  await Deno.remove(results).catch(() => {});
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", "bench/main.ts", "--quick"],
    cwd: ROOT,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
    env: { NO_COLOR: "1" },
    signal: AbortSignal.timeout(240_000),
  }).output();
  const stderr = new TextDecoder().decode(out.stderr);
  assert.equal(out.code, 0, `bench --quick exited ${out.code}:\n${stderr.slice(-4000)}`);

  const report = JSON.parse(Deno.readTextFileSync(results)) as Report;
  assert.equal(report.mode, "quick");
  assert.deepEqual(report.failures, []);
  assert.deepEqual(report.timings.map((t) => t.scenario), SCENARIOS);
  for (const scenario of SCENARIOS) {
    const figures = report.figures.filter((f) => f.id.startsWith(`${scenario}.`));
    assert.ok(figures.length > 0, `no figures for ${scenario}`);
    for (const f of figures) {
      assert.ok(Number.isFinite(f.value), `${f.id} has no value`);
      if (f.baseline) assert.ok(Number.isFinite(f.baseline.value), `${f.id} has no baseline`);
    }
  }
  // The spawn limits beside queuectl at every concurrency.
  for (const count of [1, 4, 8]) {
    for (const kind of ["queuectl", "vs-xargs"]) {
      const id = `e2e.true.c${count}.${kind}`;
      assert.ok(report.figures.some((f) => f.id === id), `no figure ${id}`);
    }
  }
  // Each peer ran or was skipped with a reason; one that ran has its figures.
  for (const peer of PEERS) {
    const status = report.peers[peer];
    assert.ok(status === "ran" || /^skipped: .+/.test(status), `${peer}: ${status}`);
    if (status !== "ran") continue;
    const id = peer === "plainjob" ? "overhead.full.k1" : `e2e.true.c8.vs-${peer}`;
    const f = report.figures.find((f) => f.id === id);
    assert.ok(f?.baseline, `${peer} ran but ${id} has no baseline from it`);
  }
  assert.ok(report.figures.some((f) => f.id === "startup.floor"), "no runtime floor");
});
