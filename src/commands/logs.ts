/**
 * `queuectl logs ID`: an attempt's output file, copied raw to stdout in chunks (an output
 * file may be as large as `output-limit`, so it is never read whole). `--follow` keeps
 * copying what the file gains until the attempt ends, like `tail -f`.
 *
 * @module
 */

import { JobNotFoundError, OperationalError, UsageError } from "../errors.ts";
import type { Attempt, JobDetail } from "../job.ts";
import { openQueue, type Queue } from "../queue.ts";
import { formatExit } from "../output/table.ts";
import { type Context, intOption, location, parse } from "./args.ts";

const HELP = `Usage: queuectl logs ID [--attempt N] [--follow]

Prints the output (stdout and stderr, interleaved) of a job's latest attempt that has
output, or of attempt N, raw to stdout.
  --attempt N   that attempt (1 is the first)
  -f, --follow  keep printing as the output grows until the attempt ends; waits for the
                job to start if it has not
A job with no output yet prints a note to stderr and exits 0.
`;

const OPTIONS = {
  attempt: { type: "string", short: "a" },
  follow: { type: "boolean", short: "f" },
} as const;

/** How often `--follow` looks at the store and the file, ms. */
const POLL_MS = 200;
const FINAL_STATES = ["completed", "dead", "cancelled"];

/** Runs `logs`. */
export async function logsCommand(args: string[], ctx: Context): Promise<number> {
  const { values, positionals } = parse("show logs", args, OPTIONS);
  if (values.help) {
    ctx.stdout(HELP);
    return 0;
  }
  if (positionals.length !== 1) {
    throw new UsageError("cannot show logs: give one job id (usage: logs ID [--attempt N])");
  }
  const [id] = positionals;
  const number = intOption("show logs", "attempt", values.attempt, { min: 1 });
  const follow = values.follow ?? false;
  const queue = await openQueue(location(values, ctx));
  try {
    let job = await getJob(queue, id);
    let attempt = pick(job, number);
    // Following a job that has not started (or not opened its output yet): wait for it,
    // and say so once, so a person (or a test) knows it is waiting, not stuck.
    let said = false;
    while (follow && !attempt?.output_path && !FINAL_STATES.includes(job.state)) {
      if (attempt && attempt.outcome !== "running") break;
      if (!said) ctx.stderr(`waiting for job ${JSON.stringify(id)} to start\n`);
      said = true;
      await sleep(POLL_MS);
      job = await getJob(queue, id);
      attempt = pick(job, number);
    }
    if (!attempt?.output_path) {
      const what = attempt ? `attempt ${attempt.attempt}` : `job ${JSON.stringify(id)}`;
      ctx.stderr(`${what} has no output${attempt?.error ? ` (${attempt.error})` : " yet"}\n`);
      return 0;
    }
    await copy(queue, { id, attempt, follow }, ctx);
    return 0;
  } finally {
    queue.close();
  }
}

async function getJob(queue: Queue, id: string): Promise<JobDetail> {
  const job = await queue.store.getJob(id);
  if (!job) throw new JobNotFoundError(id, "show logs");
  return job;
}

/** Attempt `number`, or the latest that has output (else the latest). */
function pick(job: JobDetail, number: number | undefined): Attempt | undefined {
  const log = job.attempts_log;
  if (number === undefined) return log.findLast((a) => a.output_path) ?? log.at(-1);
  const found = log.find((a) => a.attempt === number);
  if (!found) {
    throw new UsageError(
      `cannot show logs: job ${JSON.stringify(job.id)} has no attempt ${number} (${
        log.length ? `attempts: 1-${log.at(-1)!.attempt}` : "it has not started"
      })`,
    );
  }
  return found;
}

/** Copies the output file to stdout; with `follow`, until the attempt ends. */
async function copy(
  queue: Queue,
  { id, attempt, follow }: { id: string; attempt: Attempt; follow: boolean },
  ctx: Context,
): Promise<void> {
  const path = attempt.output_path!;
  let running = attempt.outcome === "running";
  let file: Deno.FsFile | null = null;
  const buffer = new Uint8Array(64 * 1024);
  try {
    while (true) {
      file ??= await open(path);
      if (file) {
        for (let n; (n = await file.read(buffer)) !== null;) {
          if (!await write(buffer.subarray(0, n))) return; // the reader went away
        }
      }
      if (!follow || !running) break;
      await sleep(POLL_MS);
      // Read the outcome before the last drain: the worker writes output, then finishes.
      const now = (await getJob(queue, id)).attempts_log.find((a) => a.attempt === attempt.attempt);
      running = now?.outcome === "running";
      if (!running && now) {
        ctx.stderr(`(attempt ${now.attempt} ended: ${now.outcome}, ${formatExit(now)})\n`);
        attempt = now;
      }
    }
    // An attempt that printed nothing leaves no file (the worker creates it on the first byte).
    if (!file && running) ctx.stderr(`attempt ${attempt.attempt} has no output yet\n`);
    else if (!file && attempt.output_bytes !== 0) {
      throw new OperationalError(
        `cannot show logs: output file ${path} of attempt ${attempt.attempt} is missing`,
      );
    }
  } finally {
    file?.close();
  }
}

/** Opens the output file; null when it does not exist (yet). */
async function open(path: string): Promise<Deno.FsFile | null> {
  try {
    return await Deno.open(path, { read: true });
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return null;
    throw new OperationalError(`cannot show logs: ${(e as Error).message}`);
  }
}

/** Writes raw bytes to stdout; false when stdout was closed (e.g. `logs ID | head`). */
async function write(bytes: Uint8Array): Promise<boolean> {
  try {
    for (let n = 0; n < bytes.length;) n += await Deno.stdout.write(bytes.subarray(n));
    return true;
  } catch (e) {
    if (e instanceof Deno.errors.BrokenPipe) return false;
    throw e;
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
