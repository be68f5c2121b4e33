/**
 * Scenario 5: latency from `queuectl enqueue` (another process) to the job's command
 * starting, with an idle `worker start --count 1`. Each job's command is
 * `date +%s%N > FILE`; the harness notes the wall-clock time just before spawning the
 * enqueue process and when that process has exited, then waits for FILE. Jobs are spaced
 * 100–200 ms apart so the worker is idle (asleep, waiting for a wake-up) each time.
 *
 * Three readings per job: from spawning `enqueue` (includes Deno's start-up, see scenario
 * 4), from `enqueue` having returned (can be negative: the job may start before the
 * process has exited), and from the job's `created_at` (the enqueue's own clock, ms
 * resolution: wake-up + claim + spawn, without the CLI's start-up).
 *
 * Baseline: the spawn floor, `sh -c 'date +%s%N > FILE'` spawned straight from the harness,
 * interleaved with the jobs.
 *
 * Then the idle worker's CPU use over 10 s (utime + stime from /proc/PID/stat, all its
 * threads), next to an idle `deno run` process sampled over the same window.
 *
 * @module
 */

import { DatabaseSync } from "node:sqlite";
import {
  cli,
  type Context,
  cpuTicks,
  dbPath,
  type Figure,
  figure,
  percentile,
  sleep,
  waitFor,
  wallMs,
} from "./lib.ts";
import { spawnIdleDeno, withWorker, type WorkerRun } from "./worker.ts";

/** Milliseconds from each reading's start to the job's command starting, one per job. */
interface Samples {
  fromSpawn: number[];
  fromReturn: number[];
  fromCreated: number[];
  /** created_at → the attempt's started_at (the worker's claim round). */
  toClaim: number[];
  /** The attempt's started_at → the command's first instruction. */
  claimToStart: number[];
  /** The spawn floor. */
  floor: number[];
}

export async function latency(ctx: Context): Promise<Figure[]> {
  const n = ctx.quick ? 10 : 100;
  const idleSeconds = ctx.quick ? 2 : 10;
  const { samples: x, idle } = await withWorker(ctx, { name: "latency", count: 1 }, async (w) => {
    await waitFor("the worker to register", () => w.probe.workers() === 1, { timeoutMs: 30_000 });
    await sleep(1000);
    const samples = await measure(ctx, w, n);
    ctx.log(
      `latency: p50 from spawn ${percentile(samples.fromSpawn, 50).toFixed(1)} ms, from return ${
        percentile(samples.fromReturn, 50).toFixed(1)
      } ms, from created_at ${percentile(samples.fromCreated, 50).toFixed(1)} ms`,
    );
    const idle = await idleCpu(w, idleSeconds);
    ctx.log(`idle CPU: worker ${idle.worker.toFixed(2)} %, idle deno ${idle.floor.toFixed(2)} %`);
    return { samples, idle };
  });

  const figures: Figure[] = [];
  for (
    const [key, label, xs] of [
      ["from_spawn", "from spawning the enqueue process", x.fromSpawn],
      ["from_return", "from the enqueue process having exited", x.fromReturn],
      ["from_created", "from the job's created_at (inside enqueue)", x.fromCreated],
    ] as const
  ) {
    for (const [q, limit] of [[50, 25], [99, 100]] as const) {
      figures.push(figure({
        id: `latency.${key}.p${q}`,
        scenario: "5 latency",
        label: `enqueue → command start, ${label}, p${q} over ${n} jobs`,
        unit: "ms",
        better: "lower",
        runs: [percentile(xs, q)],
        baseline: {
          label: `spawn floor: sh -c 'date …' spawned directly, p${q}`,
          value: percentile(x.floor, q),
        },
        target: { text: `p${q} ≤ ${limit} ms`, test: (f) => f.value <= limit },
        note: key === "from_created" && q === 50
          ? `created_at → worker's claim round (attempt started_at) p50 ${
            percentile(x.toClaim, 50).toFixed(1)
          } ms, claim round → command start p50 ${percentile(x.claimToStart, 50).toFixed(1)} ms`
          : undefined,
      }));
    }
  }
  figures.push(figure({
    id: "latency.idle_cpu",
    scenario: "5 latency",
    label: `idle worker (--count 1) CPU over ${idleSeconds} s`,
    unit: "% CPU",
    better: "lower",
    runs: [idle.worker],
    baseline: { label: "an idle deno run process, same window", value: idle.floor },
    target: { text: "< 1 %", test: (f) => f.value < 1 },
  }));
  ctx.shared.set("latency", x);
  return figures;
}

/** `n` jobs enqueued one by one, 100–200 ms apart, each beside a direct spawn. */
async function measure(ctx: Context, w: WorkerRun, n: number): Promise<Samples> {
  const marks = await Deno.makeTempDir({ dir: ctx.tmp, prefix: "marks-" });
  const db = new DatabaseSync(dbPath(w.home));
  const x: Samples = {
    fromSpawn: [],
    fromReturn: [],
    fromCreated: [],
    toClaim: [],
    claimToStart: [],
    floor: [],
  };
  try {
    db.exec("PRAGMA busy_timeout = 5000");
    const createdAt = db.prepare(
      "SELECT j.created_at AS c, a.started_at AS s FROM jobs j JOIN attempts a ON a.job_id = j.id WHERE j.id = ?",
    );
    for (let i = 0; i < n; i++) {
      // The floor: the same command spawned straight from here.
      const direct = `${marks}/direct-${i}`;
      const d0 = wallMs();
      const child = new Deno.Command("sh", {
        args: ["-c", `date +%s%N > ${direct}`],
        stdin: "null",
        stdout: "null",
        stderr: "null",
      }).spawn();
      x.floor.push((await stamp(direct)) - d0);
      await child.status;

      const mark = `${marks}/job-${i}`;
      const t0 = wallMs();
      const out = await cli(w.home, [
        "enqueue",
        JSON.stringify({ command: `date +%s%N > ${mark}` }),
      ]);
      const returned = wallMs();
      const started = await stamp(mark);
      const row = createdAt.get(out.stdout.trim()) as { c: number; s: number };
      const created = Number(row.c);
      x.toClaim.push(Number(row.s) - created);
      x.claimToStart.push(started - Number(row.s));
      x.fromSpawn.push(started - t0);
      x.fromReturn.push(started - returned);
      x.fromCreated.push(started - created);
      await sleep(100 + Math.random() * 100);
    }
    return x;
  } finally {
    db.close();
  }
}

/** The idle worker's CPU use (% of a core), beside an idle deno process over the same window. */
async function idleCpu(w: WorkerRun, seconds: number) {
  const idle = spawnIdleDeno();
  try {
    await sleep(1000);
    const w0 = cpuTicks(w.worker.pid);
    const f0 = cpuTicks(idle.pid);
    const s0 = performance.now();
    await sleep(seconds * 1000);
    const s = (performance.now() - s0) / 1000;
    return {
      worker: (cpuTicks(w.worker.pid) - w0) / 100 / s * 100,
      floor: (cpuTicks(idle.pid) - f0) / 100 / s * 100,
    };
  } finally {
    idle.kill("SIGKILL");
    await idle.status;
  }
}

/** Waits for `date +%s%N` to have written `path`; returns that time in epoch ms. */
async function stamp(path: string): Promise<number> {
  let text = "";
  await waitFor(`${path} to be written`, () => {
    try {
      text = Deno.readTextFileSync(path);
    } catch {
      return false;
    }
    return /^\d+\n$/.test(text);
  }, { timeoutMs: 10_000, everyMs: 1 });
  return Number(BigInt(text.trim()) / 1000n) / 1000;
}
