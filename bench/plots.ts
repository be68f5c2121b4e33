/**
 * The plots of a run, as SVG files in `bench/results/`: e2e throughput against concurrency,
 * worker RSS across the long memory run, the latency distribution. Each is drawn from what
 * its scenario left in the run's shared map; a scenario that did not run draws nothing.
 *
 * @module
 */

import type { E2eOptions, E2eRuns } from "./e2e.ts";
import { median } from "./lib.ts";
import type { RssSample } from "./memory.ts";
import { lineChart, type Series } from "./plot.ts";

/** Writes every plot whose data is in `shared` to `dir`, file names starting with `prefix`. */
export function writePlots(dir: string, prefix: string, shared: Map<string, unknown>): void {
  const e2eData = shared.get("e2e") as
    | { results: E2eRuns; options: E2eOptions; candidates: string[]; peerSide: string }
    | undefined;
  if (e2eData) {
    const { results, options, candidates, peerSide } = e2eData;
    const svgs: string[] = [];
    for (const cmd of options.commands) {
      const curve = (
        c: string,
        rate: (r: { jobsPerS: number; submitPlusRunJobsPerS?: number }) => number,
      ) =>
        options.counts.map((count) =>
          [count, median((results.get(`${c}|${cmd}|${count}`) ?? []).map(rate))] as [number, number]
        );
      const series: Series[] = [];
      for (const c of candidates) {
        const peer = c === "tsp" || c === "nq";
        series.push({
          name: peer ? `${c}, submit+run (${options.peerJobs} jobs)` : c,
          points: curve(c, (x) => x.jobsPerS),
          dashed: c !== "queuectl",
        });
      }
      if (candidates.some((c) => c === "tsp" || c === "nq")) {
        series.push({
          name: `queuectl submit+run (${options.peerJobs} jobs)`,
          points: curve(peerSide, (x) => x.submitPlusRunJobsPerS!),
        });
      }
      svgs.push(lineChart({
        title: `'${cmd}' jobs: throughput against concurrency (${options.jobs} jobs)`,
        xLabel: "--count / concurrency (N)",
        yLabel: "jobs per second",
        xTicks: [0, 2, 4, 6, 8],
        series,
      }));
    }
    svgs.forEach((svg, i) =>
      Deno.writeTextFileSync(
        `${dir}/${prefix}e2e_${options.commands[i].split(" ")[0]}.svg`,
        svg,
      )
    );
  }
  const rss = shared.get("rss-series") as
    | { samples: RssSample[]; jobs: number; count: number }
    | undefined;
  if (rss) {
    Deno.writeTextFileSync(
      `${dir}/${prefix}memory_rss.svg`,
      lineChart({
        title: `worker --count ${rss.count} RSS across ${
          rss.jobs.toLocaleString("en-US")
        } true jobs`,
        xLabel: "jobs done",
        yLabel: "VmRSS (MB)",
        markers: false,
        series: [{ name: "worker RSS", points: rss.samples.map((s) => [s.done, s.rssMb]) }],
      }),
    );
  }
  const lat = shared.get("latency") as Record<string, number[]> | undefined;
  if (lat) {
    const cdf = (xs: number[]): [number, number][] =>
      [...xs].sort((a, b) => a - b).map((x, i) => [x, ((i + 1) / xs.length) * 100]);
    Deno.writeTextFileSync(
      `${dir}/${prefix}latency_cdf.svg`,
      lineChart({
        title: "enqueue → command start, idle worker (cumulative)",
        xLabel: "milliseconds",
        yLabel: "% of jobs started",
        markers: false,
        series: [
          { name: "from enqueue spawn", points: cdf(lat.fromSpawn) },
          { name: "from enqueue exit", points: cdf(lat.fromReturn) },
          { name: "from created_at", points: cdf(lat.fromCreated) },
          { name: "spawn floor", points: cdf(lat.floor), dashed: true },
        ],
      }),
    );
  }
}
