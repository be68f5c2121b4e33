/**
 * Argument parsing shared by every subcommand: a strict parser (argv.ts, parseArgs'
 * behaviour without its start-up cost), the global options merged in, and its errors
 * turned into one-line usage errors.
 *
 * @module
 */

import { UsageError } from "../errors.ts";
import { type OptionSpec, parseArgv, type Values } from "./argv.ts";

type Options = Record<string, OptionSpec>;

/** Options every command takes. */
export const GLOBAL_OPTIONS = {
  home: { type: "string" },
  db: { type: "string" },
  debug: { type: "boolean" },
  help: { type: "boolean", short: "h" },
} as const satisfies Options;

/** What every command receives. */
export interface Context {
  /** `--home` if given. */
  home?: string;
  /** `--db` if given. */
  db?: string;
  /** Standard streams, injectable for tests of the library. */
  stdout: (text: string) => void;
  stderr: (text: string) => void;
  /** All of standard input as bytes (for `-`), injectable like the output streams. */
  stdin: () => Promise<Uint8Array>;
}

/**
 * Parses `args` against `options` plus the globals.
 *
 * @throws {UsageError} `cannot <action>: <why>` for unknown or malformed options
 */
export function parse<O extends Options>(
  action: string,
  args: string[],
  options: O,
  { positionals = true }: { positionals?: boolean } = {},
): { values: Values<typeof GLOBAL_OPTIONS & O>; positionals: string[] } {
  try {
    return parseArgv(args, {
      options: { ...GLOBAL_OPTIONS, ...options },
      allowPositionals: positionals,
    });
  } catch (e) {
    const message = (e as Error).message.replace(/\. To specify a positional.*$/s, "")
      .replace(/\.$/, "");
    throw new UsageError(`cannot ${action}: ${message}`);
  }
}

/** Parses a whole number option. @throws {UsageError} */
export function intOption(
  action: string,
  name: string,
  value: string | undefined,
  { min = 0, max = Number.MAX_SAFE_INTEGER }: { min?: number; max?: number } = {},
): number | undefined {
  if (value === undefined) return undefined;
  if (!/^-?\d+$/.test(value.trim()) || Number(value) < min || Number(value) > max) {
    throw new UsageError(
      `cannot ${action}: --${name} must be a whole number from ${min} to ${max}, got ${
        JSON.stringify(value)
      }`,
    );
  }
  return Number(value);
}

/** Parses a number option. @throws {UsageError} */
export function numberOption(
  action: string,
  name: string,
  value: string | undefined,
  { min = 0 }: { min?: number } = {},
): number | undefined {
  if (value === undefined) return undefined;
  const n = Number(value);
  if (value.trim() === "" || !Number.isFinite(n) || n < min) {
    throw new UsageError(
      `cannot ${action}: --${name} must be a number >= ${min}, got ${JSON.stringify(value)}`,
    );
  }
  return n;
}

/** Writes one JSON document to stdout. */
export function printJson(ctx: Context, value: unknown): void {
  ctx.stdout(JSON.stringify(value, null, 2) + "\n");
}

/** Where the queue is: a command's own `--home`/`--db`, else the ones before the command. */
export function location(
  values: { home?: string; db?: string },
  ctx: Context,
): { home?: string; db?: string } {
  return { home: values.home ?? ctx.home, db: values.db ?? ctx.db };
}
