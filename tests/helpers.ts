/**
 * Shared test helpers: temporary data directories, running the real `cli.ts` as a
 * separate process, and waiting for conditions instead of sleeping.
 *
 * @module
 */

import { DatabaseSync } from "node:sqlite";
import { fileURLToPath as fromFileUrl } from "node:url";

/** The repository root. */
export const ROOT = fromFileUrl(new URL("..", import.meta.url));
/** The CLI entry. */
export const CLI = fromFileUrl(new URL("../cli.ts", import.meta.url));

/**
 * An integer of at least `min` from the environment (a test's size or seed), or `fallback`
 * when unset. Anything else set there is refused, loudly: a size of 0 (or "abc", which
 * `Number` reads as NaN and a loop as 0) would turn a suite into one that runs nothing and
 * passes, and silently using the default instead would run a different test than asked.
 */
export function envInt(name: string, fallback: number, { min = 1 } = {}): number {
  const text = Deno.env.get(name);
  if (text === undefined) return fallback;
  const n = Number(text);
  if (text.trim() === "" || !Number.isSafeInteger(n) || n < min) {
    throw new Error(`${name}=${JSON.stringify(text)}: expected a whole number >= ${min}`);
  }
  return n;
}

/**
 * The permission flags of the `queuectl` task in deno.json, read from it so the tests run
 * the CLI with exactly what users get.
 */
export const CLI_FLAGS: string[] = (() => {
  const config = JSON.parse(Deno.readTextFileSync(new URL("../deno.json", import.meta.url)));
  const task: string = config.tasks.queuectl;
  return task.split(/\s+/).filter((w) =>
    w.startsWith("--allow-") || w.startsWith("--deny-") || w.startsWith("--v8-flags")
  );
})();

/** A fresh data directory; removed by `cleanup`. */
export async function tempHome(prefix = "queuectl-test-"): Promise<string> {
  return await Deno.makeTempDir({ prefix });
}

/** Removes a temporary directory, ignoring what is already gone. */
export async function cleanup(dir: string): Promise<void> {
  await Deno.remove(dir, { recursive: true }).catch(() => {});
}

/** What a CLI run produced. */
export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs `cli.ts` with `args` in a child process against `home`. */
export async function runCli(
  home: string,
  args: string[],
  options: { stdin?: string; env?: Record<string, string>; cwd?: string } = {},
): Promise<CliResult> {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", ...CLI_FLAGS, CLI, "--home", home, ...args],
    stdin: options.stdin === undefined ? "null" : "piped",
    stdout: "piped",
    stderr: "piped",
    env: { NO_COLOR: "1", ...options.env },
    cwd: options.cwd,
  }).spawn();
  if (options.stdin !== undefined) {
    const writer = child.stdin.getWriter();
    await writer.write(new TextEncoder().encode(options.stdin));
    await writer.close();
  }
  const out = await child.output();
  const dec = new TextDecoder();
  return { code: out.code, stdout: dec.decode(out.stdout), stderr: dec.decode(out.stderr) };
}

/** Starts `cli.ts` with `args` as a long-running child (e.g. a worker). */
export function spawnCli(
  home: string,
  args: string[],
  options: { env?: Record<string, string>; stdout?: "piped" | "null"; stderr?: "piped" | "null" } =
    {},
): Deno.ChildProcess {
  return new Deno.Command(Deno.execPath(), {
    args: ["run", ...CLI_FLAGS, CLI, "--home", home, ...args],
    stdin: "null",
    stdout: options.stdout ?? "null",
    stderr: options.stderr ?? "null",
    env: { NO_COLOR: "1", ...options.env },
  }).spawn();
}

/** Polls `condition` until it is truthy or `timeoutMs` passes (then throws). */
export async function waitFor<T>(
  condition: () => T | Promise<T>,
  { timeoutMs = 20_000, intervalMs = 25, what = "condition" } = {},
): Promise<Exclude<T, false | null | undefined | 0 | "">> {
  const deadline = Date.now() + timeoutMs;
  while (true) {
    const value = await condition();
    if (value) return value as Exclude<T, false | null | undefined | 0 | "">;
    if (Date.now() > deadline) {
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    }
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}

/** Parses a CLI result's stdout as JSON, failing with its stderr if it is not. */
export function json<T = unknown>(result: CliResult): T {
  try {
    return JSON.parse(result.stdout) as T;
  } catch {
    throw new Error(`not JSON (exit ${result.code}): ${result.stdout}\nstderr: ${result.stderr}`);
  }
}

/** Process ids whose process group is `pgid` (from /proc). */
export function groupMembers(pgid: number): number[] {
  const pids: number[] = [];
  for (const entry of Deno.readDirSync("/proc")) {
    if (!/^\d+$/.test(entry.name)) continue;
    try {
      const stat = Deno.readTextFileSync(`/proc/${entry.name}/stat`);
      const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
      if (Number(fields[2]) === pgid && fields[0] !== "Z") pids.push(Number(entry.name));
    } catch { /* the process ended while we looked */ }
  }
  return pids;
}

/** Every row of every table of `home`'s store, to prove "the store unchanged". */
export function snapshot(home: string): string {
  const db = new DatabaseSync(`${home}/queue.db`, { readOnly: true });
  try {
    const tables = ["jobs", "attempts", "workers"];
    return JSON.stringify(tables.map((t) => db.prepare(`SELECT * FROM ${t} ORDER BY 1`).all()));
  } finally {
    db.close();
  }
}

/** Whether this run is CI (`CI=true`, which `.ci/run` sets). */
export const IN_CI = Deno.env.get("CI") === "true";

/**
 * The `ignore` and `fn` of a `Deno.test` that needs something a machine may lack (root,
 * `mount`, bindfs, unshare, a terminal, a database server). Where it is missing, the test is
 * ignored and says so loudly on stderr, except in CI (`CI=true`): there it runs and fails at
 * once naming what is missing, so a suite that did not run can never pass as if it had.
 *
 * ```ts
 * Deno.test({ name: "…", ...needs("root and mount", CAN_MOUNT, async () => { … }) });
 * ```
 */
export function needs(
  what: string,
  available: boolean,
  fn: (t: Deno.TestContext) => void | Promise<void>,
): { ignore: boolean; fn: (t: Deno.TestContext) => Promise<void> } {
  const ignore = !available && !IN_CI;
  if (ignore) console.error(`IGNORED: a test needs ${what}, which this machine lacks`);
  return {
    ignore,
    fn: async (t) => {
      if (!available) {
        throw new Error(`cannot run this test: it needs ${what}, which this machine lacks`);
      }
      await fn(t);
    },
  };
}
