/**
 * `queuectl prune`: deletes finished jobs older than an age, with their attempts and
 * output files, in small batches so running workers are never held up.
 *
 * @module
 */

import { UsageError } from "../errors.ts";
import type { JobState } from "../job.ts";
import { openQueue, parseStates } from "../queue.ts";
import { type Context, intOption, location, parse, printJson } from "./args.ts";

const HELP = `Usage:
  queuectl prune --older-than AGE [--state S[,S...]] [--batch N] [--json]

Deletes jobs in a final state (default: completed,dead; cancelled too if named) whose last
change is older than AGE (e.g. 90s, 30m, 12h, 7d), with their attempts and output files.
Works in batches of N (default 1000), one short transaction each, so workers keep going.
`;

const OPTIONS = {
  "older-than": { type: "string" },
  state: { type: "string", short: "s" },
  batch: { type: "string" },
  json: { type: "boolean" },
} as const;

const PRUNABLE: JobState[] = ["completed", "dead", "cancelled"];

/** Runs `prune`. */
export async function pruneCommand(args: string[], ctx: Context): Promise<number> {
  const { values, positionals } = parse("prune jobs", args, OPTIONS);
  if (values.help) {
    ctx.stdout(HELP);
    return 0;
  }
  if (positionals.length) throw new UsageError(`cannot prune jobs: unexpected ${positionals[0]}`);
  if (values["older-than"] === undefined) {
    throw new UsageError("cannot prune jobs: give --older-than AGE (e.g. 7d)");
  }
  const ageMs = parseAge(values["older-than"]);
  const states = values.state ? parseStates(values.state) : ["completed", "dead"] as JobState[];
  const wrong = states.find((s) => !PRUNABLE.includes(s));
  if (wrong) {
    throw new UsageError(
      `cannot prune jobs: ${wrong} jobs are not finished (valid: ${PRUNABLE.join(", ")})`,
    );
  }
  const batch = intOption("prune jobs", "batch", values.batch, { min: 1, max: 100_000 }) ?? 1000;
  const queue = await openQueue(location(values, ctx));
  let jobs = 0;
  let files = 0;
  try {
    const beforeMs = Date.now() - ageMs;
    while (true) {
      const { ids, outputPaths } = await queue.store.prune({ states, beforeMs, limit: batch });
      jobs += ids.length;
      for (const path of outputPaths) {
        try {
          Deno.removeSync(path);
          files++;
        } catch { /* already gone */ }
      }
      if (ids.length < batch) break;
    }
  } finally {
    queue.close();
  }
  if (values.json) printJson(ctx, { pruned: jobs, output_files_removed: files });
  else ctx.stderr(`pruned ${jobs} job(s), removed ${files} output file(s)\n`);
  return 0;
}

const UNITS: Record<string, number> = {
  s: 1000,
  m: 60_000,
  h: 3_600_000,
  d: 86_400_000,
  w: 604_800_000,
};

/** Parses an age like `90s`, `30m`, `12h`, `7d`, `2w` (a bare number is seconds). */
export function parseAge(text: string): number {
  const m = /^(\d+(?:\.\d+)?)\s*([smhdw]?)$/.exec(text.trim());
  if (!m) {
    throw new UsageError(
      `cannot prune jobs: --older-than must be an age like 90s, 30m, 12h or 7d, got ${
        JSON.stringify(text)
      }`,
    );
  }
  return Number(m[1]) * UNITS[m[2] || "s"];
}
