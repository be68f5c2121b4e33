/**
 * Scenario 1: end-to-end shell jobs. The same commands (`true`, `echo hello`) run by
 * queuectl at `--count` 1, 4, 8 and by the baselines and peers at the same concurrency:
 *
 * - **queuectl**: jobs enqueued in bulk first (not timed), then one `worker start --count N`;
 *   timed from spawning the worker until no job is left active (the database is polled
 *   every 5 ms). Also "submit+run": the bulk `enqueue` wall time added, for comparing with
 *   tsp and nq, whose submissions cannot be separated from their runs.
 * - **spawn limit**: a Deno loop with N lanes, each `Deno.Command("sh", ["-c", cmd])` and
 *   awaiting it (output to /dev/null); and `xargs -P N sh -c` (see e2e_peers.ts). Raw:
 *   `Deno.Command(cmd)` without sh (diagnostic).
 * - **spawn like queuectl** (diagnostic): setsid(1) + `sh -c`, output piped into a file per
 *   job, the way queuectl's executor spawns; separates the spawn recipe from the queue.
 * - **tsp** and **nq** (see e2e_peers.ts), when installed; skipped (and reported so) when not.
 *
 * tsp and nq fork a process per submission and are slow on this machine (about 40–120 ms per
 * `nq` under load), so in the full run they get `peerJobs` jobs (500), and queuectl runs the
 * same 500 jobs once more for the comparison with them: a rate over 2,000 jobs would spread
 * the worker's start-up over four times as many jobs.
 *
 * @module
 */

import { availablePeers, type CliPeer, nq, tsp, xargs } from "./e2e_peers.ts";
import { cli, type Context, type Figure, figure, jobsFile, median } from "./lib.ts";
import { drainTrackingRss, withWorker } from "./worker.ts";

const COMMANDS = ["true", "echo hello"] as const;
const COUNTS = [1, 4, 8];

type Candidate =
  | "queuectl"
  | "queuectl-peer"
  | "spawn-sh"
  | "spawn-raw"
  | "spawn-like-queuectl"
  | "xargs"
  | CliPeer;

const LABELS: Record<Candidate, string> = {
  "queuectl": "queuectl worker",
  "queuectl-peer": "queuectl worker, the peers' job count",
  "spawn-sh": 'spawn limit: Deno.Command("sh", ["-c", cmd])',
  "spawn-raw": "Deno.Command(cmd) without sh",
  "spawn-like-queuectl": "spawn like queuectl: setsid sh -c, output piped to a file",
  "xargs": "spawn limit: xargs -P N sh -c",
  "tsp": "task-spooler (tsp -S N), submit+run",
  "nq": "nq (N queue dirs), submit+run",
};

/** One run's result: jobs per second, and extra detail. */
interface RunResult {
  jobsPerS: number;
  /** queuectl only. */
  submitPlusRunJobsPerS?: number;
  peakRssMb?: number;
  /** queuectl only: worker spawn → first attempt started, ms. */
  startupMs?: number;
  /** queuectl only: first attempt start → last attempt end, jobs/s. */
  warmJobsPerS?: number;
}

export interface E2eOptions {
  jobs: number;
  peerJobs: number;
  counts: number[];
  commands: readonly string[];
}

/** Per-candidate, per-command, per-count runs; exported for the plot. */
export type E2eRuns = Map<string, RunResult[]>;

export async function e2e(ctx: Context): Promise<Figure[]> {
  const options: E2eOptions = ctx.quick
    ? { jobs: 30, peerJobs: 30, counts: COUNTS, commands: ["true"] }
    : { jobs: 2000, peerJobs: 500, counts: COUNTS, commands: COMMANDS };
  const peers = availablePeers(ctx);
  // queuectl's side of the comparison with the peers: its own run when the job counts agree.
  const peerSide: Candidate = options.peerJobs === options.jobs ? "queuectl" : "queuectl-peer";
  const candidates: Candidate[] = [
    "queuectl",
    "spawn-sh",
    "xargs",
    "spawn-raw",
    "spawn-like-queuectl",
    ...peers,
  ];
  if (peers.length && peerSide !== "queuectl") candidates.push(peerSide);
  const peerJob = (c: Candidate) => c === "queuectl-peer" || c === "tsp" || c === "nq";

  const results: E2eRuns = new Map();
  const key = (c: Candidate, cmd: string, count: number) => `${c}|${cmd}|${count}`;
  for (let r = 0; r < ctx.runs; r++) {
    for (const count of options.counts) {
      for (const cmd of options.commands) {
        // Rotate the order each run, so no candidate always follows the same neighbour.
        const order = candidates.map((_, i) => candidates[(i + r) % candidates.length]);
        for (const c of order) {
          const n = peerJob(c) ? options.peerJobs : options.jobs;
          const result = await runCandidate(ctx, c, { n, cmd, count });
          ctx.log(
            `e2e run ${r + 1}/${ctx.runs} ${c} --count ${count} '${cmd}' ${n} jobs: ${
              result.jobsPerS.toFixed(0)
            } jobs/s`,
          );
          const k = key(c, cmd, count);
          results.set(k, [...(results.get(k) ?? []), result]);
        }
      }
    }
  }
  const plotted = candidates.filter((c) => c !== "queuectl-peer");
  ctx.shared.set("e2e", { results, options, candidates: plotted, peerSide });

  const figures: Figure[] = [];
  const rates = (c: Candidate, cmd: string, count: number) =>
    (results.get(key(c, cmd, count)) ?? []).map((x) => x.jobsPerS);
  for (const cmd of options.commands) {
    for (const count of options.counts) {
      const id = `e2e.${cmd.split(" ")[0]}.c${count}`;
      const what = `'${cmd}', --count ${count}`;
      const limit = { label: `${LABELS["spawn-sh"]}, same N`, runs: rates("spawn-sh", cmd, count) };
      const q = results.get(key("queuectl", cmd, count)) ?? [];
      const queuectl = {
        scenario: "1 end-to-end",
        label: `queuectl ${what}, ${options.jobs} jobs, from worker start`,
        unit: "jobs/s",
        better: "higher" as const,
        runs: rates("queuectl", cmd, count),
      };
      figures.push(figure({
        ...queuectl,
        id: `${id}.queuectl`,
        baseline: limit,
        target: { text: "≥ 0.9× spawn limit", test: (f) => f.ratio! >= 0.9 },
        note: `worker start-up (spawn → first job) ${
          median(q.map((x) => x.startupMs!)).toFixed(0)
        } ms; warm rate ${median(q.map((x) => x.warmJobsPerS!)).toFixed(0)} jobs/s; peak RSS ${
          median(q.map((x) => x.peakRssMb!)).toFixed(1)
        } MB`,
      }));
      figures.push(figure({
        ...queuectl,
        id: `${id}.vs-xargs`,
        label: `queuectl ${what}, ${options.jobs} jobs, from worker start, vs xargs -P N`,
        baseline: { label: `${LABELS.xargs}, same N`, runs: rates("xargs", cmd, count) },
        target: { text: "≥ 0.9× xargs -P", test: (f) => f.ratio! >= 0.9 },
      }));
      for (const c of ["spawn-raw", "spawn-like-queuectl"] as const) {
        figures.push(figure({
          id: `${id}.${c}`,
          scenario: "1 end-to-end",
          label: `${LABELS[c]}, ${what}`,
          unit: "jobs/s",
          better: "higher",
          runs: rates(c, cmd, count),
          baseline: limit,
        }));
      }
      const submitRun = (results.get(key(peerSide, cmd, count)) ?? [])
        .map((x) => x.submitPlusRunJobsPerS!);
      for (const c of peers) {
        figures.push(figure({
          id: `${id}.vs-${c}`,
          scenario: "1 end-to-end",
          label: `queuectl submit+run ${what} vs ${c} (${options.peerJobs} jobs each)`,
          unit: "jobs/s",
          better: "higher",
          runs: submitRun,
          baseline: { label: LABELS[c], runs: rates(c, cmd, count) },
          target: { text: `faster than ${c}`, test: (f) => f.ratio! > 1 },
          note:
            `queuectl submits with one bulk \`enqueue --file\`; ${c} with one ${c} process per ` +
            "job (it has no bulk form), its runs overlapping the submissions",
        }));
      }
    }
  }
  return figures;
}

async function runCandidate(
  ctx: Context,
  c: Candidate,
  job: { n: number; cmd: string; count: number },
): Promise<RunResult> {
  switch (c) {
    case "queuectl":
    case "queuectl-peer":
      return await runQueuectl(ctx, job);
    case "spawn-sh":
      return rate(job.n, await lanes(job, () => shCommand(job.cmd)));
    case "spawn-raw": {
      const [program, ...args] = job.cmd.split(" ");
      return rate(
        job.n,
        await lanes(
          job,
          () => new Deno.Command(program, { args, stdin: "null", stdout: "null", stderr: "null" }),
        ),
      );
    }
    case "spawn-like-queuectl":
      return rate(job.n, await spawnLikeQueuectl(ctx, job));
    case "xargs":
      return rate(job.n, await xargs(ctx, job));
    case "tsp":
      return rate(job.n, await tsp(ctx, job));
    case "nq":
      return rate(job.n, await nq(ctx, job));
  }
}

function rate(n: number, seconds: number): RunResult {
  return { jobsPerS: n / seconds };
}

function shCommand(cmd: string): Deno.Command {
  return new Deno.Command("sh", {
    args: ["-c", cmd],
    stdin: "null",
    stdout: "null",
    stderr: "null",
  });
}

/** Runs `n` commands from `count` concurrent lanes; returns seconds. */
async function lanes(
  job: { n: number; count: number },
  make: (i: number) => Deno.Command,
): Promise<number> {
  let next = 0;
  const t0 = performance.now();
  await Promise.all(Array.from({ length: job.count }, async () => {
    while (next < job.n) {
      const i = next++;
      const status = await make(i).spawn().status;
      if (!status.success) throw new Error(`job ${i} exited ${status.code}`);
    }
  }));
  return (performance.now() - t0) / 1000;
}

async function spawnLikeQueuectl(
  ctx: Context,
  job: { n: number; cmd: string; count: number },
): Promise<number> {
  const dir = await Deno.makeTempDir({ dir: ctx.tmp, prefix: "spawn-" });
  let next = 0;
  const t0 = performance.now();
  await Promise.all(Array.from({ length: job.count }, async () => {
    while (next < job.n) {
      const i = next++;
      const file = Deno.openSync(`${dir}/${i}.log`, {
        write: true,
        createNew: true,
        mode: 0o600,
      });
      const child = new Deno.Command("setsid", {
        args: ["sh", "-c", job.cmd],
        stdin: "null",
        stdout: "piped",
        stderr: "piped",
      }).spawn();
      const drain = async (stream: ReadableStream<Uint8Array>) => {
        for await (const chunk of stream) file.writeSync(chunk);
      };
      const [status] = await Promise.all([
        child.status,
        drain(child.stdout),
        drain(child.stderr),
      ]);
      file.close();
      if (!status.success) throw new Error(`job ${i} exited ${status.code}`);
    }
  }));
  const seconds = (performance.now() - t0) / 1000;
  await Deno.remove(dir, { recursive: true });
  return seconds;
}

async function runQueuectl(
  ctx: Context,
  job: { n: number; cmd: string; count: number },
): Promise<RunResult> {
  let submitMs = 0;
  const before = async (home: string) => {
    const file = jobsFile(ctx.tmp, job.n, job.cmd);
    submitMs = (await cli(home, ["enqueue", "--file", file], { stdout: "null" })).ms;
  };
  return await withWorker(
    ctx,
    { name: `e2e-c${job.count}`, count: job.count, before },
    async (w) => {
      const peak = await drainTrackingRss(w, { timeoutMs: 600_000 });
      const runS = (performance.now() - w.worker.spawnedAt) / 1000;
      const states = w.probe.states();
      if (states.completed !== job.n) {
        throw new Error(`expected ${job.n} completed jobs, got ${JSON.stringify(states)}`);
      }
      const span = w.probe.attemptSpan();
      return {
        jobsPerS: job.n / runS,
        submitPlusRunJobsPerS: job.n / (runS + submitMs / 1000),
        peakRssMb: peak,
        startupMs: span.firstStart - (performance.timeOrigin + w.worker.spawnedAt),
        warmJobsPerS: job.n / ((span.lastEnd - span.firstStart) / 1000),
      };
    },
  );
}
