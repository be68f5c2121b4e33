/**
 * The fuzzer's round-trip oracle (fuzz_test.ts): for an `enqueue` the CLI accepted, what
 * it was given, read from the input on its own terms, to hold against what it stored and
 * printed. It covers every form an input can take: a JSON argument, JSON Lines on stdin or
 * in a file, the `-- CMD ARGS` form with its flags, `--json`, and token-mutated inputs.
 *
 * The arguments are read with `node:util` parseArgs, the reference the CLI's own parser
 * (src/commands/argv.ts) imitates, never with the code under test; the one extension the
 * CLI documents (a negative number as an option's value) is applied first. The command of
 * the `--` form is checked by the real `sh`: it must split back into the words given.
 *
 * @module
 */

import { parseArgs } from "node:util";

/** The fields of a stored job this oracle compares. */
export interface StoredJob {
  id: string;
  command: string;
  queue: string;
  priority: number;
  cwd: string | null;
  max_retries: number;
  timeout_s: number | null;
}

/** What the oracle reads from a store: the job ids, and one job's fields. */
export interface StoreView {
  ids(): Set<string>;
  stored(id: string): StoredJob | null;
}

/** `enqueue`'s options as its help documents them, with the global ones. */
const OPTIONS = {
  home: { type: "string" },
  db: { type: "string" },
  debug: { type: "boolean" },
  help: { type: "boolean", short: "h" },
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

/** One expected job: the fields given, and for the `--` form the words of its command. */
interface Expected {
  job: Record<string, unknown>;
  words?: string[];
}

/** What an accepted enqueue was given, or why there is nothing to compare. */
type Reading =
  | { kind: "not-enqueue" }
  | { kind: "refused"; why: string }
  | { kind: "jobs"; json: boolean; help: boolean; jobs: Expected[] };

/** The bytes an input names: stdin, the case's file, or nothing (a missing file). */
export interface Sources {
  stdin?: Uint8Array;
  /** The path the case's file was written to, and its bytes. */
  file?: { path: string; bytes: Uint8Array };
}

/**
 * Reads an enqueue's arguments (as passed after `--home DIR`) the way the CLI's contract
 * says: options before the first `--`, then either the `--` form or one JSON source.
 */
function read(args: string[], sources: Sources): Reading {
  if (args[0] !== "enqueue") return { kind: "not-enqueue" };
  const rest = args.slice(1);
  const separator = rest.indexOf("--");
  const own = joinNegativeValues(separator === -1 ? rest : rest.slice(0, separator));
  let parsed;
  try {
    parsed = parseArgs({ args: own, options: OPTIONS, strict: true, allowPositionals: true });
  } catch (e) {
    return { kind: "refused", why: (e as Error).message };
  }
  const { values, positionals } = parsed;
  const json = values.json === true;
  if (values.help) return { kind: "jobs", json, help: true, jobs: [] };
  if (separator !== -1) {
    const words = rest.slice(separator + 1);
    const job: Record<string, unknown> = { command: words.length === 1 ? words[0] : null };
    if (values.id !== undefined) job.id = values.id;
    if (values.priority !== undefined) job.priority = Number(values.priority);
    if (values["max-retries"] !== undefined) job.max_retries = Number(values["max-retries"]);
    if (values.timeout !== undefined) job.timeout_s = Number(values.timeout);
    if (values.queue !== undefined) job.queue = values.queue;
    if (values.cwd !== undefined) job.cwd = values.cwd;
    return { kind: "jobs", json, help: false, jobs: [{ job, words }] };
  }
  let text: string;
  const source = values.file ?? (positionals[0] === "-" ? "-" : undefined);
  if (source !== undefined) {
    const bytes = source === "-"
      ? sources.stdin
      : source === sources.file?.path
      ? sources.file.bytes
      : undefined;
    if (!bytes) return { kind: "refused", why: `no such input ${source}` };
    text = new TextDecoder("utf-8", { fatal: true }).decode(bytes);
    const lines = text.split("\n").map((l) => l.trim()).filter((l) => l !== "");
    return { kind: "jobs", json, help: false, jobs: lines.map((l) => ({ job: JSON.parse(l) })) };
  }
  const value = JSON.parse(positionals[0]);
  const jobs = Array.isArray(value) ? value : [value];
  return { kind: "jobs", json, help: false, jobs: jobs.map((job) => ({ job })) };
}

/** `--flag -5` as `--flag=-5`: the CLI takes a negative number as a value, parseArgs not. */
function joinNegativeValues(args: string[]): string[] {
  const out: string[] = [];
  for (let i = 0; i < args.length; i++) {
    const name = /^--([^=]+)$/.exec(args[i])?.[1];
    const spec = name !== undefined && Object.hasOwn(OPTIONS, name)
      ? OPTIONS[name as keyof typeof OPTIONS]
      : null;
    if (spec?.type === "string" && /^-\d/.test(args[i + 1] ?? "")) {
      out.push(`${args[i]}=${args[++i]}`);
    } else out.push(args[i]);
  }
  return out;
}

/** The words real `sh` splits `command` into. */
async function shellWords(command: string): Promise<string[]> {
  const out = await new Deno.Command("sh", {
    args: ["-c", 'eval "set -- $1"; printf "%s\\0" "$@"', "sh", command],
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).output();
  // ignoreBOM: keep a leading U+FEFF, a character of the first word like any other.
  const text = new TextDecoder("utf-8", { ignoreBOM: true }).decode(out.stdout);
  return text === "" ? [] : text.slice(0, -1).split("\0");
}

/**
 * What is wrong with an accepted enqueue, or null: the ids it printed (one a line, or a
 * JSON array with `--json`) must be exactly the jobs it added, in order, each stored with
 * the command, id, queue, priority, cwd, max_retries and timeout_s it was given. `before`
 * is the store's ids before the input ran.
 */
export async function roundTrip(
  args: string[],
  sources: Sources,
  result: { stdout: string },
  store: StoreView,
  before: Set<string>,
): Promise<string | null> {
  let given: Reading;
  try {
    given = read(args, sources);
  } catch (e) {
    return `accepted an input that is not valid JSON (Lines): ${(e as Error).message}`;
  }
  if (given.kind === "not-enqueue") return null;
  if (given.kind === "refused") return `accepted arguments the contract refuses: ${given.why}`;
  const added = [...store.ids()].filter((id) => !before.has(id));
  if (given.help) return added.length ? `--help added ${added.length} jobs` : null;
  let printed: unknown;
  try {
    printed = given.json ? JSON.parse(result.stdout) : result.stdout.replace(/\n$/, "").split("\n");
  } catch {
    return `--json printed no JSON: ${JSON.stringify(result.stdout.slice(0, 200))}`;
  }
  if (!Array.isArray(printed) || !printed.every((id) => typeof id === "string")) {
    return `printed ${JSON.stringify(printed).slice(0, 200)}, not a list of ids`;
  }
  if (printed.length !== given.jobs.length) {
    return `printed ${printed.length} ids for ${given.jobs.length} jobs`;
  }
  if (added.length !== printed.length || !printed.every((id) => !before.has(id))) {
    return `printed ids ${JSON.stringify(printed).slice(0, 200)}, added ${
      JSON.stringify(added).slice(0, 200)
    }`;
  }
  for (let i = 0; i < printed.length; i++) {
    const stored = store.stored(printed[i]);
    if (!stored) return `acknowledged id ${JSON.stringify(printed[i])} is not stored`;
    const problem = await compare(given.jobs[i], stored);
    if (problem) return `job ${i + 1} (${JSON.stringify(printed[i])}): ${problem}`;
  }
  return null;
}

async function compare({ job, words }: Expected, stored: StoredJob): Promise<string | null> {
  if (words && words.length > 1) {
    const split = await shellWords(stored.command);
    if (JSON.stringify(split) !== JSON.stringify(words)) {
      return `stored command ${JSON.stringify(stored.command)} is ${
        JSON.stringify(split)
      } to sh, given ${JSON.stringify(words)}`;
    }
  } else if (stored.command !== job.command) {
    return `stored command ${JSON.stringify(stored.command)}, given ${JSON.stringify(job.command)}`;
  }
  const want: Partial<StoredJob> = {
    queue: (job.queue ?? "default") as string,
    priority: (job.priority ?? 0) as number,
    cwd: (job.cwd === undefined ? Deno.cwd() : job.cwd) as string | null,
  };
  if (typeof job.id === "string") want.id = job.id;
  if (job.max_retries !== undefined && job.max_retries !== null) {
    want.max_retries = job.max_retries as number;
  }
  if (job.timeout_s !== undefined) want.timeout_s = job.timeout_s as number | null;
  for (const [field, value] of Object.entries(want)) {
    const got = stored[field as keyof StoredJob];
    if (got !== value) {
      return `stored ${field} ${JSON.stringify(got)}, given ${JSON.stringify(value)}`;
    }
  }
  return null;
}
