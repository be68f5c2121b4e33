/**
 * `queuectl enqueue`: add one job from JSON, many from JSON Lines (a file or stdin), or
 * one from a command line after `--`. A batch is one transaction: all or nothing.
 *
 * @module
 */

import { UsageError } from "../errors.ts";
import { openQueue } from "../queue.ts";
import { type Context, location, parse, printJson } from "./args.ts";

const HELP = `Usage:
  queuectl enqueue '{"id":"job1","command":"sleep 2"}'
  queuectl enqueue --file jobs.jsonl        (JSON Lines; '-' or --file - reads stdin)
  queuectl enqueue [flags] -- CMD ARGS...

JSON fields: command (required), id, max_retries, priority, run_at (ISO-8601),
delay_s, timeout_s, queue, cwd (default: the current directory).
Flags for the '--' form: --id ID --priority N --max-retries N --delay S --run-at TIME
  --timeout S --queue Q --cwd DIR
Prints the new job ids, one per line (--json: a JSON array).
`;

const OPTIONS = {
  file: { type: "string", short: "f" },
  json: { type: "boolean" },
  id: { type: "string" },
  priority: { type: "string" },
  "max-retries": { type: "string" },
  delay: { type: "string" },
  "run-at": { type: "string" },
  timeout: { type: "string" },
  queue: { type: "string" },
  cwd: { type: "string" },
} as const;

const FIELD_FLAGS = ["id", "priority", "max-retries", "delay", "run-at", "timeout", "queue", "cwd"];

/** Runs `enqueue`. */
export async function enqueueCommand(args: string[], ctx: Context): Promise<number> {
  const separator = args.indexOf("--");
  const own = separator === -1 ? args : args.slice(0, separator);
  const { values, positionals } = parse("enqueue", own, OPTIONS);
  if (values.help) {
    ctx.stdout(HELP);
    return 0;
  }
  const inputs = separator === -1
    ? await jsonInputs(positionals, values.file, values, ctx)
    : [commandLineJob(args.slice(separator + 1), positionals, values)];
  const queue = await openQueue(location(values, ctx));
  try {
    const ids = await queue.enqueue(inputs);
    if (values.json) printJson(ctx, ids);
    else ctx.stdout(ids.join("\n") + "\n");
  } finally {
    queue.close();
  }
  return 0;
}

async function jsonInputs(
  positionals: string[],
  file: string | undefined,
  values: Record<string, unknown>,
  ctx: Context,
): Promise<unknown[]> {
  const flags = FIELD_FLAGS.filter((f) => values[f] !== undefined);
  if (flags.length) {
    throw new UsageError(
      `cannot enqueue: --${flags[0]} goes with the '-- CMD ARGS' form; put it in the JSON instead`,
    );
  }
  if (file !== undefined) {
    if (positionals.length) {
      throw new UsageError("cannot enqueue: give --file or a JSON job, not both");
    }
    return parseJsonLines(await readInput(file, ctx));
  }
  if (positionals.length !== 1) {
    throw new UsageError(
      positionals.length === 0
        ? "cannot enqueue: give a JSON job, --file F, '-' for stdin, or -- CMD ARGS"
        : "cannot enqueue: give one JSON job (quote it), or use --file for many",
    );
  }
  if (positionals[0] === "-") return parseJsonLines(await readInput("-", ctx));
  let parsed: unknown;
  try {
    parsed = JSON.parse(positionals[0]);
  } catch (e) {
    throw new UsageError(`cannot enqueue: invalid JSON: ${(e as Error).message}`);
  }
  return Array.isArray(parsed) ? parsed : [parsed];
}

async function readInput(file: string, ctx: Context): Promise<string> {
  let bytes: Uint8Array;
  try {
    bytes = file === "-" ? await ctx.stdin() : await Deno.readFile(file);
  } catch (e) {
    throw new UsageError(`cannot enqueue: cannot read ${file}: ${(e as Error).message}`);
  }
  return decodeUtf8(bytes, file === "-" ? "stdin" : file);
}

/**
 * Decodes strictly: a lenient decoder would turn bad bytes into U+FFFD and enqueue a
 * command other than the one given, so invalid UTF-8 is refused, naming its line.
 */
function decodeUtf8(bytes: Uint8Array, name: string): string {
  try {
    return new TextDecoder("utf-8", { fatal: true }).decode(bytes);
  } catch {
    let line = 1;
    for (let start = 0; start <= bytes.length; line++) {
      let end = bytes.indexOf(0x0a, start);
      if (end === -1) end = bytes.length;
      try {
        new TextDecoder("utf-8", { fatal: true }).decode(bytes.subarray(start, end));
      } catch {
        break;
      }
      start = end + 1;
    }
    throw new UsageError(`cannot enqueue: ${name}: line ${line}: not valid UTF-8 text`);
  }
}

/** One JSON object a line; blank lines are skipped. */
export function parseJsonLines(text: string): unknown[] {
  const jobs: unknown[] = [];
  const lines = text.split("\n");
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i].trim();
    if (line === "") continue;
    try {
      jobs.push(JSON.parse(line));
    } catch (e) {
      throw new UsageError(`cannot enqueue: line ${i + 1}: invalid JSON: ${(e as Error).message}`);
    }
  }
  if (jobs.length === 0) throw new UsageError("cannot enqueue: the input holds no jobs");
  return jobs;
}

function commandLineJob(
  argv: string[],
  positionals: string[],
  values: Record<string, string | boolean | undefined>,
): Record<string, unknown> {
  if (positionals.length || values.file !== undefined) {
    throw new UsageError("cannot enqueue: with '-- CMD ARGS', give no JSON job or --file");
  }
  if (argv.length === 0) throw new UsageError("cannot enqueue: no command after '--'");
  const job: Record<string, unknown> = {
    command: argv.length === 1 ? argv[0] : argv.map(shellQuote).join(" "),
  };
  const num = (flag: string) => {
    const text = values[flag] as string;
    const n = Number(text);
    if (text.trim() === "" || !Number.isFinite(n)) {
      throw new UsageError(
        `cannot enqueue: --${flag} must be a number, got ${JSON.stringify(text)}`,
      );
    }
    return n;
  };
  if (values.id !== undefined) job.id = values.id;
  if (values.priority !== undefined) job.priority = num("priority");
  if (values["max-retries"] !== undefined) job.max_retries = num("max-retries");
  if (values.delay !== undefined) job.delay_s = num("delay");
  if (values["run-at"] !== undefined) job.run_at = values["run-at"];
  if (values.timeout !== undefined) job.timeout_s = num("timeout");
  if (values.queue !== undefined) job.queue = values.queue;
  if (values.cwd !== undefined) job.cwd = values.cwd;
  return job;
}

/** Quotes one argument for `sh` (a single argument is taken as a whole command line). */
export function shellQuote(arg: string): string {
  return /^[A-Za-z0-9_./:=@%+,-]+$/.test(arg) ? arg : `'${arg.replaceAll("'", `'\\''`)}'`;
}
