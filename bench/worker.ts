/**
 * queuectl workers under the benchmark: start one in the foreground of a child process,
 * run a body against it with its data directory and a probe (cleaned up, the worker's log
 * attached to any error), wait for a queue to drain while tracking the worker's peak RSS;
 * and an idle `deno run` process, the runtime's floor for memory and idle CPU.
 *
 * @module
 */

import {
  BENCH,
  CLI_FLAGS,
  cliArgs,
  type Context,
  DbProbe,
  DENO,
  freshHome,
  rssMb,
  track,
  waitFor,
} from "./lib.ts";

/** A running `queuectl worker start`; its stderr (the log) is kept for error messages. */
export interface WorkerProcess {
  child: Deno.ChildProcess;
  pid: number;
  /** When it was spawned (performance.now()). */
  spawnedAt: number;
  log: () => string;
  /** SIGTERM, then SIGKILL after `graceMs`; resolves when it exited. */
  stop: (graceMs?: number) => Promise<void>;
}

/** Starts `worker start --count N` in the foreground of a child process. */
export function startWorker(home: string, count: number): WorkerProcess {
  const spawnedAt = performance.now();
  const child = new Deno.Command(DENO, {
    args: cliArgs(home, ["worker", "start", "--count", String(count)]),
    stdin: "null",
    stdout: "null",
    stderr: "piped",
    env: { NO_COLOR: "1" },
  }).spawn();
  track(child);
  let log = "";
  (async () => {
    const decoder = new TextDecoder();
    for await (const chunk of child.stderr) log = (log + decoder.decode(chunk)).slice(-8192);
  })().catch(() => {});
  let exited = false;
  const status = child.status.then((s) => (exited = true, s));
  return {
    child,
    pid: child.pid,
    spawnedAt,
    log: () => log,
    stop: async (graceMs = 10_000) => {
      if (exited) return;
      try {
        child.kill("SIGTERM");
      } catch { /* gone */ }
      const timer = setTimeout(() => {
        try {
          child.kill("SIGKILL");
        } catch { /* gone */ }
      }, graceMs);
      await status;
      clearTimeout(timer);
    },
  };
}

/** What {@link withWorker} hands its body. */
export interface WorkerRun {
  home: string;
  worker: WorkerProcess;
  probe: DbProbe;
}

/**
 * Runs `body` against a fresh data directory (prepared by `before`, e.g. jobs enqueued
 * before the worker starts) and a `worker start --count N` on it; then stops the worker
 * and removes the directory. An error carries the worker's log.
 */
export async function withWorker<T>(
  ctx: Context,
  options: { name: string; count: number; before?: (home: string) => Promise<void> },
  body: (run: WorkerRun) => Promise<T>,
): Promise<T> {
  const home = await freshHome(ctx, options.name);
  await options.before?.(home);
  const probe = new DbProbe(home);
  const worker = startWorker(home, options.count);
  try {
    return await body({ home, worker, probe });
  } catch (e) {
    throw new Error(`${(e as Error).message}\nworker log:\n${worker.log()}`);
  } finally {
    await worker.stop();
    probe.close();
    await Deno.remove(home, { recursive: true }).catch(() => {});
  }
}

/** Waits until no job is active (polling every 5 ms); returns the worker's peak RSS, MB. */
export async function drainTrackingRss(
  run: WorkerRun,
  options: { timeoutMs: number; peakMb?: number },
): Promise<number> {
  let peak = options.peakMb ?? 0;
  await waitFor("the queue to drain", () => {
    const rss = rssMb(run.worker.pid);
    if (rss !== null && rss > peak) peak = rss;
    return run.probe.active() === 0;
  }, { timeoutMs: options.timeoutMs, everyMs: 5 });
  return peak;
}

/** An idle `deno run` with the CLI's flags (a script that only sleeps); kill it when done. */
export function spawnIdleDeno(): Deno.ChildProcess {
  const child = new Deno.Command(DENO, {
    args: ["run", ...CLI_FLAGS, `${BENCH}fixtures/idle.ts`],
    stdin: "null",
    stdout: "null",
    stderr: "null",
  }).spawn();
  track(child);
  return child;
}
