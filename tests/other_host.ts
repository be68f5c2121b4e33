/**
 * Test helpers for workers that are "another host" to this one: a worker started in its own
 * UTS namespace with another hostname has another host identity (hostname/pid-ns/boot-id,
 * see hostIdentity), so no worker here may signal its processes or trust its pid, exactly
 * as for a worker on another machine or in another container. Only its lease tells.
 *
 * @module
 */

import { DatabaseSync } from "node:sqlite";
import { join } from "node:path";
import { CLI, CLI_FLAGS, waitFor } from "./helpers.ts";

/** Whether `unshare --uts` can give a process its own hostname here (it needs root). */
export const CAN_UNSHARE_UTS: boolean = (() => {
  try {
    const out = new Deno.Command("unshare", {
      args: ["--uts", "sh", "-c", "hostname queuectl-probe && hostname"],
      stdout: "piped",
      stderr: "null",
    }).outputSync();
    return out.success && new TextDecoder().decode(out.stdout).trim() === "queuectl-probe";
  } catch {
    return false;
  }
})();

/**
 * Starts `cli.ts` with `args` against `home` as a host named `hostname`. `unshare` and `sh`
 * exec the CLI, so the child's pid is the worker's: SIGKILL and SIGSTOP reach it directly.
 */
export function spawnCliElsewhere(
  home: string,
  hostname: string,
  args: string[],
  options: { stderr?: "piped" | "null" } = {},
): Deno.ChildProcess {
  return new Deno.Command("unshare", {
    args: [
      "--uts",
      "sh",
      "-c",
      'hostname "$1" && shift && exec "$@"',
      "sh",
      hostname,
      Deno.execPath(),
      "run",
      ...CLI_FLAGS,
      CLI,
      "--home",
      home,
      ...args,
    ],
    stdin: "null",
    stdout: "null",
    stderr: options.stderr ?? "null",
    env: { NO_COLOR: "1" },
  }).spawn();
}

/** Accumulates a stream's text as it arrives. */
export function collect(stream: ReadableStream<Uint8Array>): { text: string } {
  const sink = { text: "" };
  (async () => {
    for await (const chunk of stream.pipeThrough(new TextDecoderStream())) sink.text += chunk;
  })().catch(() => {});
  return sink;
}

/** A job's lease as the store holds it, read through a connection of the test's own. */
export interface LeaseRow {
  state: string;
  worker_id: string | null;
  lease_expires_at: number | null;
}

/** Reads job `id`'s lease from `home`'s database. */
export function leaseOf(home: string, id: string): LeaseRow {
  const db = new DatabaseSync(join(home, "queue.db"));
  try {
    db.exec("PRAGMA busy_timeout = 5000");
    const row = db.prepare("SELECT state, worker_id, lease_expires_at FROM jobs WHERE id = ?")
      .get(id) as LeaseRow | undefined;
    if (!row) throw new Error(`no job ${id}`);
    return {
      ...row,
      lease_expires_at: row.lease_expires_at === null ? null : Number(row.lease_expires_at),
    };
  } finally {
    db.close();
  }
}

/**
 * SIGSTOPs `worker` at a moment it holds no write transaction (a frozen holder of the write
 * lock would stall every other worker instead of only itself): stop, try the lock, and if
 * it was held, let the worker go on a moment and try again.
 */
export async function freezeOutsideWrite(worker: Deno.ChildProcess, home: string): Promise<void> {
  await waitFor(async () => {
    worker.kill("SIGSTOP");
    const db = new DatabaseSync(join(home, "queue.db"));
    try {
      db.exec("PRAGMA busy_timeout = 300");
      db.exec("BEGIN IMMEDIATE");
      db.exec("ROLLBACK");
      return true;
    } catch (e) {
      if (!/locked|busy/i.test((e as Error).message)) throw e;
    } finally {
      db.close();
    }
    worker.kill("SIGCONT");
    await new Promise((r) => setTimeout(r, 50));
    return false;
  }, { what: "the worker frozen outside a write transaction" });
}

/** Live (non-zombie) pids whose environment marks them as `attempt` of job `jobId`. */
export function attemptProcesses(jobId: string, attempt: number): number[] {
  const found: number[] = [];
  const dec = new TextDecoder();
  for (const entry of Deno.readDirSync("/proc")) {
    if (!/^\d+$/.test(entry.name)) continue;
    try {
      const env = dec.decode(Deno.readFileSync(`/proc/${entry.name}/environ`)).split("\0");
      if (!env.includes(`QUEUECTL_JOB_ID=${jobId}`)) continue;
      if (!env.includes(`QUEUECTL_ATTEMPT=${attempt}`)) continue;
      const stat = Deno.readTextFileSync(`/proc/${entry.name}/stat`);
      const state = stat.slice(stat.lastIndexOf(")") + 2)[0];
      if (state !== "Z" && state !== "X") found.push(Number(entry.name));
    } catch { /* it ended while we looked */ }
  }
  return found;
}

/** SIGKILLs whatever is left of attempt `attempt` of `jobId` (a test's cleanup). */
export function killAttempt(jobId: string, attempt: number): void {
  for (const pid of attemptProcesses(jobId, attempt)) {
    try {
      Deno.kill(pid, "SIGKILL");
    } catch { /* gone */ }
  }
}

/** A job id unique to this run, so /proc scans see only this run's processes. */
export function uniqueId(prefix: string): string {
  return `${prefix}-${crypto.randomUUID().slice(0, 8)}`;
}

/** SIGKILLs `child` unless it already ended, and reaps it (a test's cleanup). */
export async function reap(child: Deno.ChildProcess | null): Promise<void> {
  if (!child) return;
  try {
    child.kill("SIGKILL");
  } catch { /* it already ended */ }
  await child.status;
}
