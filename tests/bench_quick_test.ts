/**
 * CI's smoke run of the benchmark harness (issue 4): `bench/main.ts --quick` runs every
 * scenario once at a small size, writing its results to a temp dir (`--out`), never into
 * the repository. It checks that the harness works (exit code 0, every scenario measured
 * with its figures, every peer reported as ran or skipped), never how fast anything was.
 * In CI (`CI=true`, where `.ci/run` installs every peer) a skipped peer fails it: a run
 * without its baselines must not pass as a full one.
 */

import assert from "node:assert/strict";
import { QUICK_LIMIT_MS } from "../bench/lib.ts";
import { cleanup, IN_CI, ROOT, tempHome } from "./helpers.ts";

const SCENARIOS = ["e2e", "overhead", "bulk", "startup", "latency", "history", "memory"];
const PEERS = ["tsp", "nq", "plainjob"];

interface Report {
  mode: string;
  timings: { scenario: string }[];
  peers: Record<string, string>;
  figures: { id: string; value: number; baseline?: { value: number } }[];
  failures: string[];
}

/**
 * The harness stops itself and fails after QUICK_LIMIT_MS; this only catches a harness
 * whose own limit failed to fire, so it waits that limit plus the time its abort takes
 * (killing what it started, removing its scratch), and never cuts a run the harness
 * itself would still let finish.
 */
const BACKSTOP_MS = QUICK_LIMIT_MS + 60_000;

Deno.test("bench --quick runs every scenario and writes its results to --out", async () => {
  const dir = await tempHome("queuectl-bench-out-");
  try {
    await quickRun(dir);
  } finally {
    await cleanup(dir);
  }
});

async function quickRun(dir: string): Promise<void> {
  const repoResults = new URL("../bench/results/", import.meta.url);
  const before = listing(repoResults);
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", "bench/main.ts", "--quick", "--out", dir],
    cwd: ROOT,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
    env: { NO_COLOR: "1" },
    signal: AbortSignal.timeout(BACKSTOP_MS),
  }).output();
  const stderr = new TextDecoder().decode(out.stderr);
  assert.equal(out.code, 0, `bench --quick exited ${out.code}:\n${stderr.slice(-4000)}`);
  assert.deepEqual(listing(repoResults), before, "the run wrote into bench/results/");

  const report = JSON.parse(Deno.readTextFileSync(`${dir}/quick.json`)) as Report;
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
    if (IN_CI) assert.equal(status, "ran", `${peer} did not run in CI`);
    if (status !== "ran") continue;
    const id = peer === "plainjob" ? "overhead.full.k1" : `e2e.true.c8.vs-${peer}`;
    const f = report.figures.find((f) => f.id === id);
    assert.ok(f?.baseline, `${peer} ran but ${id} has no baseline from it`);
  }
  assert.ok(report.figures.some((f) => f.id === "startup.floor"), "no runtime floor");
  assert.ok(Deno.statSync(`${dir}/quick.md`).isFile, "quick.md written to --out");
}

/** A folder's files with their modification times, to see that nothing was written there. */
function listing(dir: URL): string[] {
  return [...Deno.readDirSync(dir)].map((e) =>
    `${e.name} ${Deno.statSync(new URL(e.name, dir)).mtime?.getTime()}`
  ).sort();
}
