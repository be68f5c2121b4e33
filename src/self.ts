/**
 * How queuectl starts another copy of itself (`worker start --detach`), the same way
 * whether it runs from a checkout (`deno run`) or as a compiled executable.
 *
 * @module
 */

import { basename } from "node:path";
import { fileURLToPath as fromFileUrl } from "node:url";

/**
 * The permissions queuectl runs with; deno.json's `queuectl` and `compile` tasks grant
 * the same (a test checks). No network, no FFI. `--allow-run` is unscoped because
 * `Deno.kill` (killing a job's process group) requires it; jobs are `sh -c` commands, so
 * a list of allowed programs would not contain them anyway.
 */
export const PERMISSION_FLAGS = [
  "--allow-read",
  "--allow-write",
  "--allow-env",
  "--allow-sys=hostname,osRelease",
  "--allow-run",
] as const;

/**
 * The runtime flags queuectl runs with, deno.json's tasks and the Docker image too (a test
 * checks). V8 grows an isolate's young generation up to 3 × 16 MB while garbage comes fast,
 * and a worker makes garbage with every job: a 4-slot worker's RSS went from 68 to 184 MB
 * over 12,000 jobs, and stays at ~93 MB with 1 MB semi-spaces, at no measurable cost to a
 * 100,000-job bulk enqueue (bench/diagnose/memory_growth.ts, docs/performance.md).
 */
export const RUNTIME_FLAGS = ["--v8-flags=--max-semi-space-size=1"] as const;

/** Every flag `deno run` gets for queuectl: {@link RUNTIME_FLAGS}, {@link PERMISSION_FLAGS}. */
export const RUN_FLAGS = [...RUNTIME_FLAGS, ...PERMISSION_FLAGS] as const;

/** The argv that runs this queuectl with `args`. */
export function selfArgv(args: string[]): string[] {
  const exec = Deno.execPath();
  // A compiled executable is its own runtime; `deno run` needs the flags and the script.
  if (!/^deno(\.exe)?$/.test(basename(exec))) return [exec, ...args];
  const main = new URL("../cli.ts", import.meta.url);
  const script = main.protocol === "file:" ? fromFileUrl(main) : main.href;
  return [exec, "run", ...RUN_FLAGS, script, ...args];
}
