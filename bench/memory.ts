/**
 * Scenario 7: worker memory. VmRSS (all threads) of `worker start --count N` for N = 1, 4,
 * 8: idle (registered, a second later) and the peak while it runs a few hundred `true`
 * jobs; baseline, an idle `deno run` of a script that only sleeps, with the same flags.
 *
 * Then one `--count 4` worker across 20,000 `true` jobs (enqueued first): RSS sampled
 * every 100 ms (20 ms in quick mode) against jobs done; the figure is the RSS at the end
 * (the last sample before the queue is drained) against the RSS after warm-up (the first
 * sample with 10% of the jobs done): flat means at most 1.1×. Also bytes per job of that real
 * store (jobs and attempts written by a real worker), next to the synthetic one of scenario 6.
 *
 * @module
 */

import {
  cli,
  type Context,
  dbPath,
  type Figure,
  figure,
  fileSize,
  jobJsonBytes,
  jobsFile,
  median,
  rssMb,
  sleep,
  waitFor,
} from "./lib.ts";
import { drainTrackingRss, spawnIdleDeno, withWorker } from "./worker.ts";

const COUNTS = [1, 4, 8];

/** One RSS sample during the long run. */
export interface RssSample {
  done: number;
  rssMb: number;
  seconds: number;
}

export async function memory(ctx: Context): Promise<Figure[]> {
  const busyJobs = ctx.quick ? 20 : 400;
  const counts = ctx.quick ? [1, 4] : COUNTS;
  const idle = new Map<number, number[]>();
  const busy = new Map<number, number[]>();
  const floor: number[] = [];
  for (let r = 0; r < ctx.runs; r++) {
    floor.push(await floorRss());
    for (const count of counts) {
      const { idleMb, peakMb } = await workerRss(ctx, count, busyJobs);
      idle.set(count, [...(idle.get(count) ?? []), idleMb]);
      busy.set(count, [...(busy.get(count) ?? []), peakMb]);
      ctx.log(
        `memory run ${r + 1} --count ${count}: idle ${idleMb.toFixed(1)} MB, peak ${
          peakMb.toFixed(1)
        } MB`,
      );
    }
  }
  const figures: Figure[] = [];
  const baseline = { label: "idle deno run (sleeping script), same flags", runs: floor };
  for (const count of counts) {
    const limit = 40 + 10 * count;
    for (const [kind, runs] of [["idle", idle], ["busy", busy]] as const) {
      figures.push(figure({
        id: `memory.${kind}.c${count}`,
        scenario: "7 memory",
        label: kind === "idle"
          ? `worker --count ${count} RSS, idle`
          : `worker --count ${count} RSS, peak over ${busyJobs} true jobs`,
        unit: "MB",
        better: "lower",
        runs: runs.get(count)!,
        baseline,
        target: { text: `≤ 40 MB + 10 MB/slot = ${limit} MB`, test: (f) => f.value <= limit },
      }));
    }
  }

  // Across many jobs.
  const n = ctx.quick ? 200 : 20_000;
  const { samples, bytes, jsonBytes } = await longRun(ctx, n);
  const warm = samples.find((s) => s.done >= n / 10) ?? samples.at(-1)!;
  const end = samples.at(-1)!;
  const growth = (end.rssMb - warm.rssMb) / warm.rssMb * 100;
  ctx.shared.set("rss-series", { samples, jobs: n, count: 4 });
  ctx.log(`memory across ${n} jobs: ${warm.rssMb.toFixed(1)} → ${end.rssMb.toFixed(1)} MB`);
  figures.push(figure({
    id: "memory.growth",
    scenario: "7 memory",
    label: `worker --count 4 RSS at the end of ${
      n.toLocaleString("en-US")
    } true jobs (${end.done} done)`,
    unit: "MB",
    better: "lower",
    runs: [end.rssMb],
    baseline: { label: `its RSS after warm-up (${warm.done} done)`, value: warm.rssMb },
    target: { text: "flat: ≤ 1.1× after warm-up", test: (f) => f.ratio! <= 1.1 },
    note: `growth ${growth.toFixed(1)} %, peak ${
      Math.max(...samples.map((s) => s.rssMb)).toFixed(1)
    } MB, ${samples.length} samples; ${(n / end.seconds).toFixed(0)} jobs/s`,
  }));
  figures.push(figure({
    id: "memory.bytes_per_job_real",
    scenario: "7 memory",
    label: `database bytes per job after a real worker ran ${n.toLocaleString("en-US")} jobs`,
    unit: "B/job",
    better: "lower",
    runs: [bytes / n],
    baseline: { label: "the job as data: its `show --json` (job + attempt)", value: jsonBytes },
    target: { text: "report", test: () => null },
  }));
  return figures;
}

/** One `--count 4` worker across `n` true jobs: RSS samples, and the store's bytes. */
async function longRun(ctx: Context, n: number) {
  const before = async (home: string) => {
    await cli(home, ["enqueue", "--file", jobsFile(ctx.tmp, n, "true")], { stdout: "null" });
  };
  return await withWorker(ctx, { name: "memory-long", count: 4, before }, async (w) => {
    const samples: RssSample[] = [];
    while (true) {
      const active = w.probe.active();
      const rss = rssMb(w.worker.pid);
      if (active === 0 || rss === null) break;
      samples.push({
        done: n - active,
        rssMb: rss,
        seconds: (performance.now() - w.worker.spawnedAt) / 1000,
      });
      await sleep(ctx.quick ? 20 : 100);
    }
    const states = w.probe.states();
    if (states.completed !== n) throw new Error(`memory run: ${JSON.stringify(states)}`);
    if (samples.length === 0) throw new Error("memory run: no RSS sample taken");
    w.probe.checkpoint();
    const bytes = fileSize(dbPath(w.home)) + fileSize(`${dbPath(w.home)}-wal`);
    return { samples, bytes, jsonBytes: await jobJsonBytes(w.home) };
  });
}

/** RSS of an idle `deno run` with the CLI's flags, MB. */
async function floorRss(): Promise<number> {
  const child = spawnIdleDeno();
  await sleep(1000);
  const rss = rssMb(child.pid) ?? NaN;
  child.kill("SIGKILL");
  await child.status;
  return rss;
}

/** A worker's RSS when idle, and its peak while running `jobs` true jobs, MB. */
async function workerRss(ctx: Context, count: number, jobs: number) {
  return await withWorker(ctx, { name: `memory-c${count}`, count }, async (w) => {
    await waitFor("the worker to register", () => w.probe.workers() === 1, { timeoutMs: 30_000 });
    await sleep(1000);
    const idleSamples: number[] = [];
    for (let i = 0; i < 3; i++, await sleep(100)) idleSamples.push(rssMb(w.worker.pid) ?? NaN);
    const idleMb = median(idleSamples);
    await cli(w.home, ["enqueue", "--file", jobsFile(ctx.tmp, jobs, "true")], { stdout: "null" });
    const peakMb = await drainTrackingRss(w, { timeoutMs: 300_000, peakMb: idleMb });
    return { idleMb, peakMb };
  });
}
