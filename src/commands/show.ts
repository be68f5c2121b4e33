/**
 * `queuectl show ID`: one job's fields and every attempt it made.
 *
 * @module
 */

import { UsageError } from "../errors.ts";
import type { JobDetail } from "../job.ts";
import { openQueue } from "../queue.ts";
import {
  colorInputs,
  formatDuration,
  formatState,
  formatTimestamp,
  shouldColor,
} from "../output/format.ts";
import { attemptsTable, formatAttempts, renderFields } from "../output/table.ts";
import { type Context, location, parse, printJson } from "./args.ts";

const HELP = `Usage: queuectl show ID [--json]

Prints a job's fields, then a table of its attempts (number, worker, start, duration,
outcome, exit code or signal, error, output file; 'queuectl logs ID' prints the output).
--json prints the job object with its "attempts_log" array.
`;

const OPTIONS = { json: { type: "boolean" } } as const;

/** Runs `show`. */
export async function showCommand(args: string[], ctx: Context): Promise<number> {
  const { values, positionals } = parse("show job", args, OPTIONS);
  if (values.help) {
    ctx.stdout(HELP);
    return 0;
  }
  if (positionals.length !== 1) {
    throw new UsageError(
      `cannot show job: ${
        positionals.length ? "give one job id" : "missing job id"
      } (usage: show ID)`,
    );
  }
  const queue = await openQueue(location(values, ctx));
  try {
    const job = await queue.get(positionals[0]);
    if (values.json) printJson(ctx, job);
    else ctx.stdout(renderJob(job, Date.now(), shouldColor(colorInputs())));
    return 0;
  } finally {
    queue.close();
  }
}

/** A job's fields and its attempts table, as `show` prints them. */
export function renderJob(job: JobDetail, now: number, color: boolean): string {
  const fields: Array<[string, string]> = [
    ["id", job.id],
    ["command", job.command],
    ["state", formatState(job.state, color)],
    ["attempts", `${formatAttempts(job)} (max retries ${job.max_retries})`],
    ["priority", String(job.priority)],
    ["queue", job.queue],
    ["run at", formatTimestamp(job.run_at, now)],
    ["timeout", job.timeout_s === null ? "none" : formatDuration(job.timeout_s * 1000)],
    ["cwd", job.cwd ?? "-"],
    ["created", formatTimestamp(job.created_at, now)],
    ["updated", formatTimestamp(job.updated_at, now)],
    ["exit code", job.exit_code === null ? "-" : String(job.exit_code)],
    ["last error", job.last_error ?? "-"],
  ];
  const attempts = job.attempts_log.length === 0
    ? "no attempts yet\n"
    : attemptsTable(job.attempts_log, { now, color });
  return `${renderFields(fields)}\n${attempts}`;
}
