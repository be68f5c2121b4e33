/**
 * `queuectl worker start|stop|list`. Stop and list go through the store, never through
 * PIDs, so they reach workers in other containers and PID namespaces. A PID is only read,
 * for a worker on this host, to see at once that it died without unregistering (kill -9).
 *
 * @module
 */

import { join } from "node:path";
import { OperationalError, UsageError } from "../errors.ts";
import { notifyWorkers } from "../notify.ts";
import { openQueue, type Queue } from "../queue.ts";
import type { WorkerInfo } from "../store/store.ts";
import { newWorkerId } from "../pool/ids.ts";
import { selfArgv } from "../self.ts";
import { type Context, intOption, location, parse, printJson } from "./args.ts";

const HELP = `Usage:
  queuectl worker start [--count N] [--queue Q[,Q...]] [--detach]
  queuectl worker stop [ID...] [--wait]
  queuectl worker list [--json]

start   runs N execution slots in the foreground until SIGINT/SIGTERM or 'worker stop':
        running jobs get shutdown-grace seconds to finish, then are killed and requeued;
        a second signal kills them at once. --detach starts it in the background, logging
        to <home>/logs/<worker-id>.log, and prints the worker id.
stop    asks every live worker (or the ones named) to stop, through the store; --wait
        blocks until they are gone.
`;

const OPTIONS = {
  count: { type: "string", short: "c" },
  queue: { type: "string", short: "q" },
  detach: { type: "boolean", short: "d" },
  id: { type: "string" },
  wait: { type: "boolean", short: "w" },
  json: { type: "boolean" },
} as const;

/** Runs `worker`. */
export async function workerCommand(args: string[], ctx: Context): Promise<number> {
  const [sub, ...rest] = args;
  const { values, positionals } = parse(`run worker ${sub ?? ""}`.trim(), rest, OPTIONS);
  if (values.help || sub === undefined || sub === "--help" || sub === "-h") {
    ctx.stdout(HELP);
    return sub === undefined ? 2 : 0;
  }
  if (sub === "start") {
    if (positionals.length) {
      throw new UsageError(`cannot start worker: unexpected ${positionals[0]}`);
    }
    const count = intOption("start worker", "count", values.count, { min: 1, max: 256 }) ?? 1;
    const queues = values.queue?.split(",").map((q) => q.trim()).filter(Boolean) ?? null;
    if (values.detach) return await detach(rest, location(values, ctx), ctx);
    const { runForeground } = await import("../pool/foreground.ts");
    return await runForeground({ ...location(values, ctx), count, queues, id: values.id });
  }
  const queue = await openQueue(location(values, ctx));
  try {
    if (sub === "stop") return await stop(queue, positionals, values.wait ?? false, ctx);
    if (sub === "list") return await list(queue, values.json ?? false, ctx);
  } finally {
    queue.close();
  }
  throw new UsageError(`cannot run worker ${sub}: unknown subcommand (valid: start, stop, list)`);
}

/**
 * Registered workers whose heartbeat is fresh, less those on this host whose process has
 * ended (kill -9 leaves a row whose heartbeat stays fresh for up to a lease). With
 * `forget`, the rows of those dead ones are deleted.
 */
async function liveWorkers(queue: Queue, forget: boolean): Promise<WorkerInfo[]> {
  const workers = await queue.store.listWorkers(Date.now(), queue.config().leaseS * 1000);
  if (workers.length === 0) return workers;
  const { processesGone } = await import("../pool/process.ts");
  const gone = processesGone(workers); // one /proc read for all of them
  const live: WorkerInfo[] = [];
  for (const [i, worker] of workers.entries()) {
    if (!gone[i]) live.push(worker);
    else if (forget) await queue.store.unregisterWorker(worker.id);
  }
  return live;
}

async function stop(queue: Queue, ids: string[], wait: boolean, ctx: Context): Promise<number> {
  const staleMs = queue.config().leaseS * 1000;
  await liveWorkers(queue, true);
  const asked = await queue.store.requestStop(ids.length ? ids : null, Date.now(), staleMs);
  if (asked === 0) {
    if (ids.length) {
      throw new UsageError(
        `cannot stop workers: no live worker with id ${
          ids.map((id) => JSON.stringify(id)).join(", ")
        }`,
      );
    }
    ctx.stderr("no workers running\n");
    return 0;
  }
  notifyWorkers(queue.home);
  ctx.stderr(`asked ${asked} worker(s) to stop\n`);
  if (!wait) return 0;
  const pending = () =>
    liveWorkers(queue, true).then((ws) => ws.filter((w) => ids.length === 0 || ids.includes(w.id)));
  // Workers notice within poll-interval, then get shutdown-grace for running jobs.
  while ((await pending()).length > 0) await new Promise((r) => setTimeout(r, 100));
  ctx.stderr("all stopped\n");
  return 0;
}

async function list(queue: Queue, json: boolean, ctx: Context): Promise<number> {
  const workers = await liveWorkers(queue, false);
  if (json) {
    printJson(ctx, workers);
    return 0;
  }
  if (workers.length === 0) {
    ctx.stderr("no workers running\n");
    return 0;
  }
  const { workersTable } = await import("../output/table.ts");
  const { colorInputs, shouldColor } = await import("../output/format.ts");
  ctx.stdout(workersTable(workers, { now: Date.now(), color: shouldColor(colorInputs()) }));
  return 0;
}

/** Starts the same `worker start` in the background and returns once it is registered. */
async function detach(
  args: string[],
  values: { home?: string; db?: string },
  ctx: Context,
): Promise<number> {
  // The worker's own --home/--db are given again below, resolved.
  args = args.filter((a, i) => !/^--(home|db)(=|$)/.test(a) && !/^--(home|db)$/.test(args[i - 1]));
  const queue = await openQueue(values);
  const id = newWorkerId();
  const logDir = join(queue.home, "logs");
  Deno.mkdirSync(logDir, { recursive: true, mode: 0o700 });
  const logPath = join(logDir, `${id}.log`);
  Deno.openSync(logPath, { create: true, append: true, mode: 0o600 }).close();
  const argv = selfArgv([
    "worker",
    "start",
    ...args.filter((a) => a !== "--detach" && a !== "-d"),
    "--id",
    id,
    "--home",
    queue.home,
    ...(values.db ? ["--db", values.db] : []),
  ]);
  // sh redirects the worker's output to its log and execs it; detached puts it in its own
  // session, so closing this terminal does not take it down.
  const child = new Deno.Command("sh", {
    args: ["-c", 'log="$1"; shift; exec "$@" >>"$log" 2>&1 </dev/null', "sh", logPath, ...argv],
    stdin: "null",
    stdout: "null",
    stderr: "null",
    detached: true,
  }).spawn();
  let exited = null as Deno.CommandStatus | null;
  child.status.then((s) => exited = s);
  try {
    const deadline = Date.now() + 15_000;
    while (Date.now() < deadline) {
      const workers = await queue.store.listWorkers(Date.now(), 60_000);
      if (workers.some((w) => w.id === id)) {
        child.unref();
        ctx.stdout(`${id}\n`);
        ctx.stderr(`worker ${id} started in the background; log: ${logPath}\n`);
        return 0;
      }
      if (exited) break;
      await new Promise((r) => setTimeout(r, 50));
    }
  } finally {
    queue.close();
  }
  const tail = Deno.readTextFileSync(logPath).trim().split("\n").pop() ?? "";
  const ErrorClass = exited?.code === 2 ? UsageError : OperationalError;
  throw new ErrorClass(
    `cannot start worker: it ${exited ? `exited with code ${exited.code}` : "did not register"}${
      tail ? `: ${tail.replace(/^queuectl: /, "")}` : ""
    }`,
  );
}
