/**
 * Formatters for human output: durations, relative times, truncation, colour. They are pure
 * (callers pass `now` and the colour inputs) so every rule is unit-tested in
 * `tests/output_test.ts`; only `colorInputs` and `terminalColumns` look at this process.
 *
 * @module
 */

import type { JobState } from "../job.ts";

const SECOND = 1000;
const MINUTE = 60 * SECOND;
const HOUR = 60 * MINUTE;
const DAY = 24 * HOUR;

const pad2 = (n: number) => String(n).padStart(2, "0");

/**
 * A duration as a person reads it, two units at most, truncated rather than rounded up
 * (so 59.9 s never shows as "60s"):
 * `850ms`, `1.5s`, `12s`, `3m 05s`, `2h 10m`, `3d 4h`. Null, NaN or negative: `-`.
 */
export function formatDuration(ms: number | null): string {
  if (ms === null || !Number.isFinite(ms) || ms < 0) return "-";
  if (ms < SECOND) return `${Math.floor(ms)}ms`;
  if (ms < 10 * SECOND) {
    const tenths = Math.floor(ms / 100);
    return tenths % 10 === 0 ? `${tenths / 10}s` : `${(tenths / 10).toFixed(1)}s`;
  }
  if (ms < MINUTE) return `${Math.floor(ms / SECOND)}s`;
  if (ms < HOUR) return `${Math.floor(ms / MINUTE)}m ${pad2(Math.floor((ms % MINUTE) / SECOND))}s`;
  if (ms < DAY) return `${Math.floor(ms / HOUR)}h ${pad2(Math.floor((ms % HOUR) / MINUTE))}m`;
  return `${Math.floor(ms / DAY)}d ${Math.floor((ms % DAY) / HOUR)}h`;
}

/** A coarse age for relative times: `12s`, `3m`, `2h 10m`, `3d 4h`. */
function formatAge(ms: number): string {
  if (ms < MINUTE) return `${Math.floor(ms / SECOND)}s`;
  if (ms < HOUR) return `${Math.floor(ms / MINUTE)}m`;
  return formatDuration(ms);
}

/**
 * A time relative to `now`: `3s ago`, `in 2m`, `now` (within a second either way).
 * `time` is an ISO-8601 string or milliseconds since the epoch; null or unparsable: `-`.
 */
export function formatRelative(time: string | number | null, now: number): string {
  const ms = typeof time === "string" ? Date.parse(time) : time;
  if (ms === null || !Number.isFinite(ms)) return "-";
  const diff = ms - now;
  if (Math.abs(diff) < SECOND) return "now";
  return diff < 0 ? `${formatAge(-diff)} ago` : `in ${formatAge(diff)}`;
}

/** An ISO time to the second with its relative form: `2026-01-31T12:00:00Z (3s ago)`. */
export function formatTimestamp(time: string | null, now: number): string {
  if (time === null) return "-";
  const ms = Date.parse(time);
  if (!Number.isFinite(ms)) return time;
  return `${new Date(ms).toISOString().replace(/\.\d{3}Z$/, "Z")} (${formatRelative(ms, now)})`;
}

/** A byte count: `512 B`, `1.5 KiB`, `10 MiB`, `1 GiB`. Null: `-`. */
export function formatBytes(bytes: number | null): string {
  if (bytes === null || !Number.isFinite(bytes) || bytes < 0) return "-";
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  const text = unit === 0 || value >= 10 ? String(Math.floor(value)) : value.toFixed(1);
  return `${text.replace(/\.0$/, "")} ${units[unit]}`;
}

/** The number of terminal columns `text` takes: code points, ANSI colour codes excluded. */
export function visibleWidth(text: string): number {
  let n = 0;
  for (const _ of stripAnsi(text)) n++;
  return n;
}

/** `text` without ANSI SGR escape sequences. */
export function stripAnsi(text: string): string {
  // deno-lint-ignore no-control-regex
  return text.replace(/\x1b\[[0-9;]*m/g, "");
}

/**
 * `text` on one line (runs of whitespace, newlines included, become one space) and at most
 * `max` code points, ending in `…` when cut.
 */
export function truncate(text: string, max: number): string {
  const flat = text.replace(/\s+/g, " ").trim();
  const chars = Array.from(flat);
  if (chars.length <= max) return flat;
  if (max <= 0) return "";
  return chars.slice(0, max - 1).join("") + "…";
}

/** What decides whether output is coloured. */
export interface ColorInputs {
  /** Whether stdout is a terminal. */
  isTerminal: boolean;
  /** The value of `$NO_COLOR`, undefined when unset. */
  noColor: string | undefined;
}

/**
 * Whether to colour output: only on a terminal, and never when `NO_COLOR` is set, whatever
 * its value (an empty `NO_COLOR=` counts as set too: a user who typed it wants no colour).
 */
export function shouldColor({ isTerminal, noColor }: ColorInputs): boolean {
  return isTerminal && noColor === undefined;
}

/** The colour inputs of this process (stdout and `$NO_COLOR`). */
export function colorInputs(): ColorInputs {
  let noColor: string | undefined;
  try {
    noColor = Deno.env.get("NO_COLOR");
  } catch {
    noColor = "unreadable"; // without env permission, err on the side of plain text
  }
  return { isTerminal: Deno.stdout.isTerminal(), noColor };
}

/** The width of the terminal stdout is, or undefined when stdout is not one. */
export function terminalColumns(): number | undefined {
  try {
    return Deno.stdout.isTerminal() ? Deno.consoleSize().columns : undefined;
  } catch {
    return undefined;
  }
}

/** ANSI SGR codes by name. */
const CODES = {
  red: 31,
  green: 32,
  yellow: 33,
  blue: 34,
  magenta: 35,
  cyan: 36,
  gray: 90,
  bold: 1,
  dim: 2,
} as const;

/** A colour or style name. */
export type Style = keyof typeof CODES;

/** `text` wrapped in `style` when `color` is true, else unchanged. */
export function paint(text: string, style: Style | null, color: boolean): string {
  return color && style ? `\x1b[${CODES[style]}m${text}\x1b[0m` : text;
}

/** The colour of each state. */
export const STATE_STYLES: Readonly<Record<JobState, Style | null>> = {
  pending: "blue",
  processing: "cyan",
  completed: "green",
  failed: "yellow",
  dead: "red",
  cancelled: "gray",
};

/** A state name, coloured when `color` is true. */
export function formatState(state: JobState, color: boolean): string {
  return paint(state, STATE_STYLES[state] ?? null, color);
}
