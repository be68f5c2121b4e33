/**
 * Helpers for end-to-end tests that drive real worker processes: start one and wait until it
 * is idle, read the times the store recorded, stop them all.
 *
 * @module
 */

import assert from "node:assert/strict";
import { DatabaseSync } from "node:sqlite";
import { cleanup, json, runCli, spawnCli, tempHome, waitFor } from "./helpers.ts";
import type { JobDetail } from "../src/job.ts";

/** `show ID --json` through the real CLI. */
export const show = async (home: string, id: string): Promise<JobDetail> =>
  json<JobDetail>(await runCli(home, ["show", id, "--json"]));

/** A stream's text as it arrives; `done` resolves once the stream ended. */
export function collect(stream: ReadableStream<Uint8Array>): { text: string; done: Promise<void> } {
  const sink = { text: "", done: Promise.resolve() };
  sink.done = (async () => {
    for await (const chunk of stream.pipeThrough(new TextDecoderStream())) sink.text += chunk;
  })();
  return sink;
}

/** `config set` for each key, through the real CLI. */
export async function configure(home: string, settings: Record<string, string>): Promise<void> {
  for (const [key, value] of Object.entries(settings)) {
    const r = await runCli(home, ["config", "set", key, value]);
    assert.equal(r.code, 0, r.stderr);
  }
}

/** Enqueues one job given as an object, through the real CLI. */
export async function enqueue(home: string, job: Record<string, unknown>): Promise<void> {
  const r = await runCli(home, ["enqueue", JSON.stringify(job)]);
  assert.equal(r.code, 0, r.stderr);
}

/** A worker process, its log (stderr) and its id in the registry. */
export interface RunningWorker {
  child: Deno.ChildProcess;
  log: { text: string; done: Promise<void> };
  id: string;
  /** Its exit code once it exited; null while it runs. */
  exited: () => number | null;
}

/**
 * A job that waits for a marker file, and `run`, which takes it to its end leaving the worker
 * with no timer pending. A worker records an attempt's process on a timer (STARTED_DELAY_MS
 * after the spawn, see pool.ts); a job that ended before that timer fired leaves it armed,
 * and the round it then starts could claim the next job without any wake-up. So `run` waits
 * until the process is recorded, only then creates the marker, and returns once the job
 * completed.
 */
export function gated(home: string, id: string): { command: string; run: () => Promise<void> } {
  const marker = `${home}/${id}.go`;
  return {
    command: `while [ ! -e '${marker}' ]; do sleep 0.01; done`,
    run: async () => {
      await waitFor(() => query(home, "SELECT pid FROM attempts WHERE job_id = ?", id)[0]?.pid, {
        what: `${id} started`,
      });
      Deno.writeTextFileSync(marker, "");
      await waitFor(() => jobState(home, id) === "completed", { what: `${id} completed` });
    },
  };
}

let warmups = 0;

/**
 * Starts `worker start` and returns once it has run a warm-up job to the end: from then on
 * it is idle in its sleep, so only a wake-up, its poll or its heartbeat timer can make it
 * look at the store again. The warm-up is enqueued before the worker starts, in a queue
 * only this worker serves (besides `default`, where tests put their jobs): its first round
 * claims it without any wake-up, and no other worker can take it.
 */
export async function startIdleWorker(home: string): Promise<RunningWorker> {
  const warm = `warm-up-${++warmups}`;
  const job = gated(home, warm);
  await enqueue(home, { id: warm, command: job.command, queue: warm });
  const child = spawnCli(home, ["worker", "start", "--queue", `${warm},default`], {
    stderr: "piped",
  });
  const log = collect(child.stderr);
  let code: number | null = null;
  child.status.then((s) => code = s.code);
  try {
    await job.run();
    const [{ worker_id }] = query(home, "SELECT worker_id FROM attempts WHERE job_id = ?", warm);
    return { child, log, id: String(worker_id), exited: () => code };
  } catch (e) {
    if (code === null) child.kill("SIGKILL");
    await child.status;
    await log.done;
    throw new Error(`${(e as Error).message}; the worker's log:\n${log.text}`);
  }
}

/**
 * Runs `fn` in a fresh data directory configured with `config`, with `count` idle workers
 * (see {@link startIdleWorker}); afterwards stops them all and removes the directory,
 * whatever happened.
 */
export async function withIdleWorkers(
  options: { count?: number; config?: Record<string, string> },
  fn: (home: string, workers: RunningWorker[]) => Promise<void>,
): Promise<void> {
  const home = await tempHome();
  const workers: RunningWorker[] = [];
  try {
    await configure(home, options.config ?? {});
    for (let i = 0; i < (options.count ?? 1); i++) workers.push(await startIdleWorker(home));
    await fn(home, workers);
  } finally {
    await stopAll(home, workers.map((w) => w.child));
    for (const w of workers) await w.log.done;
    await cleanup(home);
  }
}

/** Stops every worker through the CLI and waits for the processes to exit. */
export async function stopAll(home: string, workers: Deno.ChildProcess[]): Promise<void> {
  await runCli(home, ["worker", "stop", "--wait"]);
  for (const w of workers) await w.status;
}

/**
 * Rows from the store read directly (read-only), for the times it recorded in ms. Cheaper
 * than a `show` process per look, so waiting on it does not load the machine under test.
 */
export function query(home: string, sql: string, ...params: (string | number)[]) {
  const db = new DatabaseSync(`${home}/queue.db`, { readOnly: true });
  try {
    return db.prepare(sql).all(...params) as Record<string, number | string | null>[];
  } finally {
    db.close();
  }
}

/** A job's state, or undefined while it does not exist. */
export function jobState(home: string, id: string): string | undefined {
  return query(home, "SELECT state FROM jobs WHERE id = ?", id)[0]?.state as string | undefined;
}

/**
 * When a job was enqueued, when it was due, and when each of its attempts was claimed, in
 * ms, as the store recorded them.
 */
export function storeTimes(
  home: string,
  id: string,
): { created: number; runAt: number; starts: number[] } {
  const [job] = query(home, "SELECT created_at, run_at FROM jobs WHERE id = ?", id);
  const starts = query(
    home,
    "SELECT started_at FROM attempts WHERE job_id = ? ORDER BY attempt",
    id,
  ).map((r) => Number(r.started_at));
  return { created: Number(job?.created_at), runAt: Number(job?.run_at), starts };
}

/** The median of some numbers. */
export function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
}
