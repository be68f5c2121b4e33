/**
 * Unit tests of the human-output formatters: durations, relative times, truncation, table
 * alignment and the colour rules.
 */

import assert from "node:assert/strict";
import {
  formatBytes,
  formatDuration,
  formatRelative,
  formatState,
  formatTimestamp,
  paint,
  shouldColor,
  stripAnsi,
  truncate,
  visibleWidth,
} from "../src/output/format.ts";
import {
  formatAttempts,
  jobsTable,
  renderFields,
  renderTable,
  workersTable,
} from "../src/output/table.ts";
import type { Job } from "../src/job.ts";
import type { WorkerInfo } from "../src/store/store.ts";

const NOW = Date.parse("2026-01-31T12:00:00Z");
const S = 1000;
const M = 60 * S;
const H = 60 * M;
const D = 24 * H;

Deno.test("formatDuration: one or two units, truncated, never rounded up", () => {
  const cases: Array<[number | null, string]> = [
    [0, "0ms"],
    [850, "850ms"],
    [999.9, "999ms"],
    [1000, "1s"],
    [1500, "1.5s"],
    [9_999, "9.9s"],
    [12_000, "12s"],
    [59_999, "59s"],
    [60_000, "1m 00s"],
    [3 * M + 5 * S, "3m 05s"],
    [2 * H + 10 * M + 59 * S, "2h 10m"],
    [2 * H + 5 * M, "2h 05m"],
    [3 * D + 4 * H + 30 * M, "3d 4h"],
    [null, "-"],
    [-5, "-"],
    [NaN, "-"],
  ];
  for (const [ms, want] of cases) assert.equal(formatDuration(ms), want, `${ms}`);
});

Deno.test("formatRelative: past as 'ago', future as 'in', within a second 'now'", () => {
  assert.equal(formatRelative(NOW - 3 * S, NOW), "3s ago");
  assert.equal(formatRelative(NOW + 2 * M + 10 * S, NOW), "in 2m");
  assert.equal(formatRelative(NOW - 2 * H - 10 * M, NOW), "2h 10m ago");
  assert.equal(formatRelative(NOW + 3 * D + 4 * H, NOW), "in 3d 4h");
  assert.equal(formatRelative(NOW - 400, NOW), "now");
  assert.equal(formatRelative(NOW + 999, NOW), "now");
  assert.equal(formatRelative("2026-01-31T11:59:48.000Z", NOW), "12s ago");
  assert.equal(formatRelative(null, NOW), "-");
  assert.equal(formatRelative("not a time", NOW), "-");
});

Deno.test("formatTimestamp: ISO to the second with the relative form", () => {
  assert.equal(formatTimestamp("2026-01-31T11:59:57.123Z", NOW), "2026-01-31T11:59:57Z (2s ago)");
  assert.equal(formatTimestamp(null, NOW), "-");
});

Deno.test("formatBytes: binary units", () => {
  assert.equal(formatBytes(512), "512 B");
  assert.equal(formatBytes(1024), "1 KiB");
  assert.equal(formatBytes(1536), "1.5 KiB");
  assert.equal(formatBytes(10 * 1024 * 1024), "10 MiB");
  assert.equal(formatBytes(2 ** 30), "1 GiB");
  assert.equal(formatBytes(null), "-");
});

Deno.test("truncate: one line, at most max code points, ending in …", () => {
  assert.equal(truncate("echo hi", 10), "echo hi");
  assert.equal(truncate("0123456789abc", 10), "012345678…");
  assert.equal(Array.from(truncate("x".repeat(500), 40)).length, 40);
  assert.equal(truncate("a\n  b\tc", 10), "a b c");
  // Code points, not UTF-16 units: an emoji is not cut in half.
  assert.equal(truncate("😀😀😀😀", 3), "😀😀…");
  assert.equal(truncate("abc", 0), "");
});

Deno.test("shouldColor: only on a terminal, never with NO_COLOR (any value)", () => {
  assert.equal(shouldColor({ isTerminal: true, noColor: undefined }), true);
  assert.equal(shouldColor({ isTerminal: true, noColor: "1" }), false);
  assert.equal(shouldColor({ isTerminal: true, noColor: "" }), false);
  assert.equal(shouldColor({ isTerminal: true, noColor: "false" }), false);
  assert.equal(shouldColor({ isTerminal: false, noColor: undefined }), false);
});

Deno.test("paint and formatState: ANSI codes only when colour is on", () => {
  assert.equal(paint("x", "red", false), "x");
  assert.equal(paint("x", null, true), "x");
  assert.equal(paint("x", "red", true), "\x1b[31mx\x1b[0m");
  assert.equal(formatState("completed", true), "\x1b[32mcompleted\x1b[0m");
  assert.equal(formatState("dead", true), "\x1b[31mdead\x1b[0m");
  assert.equal(formatState("failed", true), "\x1b[33mfailed\x1b[0m");
  assert.equal(formatState("processing", true), "\x1b[36mprocessing\x1b[0m");
  assert.equal(formatState("dead", false), "dead");
  assert.equal(visibleWidth(formatState("completed", true)), "completed".length);
});

Deno.test("renderTable: columns aligned, right alignment, no trailing spaces", () => {
  const out = renderTable(
    ["ID", "N", "NAME"],
    [["a", "5", "first"], ["longer-id", "1234", "x"]],
    { align: ["left", "right"] },
  );
  assert.equal(
    out,
    "ID            N  NAME\n" +
      "a             5  first\n" +
      "longer-id  1234  x\n",
  );
  for (const line of out.split("\n")) assert.equal(line, line.trimEnd());
});

Deno.test("renderTable: colour codes do not disturb alignment", () => {
  const rows = [["a", "dead", "x"], ["bb", "completed", "y"]];
  const plain = renderTable(["ID", "STATE", "C"], rows);
  const colored = renderTable(
    ["ID", "STATE", "C"],
    rows.map(([id, state, c]) => [id, formatState(state as "dead", true), c]),
    { color: true },
  );
  assert.notEqual(colored, plain);
  assert.equal(stripAnsi(colored), plain);
});

Deno.test("renderFields: labels padded, continuation lines indented", () => {
  assert.equal(
    renderFields([["id", "a"], ["command", "echo 1\necho 2"]]),
    "id       a\ncommand  echo 1\n         echo 2\n",
  );
});

function job(overrides: Partial<Job>): Job {
  return {
    id: "j1",
    command: "true",
    state: "pending",
    attempts: 0,
    max_retries: 3,
    priority: 0,
    run_at: new Date(NOW + 2 * M).toISOString(),
    timeout_s: null,
    queue: "default",
    cwd: null,
    created_at: new Date(NOW - H).toISOString(),
    updated_at: new Date(NOW - 5 * S).toISOString(),
    last_error: null,
    exit_code: null,
    ...overrides,
  };
}

Deno.test("jobsTable: attempts n/max+1, due time for pending, age for others, cut commands", () => {
  const long = "echo " + "x".repeat(300);
  const out = jobsTable([
    job({ id: "p", command: long }),
    job({ id: "c", state: "completed", attempts: 2 }),
  ], { now: NOW, color: false });
  const [header, p, c] = out.trimEnd().split("\n");
  assert.match(header, /^ID\s+STATE\s+ATTEMPTS\s+PRI\s+QUEUE\s+WHEN\s+COMMAND$/);
  assert.match(p, /^p\s+pending\s+0\/4\s+0\s+default\s+in 2m\s+echo x+…$/);
  assert.match(c, /^c\s+completed\s+2\/4\s+0\s+default\s+5s ago\s+true$/);
  assert.equal(Array.from(p.split(/\s{2,}/).at(-1)!).length, 60); // not a terminal: 60
  // On a terminal the line fits its width.
  const narrow = jobsTable([job({ command: long })], { now: NOW, color: false, columns: 100 });
  for (const line of narrow.trimEnd().split("\n")) assert.ok(visibleWidth(line) <= 100, line);
  assert.equal(formatAttempts({ attempts: 1, max_retries: 0 }), "1/1");
});

Deno.test("workersTable: host before '/', heartbeat age", () => {
  const worker: WorkerInfo = {
    id: "w-1",
    host: "box/pidns:4026531836/boot:abc",
    pid: 42,
    slots: 3,
    queues: null,
    started_at: new Date(NOW - H).toISOString(),
    heartbeat_at: new Date(NOW - 2 * S).toISOString(),
    state: "running",
    running: 1,
    start_ticks: 1234,
  };
  const [, row] = workersTable([worker], { now: NOW, color: false }).trimEnd().split("\n");
  assert.match(row, /^w-1\s+box\s+42\s+3\s+1\s+2s ago\s+running$/);
});
