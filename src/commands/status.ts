/**
 * `queuectl status`: how many jobs are in each state, and the live workers.
 *
 * @module
 */

import { UsageError } from "../errors.ts";
import { JOB_STATES } from "../job.ts";
import { openQueue } from "../queue.ts";
import { colorInputs, formatState, shouldColor } from "../output/format.ts";
import { renderTable, workersTable } from "../output/table.ts";
import { type Context, location, parse, printJson } from "./args.ts";

const HELP = `Usage: queuectl status [--json]

Prints the number of jobs in each state, the total, and the live workers (those whose
heartbeat is newer than the lease). --json prints
  {"counts": {"pending": n, ...every state}, "total": n, "workers": [...]}.
`;

const OPTIONS = { json: { type: "boolean" } } as const;

/** Runs `status`. */
export async function statusCommand(args: string[], ctx: Context): Promise<number> {
  const { values, positionals } = parse("show status", args, OPTIONS);
  if (values.help) {
    ctx.stdout(HELP);
    return 0;
  }
  if (positionals.length) {
    throw new UsageError(
      `cannot show status: unexpected argument ${JSON.stringify(positionals[0])}`,
    );
  }
  const queue = await openQueue(location(values, ctx));
  try {
    const now = Date.now();
    const { counts, workers } = await queue.status(now);
    const total = JOB_STATES.reduce((sum, s) => sum + counts[s], 0);
    if (values.json) {
      printJson(ctx, { counts, total, workers });
      return 0;
    }
    const color = shouldColor(colorInputs());
    const rows = JOB_STATES.map((s) => [formatState(s, color), String(counts[s])]);
    rows.push(["total", String(total)]);
    ctx.stdout(renderTable(["STATE", "JOBS"], rows, { align: ["left", "right"], color }));
    ctx.stdout("\n");
    ctx.stdout(
      workers.length === 0
        ? "no workers running\n"
        : `${workers.length} worker(s)\n${workersTable(workers, { now, color })}`,
    );
    return 0;
  } finally {
    queue.close();
  }
}
