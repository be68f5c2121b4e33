/**
 * `worker start` in the foreground: logging to stderr, signals wired to the pool.
 *
 * The first SIGINT or SIGTERM stops claiming and lets running jobs finish (within
 * shutdown-grace); a second one kills them, releases them back to pending and exits.
 *
 * @module
 */

import { openQueue } from "../queue.ts";
import { assertLocalFileSystem } from "../store/fs_check.ts";
import { Pool, type PoolLog } from "./pool.ts";

/** Options for {@link runForeground}. */
export interface ForegroundOptions {
  home?: string;
  db?: string;
  count: number;
  queues: string[] | null;
  id?: string;
}

const SIGNALS = ["SIGINT", "SIGTERM"] as const;

/** Runs a pool until it is stopped; returns the exit code. */
export async function runForeground(options: ForegroundOptions): Promise<number> {
  const log = await stderrLog();
  const queue = await openQueue({ home: options.home, db: options.db });
  // A long-lived worker checks the file system at start, whoever created the database.
  if (queue.store.kind === "sqlite") {
    try {
      assertLocalFileSystem(queue.store.location);
    } catch (e) {
      queue.close();
      throw e;
    }
  }
  const pool = new Pool(queue.store, {
    home: queue.home,
    slots: options.count,
    queues: options.queues,
    workerId: options.id,
    log,
  });
  let signals = 0;
  const onSignal = (name: string) => () => {
    signals++;
    if (signals === 1) {
      log("info", `${name}: finishing running jobs (signal again to kill them)`);
      pool.stop();
    } else {
      log("warn", `${name} again: killing running jobs and releasing them`);
      pool.kill();
    }
  };
  const handlers = SIGNALS.map((s) => [s, onSignal(s)] as const);
  for (const [s, h] of handlers) Deno.addSignalListener(s, h);
  try {
    await pool.run();
  } finally {
    for (const [s, h] of handlers) Deno.removeSignalListener(s, h);
    queue.close();
  }
  return 0;
}

/** Worker logs through LogTape to stderr, one line a record (loaded only here). */
async function stderrLog(): Promise<PoolLog> {
  const { configure, getLogger, getTextFormatter } = await import("@logtape/logtape");
  const format = getTextFormatter({ timestamp: "rfc3339" });
  const encoder = new TextEncoder();
  await configure({
    sinks: {
      stderr: (record) => {
        const bytes = encoder.encode(format(record));
        for (let n = 0; n < bytes.length;) n += Deno.stderr.writeSync(bytes.subarray(n));
      },
    },
    loggers: [
      { category: ["queuectl"], lowestLevel: "info", sinks: ["stderr"] },
      { category: ["logtape", "meta"], lowestLevel: "warning", sinks: ["stderr"] },
    ],
  });
  const logger = getLogger(["queuectl", "worker"]);
  return (level, message) => {
    if (level === "error") logger.error(message);
    else if (level === "warn") logger.warn(message);
    else logger.info(message);
  };
}
