/**
 * Aligned plain-text tables, and the tables the read commands print (jobs, dead jobs,
 * attempts, workers). Pure: callers pass `now`, `color` and the width to fit.
 *
 * @module
 */

import type { Attempt, Job } from "../job.ts";
import type { WorkerInfo } from "../store/store.ts";
import {
  formatDuration,
  formatRelative,
  formatState,
  paint,
  truncate,
  visibleWidth,
} from "./format.ts";

/** How one column aligns. */
export type Align = "left" | "right";

/** Options for {@link renderTable}. */
export interface TableOptions {
  /** Per column; missing entries align left. */
  align?: Align[];
  /** Bold headers. @default false */
  color?: boolean;
}

/** The gap between columns. */
const GAP = "  ";

/**
 * Rows under headers, each column padded to its widest cell (measured without colour
 * codes). The last column is not padded, so no line ends in spaces. Ends with a newline.
 */
export function renderTable(
  headers: string[],
  rows: string[][],
  options: TableOptions = {},
): string {
  const widths = headers.map((h, i) =>
    Math.max(visibleWidth(h), ...rows.map((r) => visibleWidth(r[i] ?? "")))
  );
  const line = (cells: string[]) =>
    cells.map((cell, i) => {
      if (i === cells.length - 1 && options.align?.[i] !== "right") return cell;
      const pad = " ".repeat(widths[i] - visibleWidth(cell));
      return options.align?.[i] === "right" ? pad + cell : cell + pad;
    }).join(GAP);
  const out = [paint(line(headers), "bold", options.color ?? false), ...rows.map(line)];
  return out.join("\n") + "\n";
}

/** `label  value` lines with the labels padded; continuation lines of a value indented. */
export function renderFields(fields: Array<[string, string]>): string {
  const width = Math.max(...fields.map(([label]) => label.length));
  return fields.map(([label, value]) =>
    `${label.padEnd(width)}${GAP}${value.replace(/\n/g, `\n${" ".repeat(width + GAP.length)}`)}`
  ).join("\n") + "\n";
}

/** Room left for a last free-text column on a terminal `columns` wide. */
function room(headers: string[], rows: string[][], columns: number | undefined): number {
  if (columns === undefined) return 60; // not a terminal: a fixed, readable width
  const fixed = headers.slice(0, -1).map((h, i) =>
    Math.max(visibleWidth(h), ...rows.map((r) => visibleWidth(r[i] ?? "")))
  ).reduce((a, b) => a + b + GAP.length, 0);
  return Math.max(20, columns - fixed);
}

/** Options of the job tables. */
export interface JobTableOptions {
  now: number;
  color: boolean;
  /** Terminal width to fit long commands into; undefined (not a terminal): 60 characters. */
  columns?: number;
}

/**
 * `attempts/allowed`, e.g. `2/4` for a job on its second attempt with 3 retries.
 */
export function formatAttempts(job: Pick<Job, "attempts" | "max_retries">): string {
  return `${job.attempts}/${job.max_retries + 1}`;
}

/**
 * When a job is due (pending or failed: its run_at, e.g. `in 2m`), or else when it last
 * changed (e.g. `3s ago`).
 */
export function jobWhen(job: Job, now: number): string {
  const due = job.state === "pending" || job.state === "failed";
  return formatRelative(due ? job.run_at : job.updated_at, now);
}

/** The `list` table: ID, STATE, ATTEMPTS, PRI, QUEUE, WHEN, COMMAND. */
export function jobsTable(jobs: Job[], options: JobTableOptions): string {
  const headers = ["ID", "STATE", "ATTEMPTS", "PRI", "QUEUE", "WHEN", "COMMAND"];
  const rows = jobs.map((j) => [
    j.id,
    formatState(j.state, options.color),
    formatAttempts(j),
    String(j.priority),
    j.queue,
    jobWhen(j, options.now),
    j.command,
  ]);
  return withLastColumnCut(headers, rows, options, ["left", "left", "right", "right"]);
}

/** The `dlq list` table: ID, ATTEMPTS, QUEUE, DIED, LAST ERROR, COMMAND. */
export function deadJobsTable(jobs: Job[], options: JobTableOptions): string {
  const headers = ["ID", "ATTEMPTS", "QUEUE", "DIED", "LAST ERROR", "COMMAND"];
  const rows = jobs.map((j) => [
    j.id,
    formatAttempts(j),
    j.queue,
    formatRelative(j.updated_at, options.now),
    truncate(j.last_error ?? "-", 40),
    j.command,
  ]);
  return withLastColumnCut(headers, rows, options, ["left", "right"]);
}

function withLastColumnCut(
  headers: string[],
  rows: string[][],
  options: JobTableOptions,
  align: Align[],
): string {
  const last = headers.length - 1;
  const max = room(headers, rows, options.columns);
  for (const r of rows) r[last] = truncate(r[last], max);
  return renderTable(headers, rows, { align, color: options.color });
}

/** How an attempt ended in a word or two: `exit 1`, `SIGKILL`, or `-`. */
export function formatExit(a: Pick<Attempt, "exit_code" | "signal">): string {
  if (a.signal) return a.signal;
  return a.exit_code === null ? "-" : `exit ${a.exit_code}`;
}

const OUTCOME_STYLES = {
  running: "cyan",
  succeeded: "green",
  failed: "yellow",
  timed_out: "yellow",
  killed: "red",
  spawn_failed: "red",
  aborted: "gray",
  lost: "red",
} as const;

/** The `show` attempts table: #, WORKER, STARTED, DURATION, OUTCOME, EXIT, ERROR, OUTPUT. */
export function attemptsTable(attempts: Attempt[], options: { now: number; color: boolean }) {
  const headers = ["#", "WORKER", "STARTED", "DURATION", "OUTCOME", "EXIT", "ERROR", "OUTPUT"];
  const rows = attempts.map((a) => [
    String(a.attempt),
    a.worker_id,
    formatRelative(a.started_at, options.now),
    a.outcome === "running"
      ? formatDuration(options.now - Date.parse(a.started_at)) + "…"
      : formatDuration(a.duration_ms),
    paint(a.outcome, OUTCOME_STYLES[a.outcome] ?? null, options.color),
    formatExit(a),
    truncate(a.error ?? "-", 40),
    a.output_path ?? "-",
  ]);
  return renderTable(headers, rows, {
    align: ["right", "left", "left", "right"],
    color: options.color,
  });
}

/** The workers table: ID, HOST, PID, SLOTS, RUNNING, HEARTBEAT, STATE. */
export function workersTable(workers: WorkerInfo[], options: { now: number; color: boolean }) {
  const headers = ["ID", "HOST", "PID", "SLOTS", "RUNNING", "HEARTBEAT", "STATE"];
  const rows = workers.map((w) => [
    w.id,
    w.host.split("/")[0],
    String(w.pid),
    String(w.slots),
    String(w.running),
    formatRelative(w.heartbeat_at, options.now),
    paint(w.state, w.state === "running" ? "green" : "yellow", options.color),
  ]);
  return renderTable(headers, rows, {
    align: ["left", "left", "right", "right", "right"],
    color: options.color,
  });
}
