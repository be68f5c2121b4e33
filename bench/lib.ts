/**
 * Shared pieces of the benchmark suite: the figure record every scenario returns, running
 * the real `cli.ts` with the shipped permission flags, workers, /proc readers, statistics.
 *
 * Every scenario measures a candidate and its baseline in the same invocation, interleaved
 * (A, B, A, B …) so that load from other processes on this shared machine hits both alike.
 *
 * @module
 */

import { DatabaseSync } from "node:sqlite";

/** The repository root (ends with a slash). */
export const ROOT = new URL("..", import.meta.url).pathname;
/** The CLI entry. */
export const CLI = `${ROOT}cli.ts`;
/** The benchmark folder (ends with a slash). */
export const BENCH = new URL(".", import.meta.url).pathname;

/**
 * The permission flags of the `queuectl` task in deno.json, read from it, so the benchmark
 * runs the CLI exactly as users do (and as the e2e tests do).
 */
export const CLI_FLAGS: string[] = (() => {
  const config = JSON.parse(Deno.readTextFileSync(`${ROOT}deno.json`));
  const task: string = config.tasks.queuectl;
  return task.split(/\s+/).filter((w) =>
    w.startsWith("--allow-") || w.startsWith("--deny-") || w.startsWith("--v8-flags")
  );
})();

/** `deno` itself. */
export const DENO = Deno.execPath();

/**
 * The longest a `--quick` run may take before it stops itself and fails (a smoke run that
 * hangs must not hang CI); the smoke test waits on the harness, bounded by this.
 */
export const QUICK_LIMIT_MS = 300_000;

/** One measured figure, as printed and written to results/latest.json. */
export interface Figure {
  /** Stable key, e.g. `e2e.true.c4.queuectl`. */
  id: string;
  /** The scenario number and name, e.g. `1 end-to-end`. */
  scenario: string;
  label: string;
  /** The median of `runs`. */
  value: number;
  unit: string;
  better: "higher" | "lower";
  /** Every run's value, in the order measured. */
  runs: number[];
  baseline?: { label: string; value: number; runs?: number[] };
  /** value / baseline.value. */
  ratio?: number;
  /** The target for this figure, and whether this run met it. */
  target?: { text: string; met: boolean | null };
  note?: string;
}

/** What every scenario gets. */
export interface Context {
  quick: boolean;
  /** Repetitions for median figures (1 in quick mode). */
  runs: number;
  /** A scratch directory for this invocation, removed at the end. */
  tmp: string;
  log: (message: string) => void;
  /** Shared between scenarios: the history store (built once, by the first who needs it). */
  shared: Map<string, unknown>;
  /**
   * Records whether a peer (tsp, nq, plainjob) ran, or why it was skipped; the report lists
   * every peer with its status, so a skipped one never reads as a pass.
   */
  peer: (name: string, skipped: string | null) => void;
}

/** A figure from runs, with its baseline runs; computes median and ratio. */
export function figure(
  base: Omit<Figure, "value" | "ratio" | "baseline" | "target"> & {
    baseline?: { label: string; runs: number[] } | { label: string; value: number };
    target?: { text: string; test: (f: Figure) => boolean | null };
  },
): Figure {
  const { baseline: _b, target: _t, ...rest } = base;
  const f: Figure = { ...rest, value: median(base.runs) };
  if (base.baseline) {
    const value = "runs" in base.baseline ? median(base.baseline.runs) : base.baseline.value;
    f.baseline = { label: base.baseline.label, value };
    if ("runs" in base.baseline) f.baseline.runs = base.baseline.runs;
    f.ratio = value === 0 ? undefined : f.value / value;
  }
  if (base.target) f.target = { text: base.target.text, met: base.target.test(f) };
  return f;
}

// ---------------------------------------------------------------------------------------
// Statistics

export function median(xs: number[]): number {
  return percentile(xs, 50);
}

/** Linear interpolation between closest ranks; NaN for no data. */
export function percentile(xs: number[], p: number): number {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  const rank = (p / 100) * (s.length - 1);
  const lo = Math.floor(rank);
  const hi = Math.ceil(rank);
  return s[lo] + (s[hi] - s[lo]) * (rank - lo);
}

/** (max - min) / median, as a fraction: how noisy a set of runs was. */
export function spread(xs: number[]): number {
  if (xs.length < 2) return 0;
  return (Math.max(...xs) - Math.min(...xs)) / median(xs);
}

// ---------------------------------------------------------------------------------------
// Time and the machine

/** Wall-clock time in milliseconds with sub-millisecond resolution (for cross-process stamps). */
export function wallMs(): number {
  return performance.timeOrigin + performance.now();
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Polls `condition` every `everyMs` until true; throws after `timeoutMs`. */
export async function waitFor(
  what: string,
  condition: () => boolean | Promise<boolean>,
  options: { timeoutMs?: number; everyMs?: number } = {},
): Promise<void> {
  const deadline = performance.now() + (options.timeoutMs ?? 60_000);
  while (!(await condition())) {
    if (performance.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(options.everyMs ?? 5);
  }
}

/** The 1-minute load average: how busy the shared machine was. */
export function loadAverage(): number {
  return Number(Deno.readTextFileSync("/proc/loadavg").split(" ")[0]);
}

/** Resident set size of a process in MB (VmRSS, which counts every thread). */
export function rssMb(pid: number): number | null {
  try {
    const m = Deno.readTextFileSync(`/proc/${pid}/status`).match(/^VmRSS:\s+(\d+) kB/m);
    return m ? Number(m[1]) / 1024 : null;
  } catch {
    return null;
  }
}

/** User + system CPU time of a process (all its threads), in clock ticks (USER_HZ = 100). */
export function cpuTicks(pid: number): number {
  const stat = Deno.readTextFileSync(`/proc/${pid}/stat`);
  // Fields after the command name, which may hold spaces, start at field 3 (state).
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return Number(fields[11]) + Number(fields[12]); // utime (14), stime (15)
}

/** A file's size, 0 when missing. */
export function fileSize(path: string): number {
  try {
    return Deno.statSync(path).size;
  } catch {
    return 0;
  }
}

// ---------------------------------------------------------------------------------------
// Running queuectl

/** `deno run` arguments for the CLI against `home`. */
export function cliArgs(home: string, args: string[]): string[] {
  return ["run", ...CLI_FLAGS, CLI, "--home", home, ...args];
}

/** Runs the CLI to completion; throws on a non-zero exit. Returns stdout and wall time. */
export async function cli(
  home: string,
  args: string[],
  options: { stdout?: "piped" | "null" } = {},
): Promise<{ stdout: string; ms: number }> {
  const t0 = performance.now();
  const out = await new Deno.Command(DENO, {
    args: cliArgs(home, args),
    stdin: "null",
    stdout: options.stdout ?? "piped",
    stderr: "piped",
    env: { NO_COLOR: "1" },
  }).output();
  const ms = performance.now() - t0;
  if (!out.success) {
    throw new Error(
      `queuectl ${args.join(" ")} exited ${out.code}: ${new TextDecoder().decode(out.stderr)}`,
    );
  }
  return { stdout: options.stdout === "null" ? "" : new TextDecoder().decode(out.stdout), ms };
}

/** Processes started by the harness and not yet finished: killed if the harness is interrupted. */
const live = new Set<{ pid: number; group: boolean }>();

/** Kills every process the harness started that is still running (on SIGINT/SIGTERM). */
export function killLive(): void {
  for (const p of live) {
    try {
      Deno.kill(p.group ? -p.pid : p.pid, "SIGKILL");
    } catch { /* gone */ }
  }
  live.clear();
}

/** Tracks a long-running child until it exits. */
export function track(child: Deno.ChildProcess): void {
  const entry = { pid: child.pid, group: false };
  live.add(entry);
  child.status.finally(() => live.delete(entry));
}

/** A fresh data directory (with its database created) under the invocation's scratch dir. */
export async function freshHome(ctx: Context, name: string): Promise<string> {
  const home = await Deno.makeTempDir({ dir: ctx.tmp, prefix: `${name}-` });
  await cli(home, ["status"], { stdout: "null" }); // creates and migrates queue.db
  return home;
}

/** The database file of a data directory. */
export function dbPath(home: string): string {
  return `${home}/queue.db`;
}

/**
 * A read-only look into a queue's database from the harness, for polling progress without
 * spawning a process per poll. Uses only the jobs table's `state` column.
 */
export class DbProbe {
  #db: DatabaseSync;
  #active;
  #workers;

  constructor(home: string) {
    this.#db = new DatabaseSync(dbPath(home));
    this.#db.exec("PRAGMA busy_timeout = 5000");
    this.#active = this.#db.prepare(
      "SELECT count(*) AS n FROM jobs WHERE state IN ('pending', 'processing', 'failed')",
    );
    this.#workers = this.#db.prepare("SELECT count(*) AS n FROM workers");
  }

  /** Jobs not yet in a final state. */
  active(): number {
    return Number((this.#active.get() as { n: number }).n);
  }

  /** Registered workers. */
  workers(): number {
    return Number((this.#workers.get() as { n: number }).n);
  }

  /** Counts per state (a full scan: only for checks after a run). */
  states(): Record<string, number> {
    const rows = this.#db.prepare("SELECT state, count(*) AS n FROM jobs GROUP BY state")
      .all() as { state: string; n: number }[];
    return Object.fromEntries(rows.map((r) => [r.state, Number(r.n)]));
  }

  /** First attempt's claim time and last attempt's end, ms since the epoch. */
  attemptSpan(): { firstStart: number; lastEnd: number } {
    const r = this.#db.prepare("SELECT min(started_at) AS a, max(ended_at) AS b FROM attempts")
      .get() as { a: number; b: number };
    return { firstStart: Number(r.a), lastEnd: Number(r.b) };
  }

  /** Folds the WAL into the database file, so the file size is the data's size. */
  checkpoint(): void {
    this.#db.exec("PRAGMA wal_checkpoint(TRUNCATE)");
  }

  close(): void {
    this.#db.close();
  }
}

/** Writes `n` JSON Lines jobs running `command` and returns the file's path. */
export function jobsFile(dir: string, n: number, command: string): string {
  const path = `${dir}/jobs-${n}-${command.replace(/\W+/g, "_")}.jsonl`;
  const line = JSON.stringify({ command }) + "\n";
  Deno.writeTextFileSync(path, line.repeat(n));
  return path;
}

/** Whether a program is on PATH. */
export function have(program: string): boolean {
  try {
    return new Deno.Command("sh", {
      args: ["-c", `command -v ${program}`],
      stdout: "null",
      stderr: "null",
    }).outputSync().success;
  } catch {
    return false;
  }
}

/** Runs a program to completion, returning its stdout; throws on failure. */
export async function run(
  program: string,
  args: string[],
  options: { env?: Record<string, string>; cwd?: string } = {},
): Promise<string> {
  // Its own process group, so an interrupted benchmark can take down what it started
  // (xargs, tsp and nq clients) with one kill.
  const child = new Deno.Command(program, {
    args,
    env: options.env,
    cwd: options.cwd,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
    detached: true,
  }).spawn();
  const group = { pid: child.pid, group: true };
  live.add(group);
  const out = await child.output().finally(() => live.delete(group));
  const dec = new TextDecoder();
  if (!out.success) {
    throw new Error(`${program} ${args.join(" ")} exited ${out.code}: ${dec.decode(out.stderr)}`);
  }
  return dec.decode(out.stdout);
}

/** Formats a number for tables: 3 significant digits, thousands separated. */
export function fmt(x: number | undefined | null): string {
  if (x === undefined || x === null || Number.isNaN(x)) return "–";
  const abs = Math.abs(x);
  if (abs >= 1000) return Math.round(x).toLocaleString("en-US");
  if (abs >= 100) return x.toFixed(0);
  if (abs >= 10) return x.toFixed(1);
  if (abs >= 1) return x.toFixed(2);
  return x.toPrecision(2);
}

/** One finished job as data: the bytes of its `show --json` (the job and its attempts). */
export async function jobJsonBytes(home: string): Promise<number> {
  const list = await cli(home, ["list", "--state", "completed", "--limit", "1", "--json"]);
  const [first] = JSON.parse(list.stdout) as { id: string }[];
  if (!first) throw new Error(`no completed job in ${home}`);
  const shown = await cli(home, ["show", first.id, "--json"]);
  return new TextEncoder().encode(JSON.stringify(JSON.parse(shown.stdout))).length;
}
