/**
 * Scenario 1's runners outside Deno: `xargs -P N` (a spawn-limit baseline) and the CLI
 * peers task-spooler and nq, each running `n` copies of a shell command at concurrency N
 * and returning the wall time in seconds. Every runner checks that all jobs succeeded.
 *
 * - **xargs**: `xargs -d '\n' -n 1 -P N sh -c` over a file of commands.
 * - **tsp** (task-spooler): private TS_SOCKET/TMPDIR, `tsp -S N`, one `tsp sh -c cmd` per
 *   job from a shell loop, then a sentinel `tsp -N N true` (it needs every slot, so it runs
 *   after all earlier jobs) and `tsp -w` on it. Timed from the first submission: tsp's
 *   server accepts about 1000 queued jobs (each queued job is a client process holding a
 *   connection), so 2,000 jobs cannot be queued before starting. Output is kept in files,
 *   as queuectl keeps it.
 * - **nq**: nq has no slot limit: every `nq` job waits for all earlier jobs in its queue
 *   directory, so N slots are N directories (NQDIR) filled round-robin (a static split, not
 *   a shared pool: fair for jobs of equal length), then `nq -w` on each. Timed from the
 *   first submission, like tsp.
 *
 * @module
 */

import { type Context, have, run } from "./lib.ts";

/** What one run does: `n` copies of `cmd` at concurrency `count`. */
export interface Job {
  n: number;
  cmd: string;
  count: number;
}

/** The CLI peers, with the Debian package that has each. */
export const CLI_PEERS = { tsp: "task-spooler", nq: "nq" } as const;
export type CliPeer = keyof typeof CLI_PEERS;

/** The CLI peers installed here; records every peer as ran or skipped. */
export function availablePeers(ctx: Context): CliPeer[] {
  const found: CliPeer[] = [];
  for (const [peer, pkg] of Object.entries(CLI_PEERS) as [CliPeer, string][]) {
    if (have(peer)) {
      found.push(peer);
      ctx.peer(peer, null);
    } else {
      ctx.peer(peer, `not installed; apt-get install ${pkg}`);
    }
  }
  return found;
}

export async function xargs(ctx: Context, job: Job): Promise<number> {
  const file = `${ctx.tmp}/lines-${job.n}-${job.cmd.replace(/\W+/g, "_")}.txt`;
  Deno.writeTextFileSync(file, `${job.cmd}\n`.repeat(job.n));
  const t0 = performance.now();
  await run("sh", [
    "-c",
    `xargs -d '\\n' -n 1 -P ${job.count} sh -c < "$1" > /dev/null`,
    "sh",
    file,
  ]);
  return (performance.now() - t0) / 1000;
}

export async function tsp(ctx: Context, job: Job): Promise<number> {
  const dir = await Deno.makeTempDir({ dir: ctx.tmp, prefix: "tsp-" });
  const env = {
    TS_SOCKET: `${dir}/socket`,
    TMPDIR: dir,
    TS_MAXFINISHED: String(job.n + 10),
  };
  await run("tsp", ["-S", String(job.count)], { env }); // starts this run's private server
  try {
    const t0 = performance.now();
    await run("sh", [
      "-c",
      `i=0
      while [ $i -lt "$1" ]; do tsp sh -c "$2" > /dev/null || exit 1; i=$((i+1)); done
      tsp -w "$(tsp -N "$3" true)"`,
      "sh",
      String(job.n),
      job.cmd,
      String(job.count),
    ], { env });
    const seconds = (performance.now() - t0) / 1000;
    const list = await run("tsp", ["-l"], { env });
    const finished = list.split("\n").filter((l) => /^\d+\s+finished\s+\S+\s+0\s/.test(l)).length;
    if (finished !== job.n + 1) throw new Error(`tsp: ${finished} of ${job.n + 1} jobs succeeded`);
    return seconds;
  } finally {
    await run("tsp", ["-K"], { env }).catch(() => {});
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
}

export async function nq(ctx: Context, job: Job): Promise<number> {
  const dir = await Deno.makeTempDir({ dir: ctx.tmp, prefix: "nq-" });
  try {
    for (let l = 0; l < job.count; l++) Deno.mkdirSync(`${dir}/lane${l}`);
    const t0 = performance.now();
    await run("sh", [
      "-c",
      `i=0
      while [ $i -lt "$1" ]; do
        NQDIR="$3/lane$((i % $4))" nq -q sh -c "$2" > /dev/null || exit 1; i=$((i+1))
      done
      l=0; while [ $l -lt "$4" ]; do NQDIR="$3/lane$l" nq -w || exit 1; l=$((l+1)); done`,
      "sh",
      String(job.n),
      job.cmd,
      dir,
      String(job.count),
    ]);
    const seconds = (performance.now() - t0) / 1000;
    const succeeded = () => {
      let ok = 0;
      for (let l = 0; l < job.count; l++) {
        for (const entry of Deno.readDirSync(`${dir}/lane${l}`)) {
          const log = Deno.readTextFileSync(`${dir}/lane${l}/${entry.name}`);
          if (log.includes("exited with status 0")) ok++;
        }
      }
      return ok;
    };
    // nq writes a job's status line after the job's lock is released, which is what `nq -w`
    // waits for: the last line can land a moment after the timing ended. Give it a second.
    let ok = succeeded();
    for (let i = 0; i < 50 && ok !== job.n; i++) {
      await new Promise((r) => setTimeout(r, 20));
      ok = succeeded();
    }
    if (ok !== job.n) throw new Error(`nq: ${ok} of ${job.n} jobs succeeded`);
    return seconds;
  } finally {
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
}
