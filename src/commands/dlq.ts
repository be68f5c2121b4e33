/**
 * `queuectl dlq list|retry`: the dead-letter queue, which is the `dead` state.
 *
 * @module
 */

import { UsageError } from "../errors.ts";
import { openQueue } from "../queue.ts";
import { colorInputs, shouldColor, terminalColumns } from "../output/format.ts";
import { deadJobsTable } from "../output/table.ts";
import { type Context, location, parse, printJson } from "./args.ts";
import { fetchPage, PAGE_OPTIONS, pageOptions } from "./list.ts";

const HELP = `Usage:
  queuectl dlq list [--queue Q] [--limit N] [--offset N] [--json]
  queuectl dlq retry ID [ID...] [--json]
  queuectl dlq retry --all [--json]

list    dead jobs, newest first (--limit default 50, 0 for all); --json: a JSON array of jobs
retry   moves dead jobs back to pending with attempts reset to 0. Prints the requeued ids
        on stdout, one per line (--json: a JSON array), and "requeued N job(s)" on stderr.
        If any named job is missing or not dead, nothing is requeued (exit 2).
`;

const OPTIONS = { ...PAGE_OPTIONS, all: { type: "boolean" } } as const;

/** Runs `dlq`. */
export async function dlqCommand(args: string[], ctx: Context): Promise<number> {
  const [sub, ...rest] = args;
  const { values, positionals } = parse(`run dlq ${sub ?? ""}`.trim(), rest, OPTIONS);
  if (values.help || sub === undefined || sub === "--help" || sub === "-h") {
    ctx.stdout(HELP);
    return sub === undefined ? 2 : 0;
  }
  if (sub !== "list" && sub !== "retry") {
    throw new UsageError(`cannot run dlq ${sub}: unknown subcommand (valid: list, retry)`);
  }
  if (sub === "list" && (positionals.length || values.all)) {
    throw new UsageError(
      `cannot list dead jobs: unexpected ${values.all ? "--all" : JSON.stringify(positionals[0])}`,
    );
  }
  if (sub === "retry" && (values.all ? positionals.length > 0 : positionals.length === 0)) {
    throw new UsageError(
      `cannot retry dead jobs: give job ids or --all${values.all ? ", not both" : ""}`,
    );
  }
  const page = pageOptions("list dead jobs", values);
  const queue = await openQueue(location(values, ctx));
  try {
    if (sub === "retry") {
      const ids = await queue.retryDead(values.all ? null : [...new Set(positionals)]);
      if (values.json) printJson(ctx, ids);
      else if (ids.length) ctx.stdout(ids.join("\n") + "\n");
      ctx.stderr(ids.length ? `requeued ${ids.length} job(s)\n` : "no dead jobs to retry\n");
      return 0;
    }
    const { jobs } = await fetchPage(
      queue,
      { states: ["dead"], queue: values.queue, ...page },
      ctx,
    );
    if (values.json) printJson(ctx, jobs);
    else if (jobs.length === 0) ctx.stderr("no dead jobs\n");
    else {
      const color = shouldColor(colorInputs());
      ctx.stdout(deadJobsTable(jobs, { now: Date.now(), color, columns: terminalColumns() }));
    }
    return 0;
  } finally {
    queue.close();
  }
}
