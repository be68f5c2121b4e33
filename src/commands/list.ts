/**
 * `queuectl list`: one page of jobs, newest first, fetched with LIMIT/OFFSET so a store of
 * a million jobs answers as fast as one of ten.
 *
 * @module
 */

import { UsageError } from "../errors.ts";
import type { Job, JobState } from "../job.ts";
import { openQueue, parseStates, type Queue } from "../queue.ts";
import { colorInputs, shouldColor, terminalColumns } from "../output/format.ts";
import { jobsTable } from "../output/table.ts";
import { type Context, intOption, location, parse, printJson } from "./args.ts";

const HELP = `Usage: queuectl list [--state S[,S...]] [--queue Q] [--limit N] [--offset N] [--json]

Lists jobs, newest first.
  --state S     only jobs in these states (pending, processing, completed, failed, dead,
                cancelled); a comma-separated list is allowed
  --queue Q     only jobs of this queue
  --limit N     at most N jobs (default 50; 0 for all)
  --offset N    skip the N newest matching jobs
  --json        a JSON array of jobs

WHEN is when a pending or failed job runs next, else when the job last changed. When the
page is cut at --limit, a hint saying so goes to stderr.
`;

/** Paging options shared by `list` and `dlq list`. */
export const PAGE_OPTIONS = {
  limit: { type: "string", short: "n" },
  offset: { type: "string" },
  queue: { type: "string", short: "q" },
  json: { type: "boolean" },
} as const;

const OPTIONS = { ...PAGE_OPTIONS, state: { type: "string", short: "s" } } as const;

/** What {@link fetchPage} returns. */
export interface Page {
  jobs: Job[];
  /** More jobs match beyond this page. */
  cut: boolean;
}

/**
 * Fetches one page; asks for one row more than the limit to learn whether the page was
 * cut, then prints the hint for that to stderr.
 */
export async function fetchPage(
  queue: Queue,
  options: { states?: JobState[]; queue?: string; limit: number; offset: number },
  ctx: Context,
): Promise<Page> {
  const { limit, offset } = options;
  const rows = await queue.list({
    states: options.states,
    queue: options.queue,
    limit: limit === 0 ? 0 : limit + 1,
    offset,
  });
  const cut = limit > 0 && rows.length > limit;
  const jobs = cut ? rows.slice(0, limit) : rows;
  if (cut) {
    ctx.stderr(
      offset === 0
        ? `(showing ${limit} newest; --limit 0 for all)\n`
        : `(showing ${limit} from offset ${offset}; --offset ${offset + limit} for more)\n`,
    );
  }
  return { jobs, cut };
}

/** Reads `--limit` and `--offset`. @throws {UsageError} */
export function pageOptions(action: string, values: { limit?: string; offset?: string }) {
  return {
    limit: intOption(action, "limit", values.limit) ?? 50,
    offset: intOption(action, "offset", values.offset) ?? 0,
  };
}

/** Runs `list`. */
export async function listCommand(args: string[], ctx: Context): Promise<number> {
  const { values, positionals } = parse("list jobs", args, OPTIONS);
  if (values.help) {
    ctx.stdout(HELP);
    return 0;
  }
  if (positionals.length) {
    throw new UsageError(`cannot list jobs: unexpected argument ${JSON.stringify(positionals[0])}`);
  }
  const states = values.state === undefined ? undefined : parseStates(values.state);
  const page = pageOptions("list jobs", values);
  const queue = await openQueue(location(values, ctx));
  try {
    const { jobs } = await fetchPage(queue, { states, queue: values.queue, ...page }, ctx);
    if (values.json) {
      printJson(ctx, jobs);
    } else if (jobs.length === 0) {
      ctx.stderr(states?.length ? `no ${states.join(" or ")} jobs\n` : "no jobs\n");
    } else {
      const color = shouldColor(colorInputs());
      ctx.stdout(jobsTable(jobs, { now: Date.now(), color, columns: terminalColumns() }));
    }
    return 0;
  } finally {
    queue.close();
  }
}
