/**
 * Process trees under fire: 200 jobs whose processes try every way of outliving their
 * attempt (background grandchildren, a `trap '' TERM`, a child that keeps the output pipe
 * open after `sh` exits), run by two real worker processes of four slots each.
 *
 * Each attempt must end within its bound (timeout + kill-grace + 1 s with a timeout;
 * kill-grace + 1 s when `sh` exits on its own), leave no process behind (every job process
 * inherits `QUEUECTL_JOB_ID`, and the ids carry a marker unique to this run, so a /proc scan
 * finds exactly this run's processes), and never hang a slot (all 200 reach a final state,
 * and all eight slots take new work afterwards).
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import { DatabaseSync } from "node:sqlite";
import { cleanup, json, runCli, spawnCli, tempHome, waitFor } from "../helpers.ts";

const JOBS = 200;
const WORKERS = 2;
const SLOTS = 4;
const TIMEOUT_S = 1;
const KILL_GRACE_S = 0.5;
/**
 * What an attempt may take beyond timeout + kill-grace (the bound the issue sets: 1 s).
 * `QUEUECTL_PTREE_SLACK_MS` overrides it, only to see what else a run would find.
 */
const SLACK_MS = Number(Deno.env.get("QUEUECTL_PTREE_SLACK_MS") ?? 1000);

interface Shape {
  name: string;
  command: string;
  /** The job's timeout_s, or null for none (then `sh` exits by itself). */
  timeout: number | null;
  /** The outcome the attempt must have. */
  outcome: "timed_out" | "succeeded";
}

/**
 * The shapes. With a timeout: `sh` itself stays (wait, or ignores SIGTERM), so the
 * timeout must end it; or `sh` exits at once and leaves a child holding the pipe. Without
 * a timeout: `sh` exits at once and the attempt must end quickly all the same, its
 * leftovers killed (those ignoring SIGTERM after kill-grace).
 */
const SHAPES: Shape[] = [
  {
    name: "grandchildren",
    command: "sleep 300 & sleep 300 & wait",
    timeout: TIMEOUT_S,
    outcome: "timed_out",
  },
  {
    name: "trap-term",
    command: "trap '' TERM; sleep 300",
    timeout: TIMEOUT_S,
    outcome: "timed_out",
  },
  {
    name: "trap-term-grandchildren",
    command: "trap '' TERM; sleep 300 & sleep 300; wait",
    timeout: TIMEOUT_S,
    outcome: "timed_out",
  },
  {
    name: "subshell-holds-pipe",
    command: "(sleep 300 &) ; echo bye",
    timeout: TIMEOUT_S,
    outcome: "succeeded",
  },
  {
    name: "bg-holds-pipe",
    command: "sleep 300 >&1 & echo bye",
    timeout: TIMEOUT_S,
    outcome: "succeeded",
  },
  {
    name: "exit-leaves-grandchildren",
    command: "sleep 300 & sleep 300 & echo started",
    timeout: null,
    outcome: "succeeded",
  },
  {
    name: "exit-leaves-term-ignorers",
    command: "trap '' TERM; sleep 300 & sleep 300 >&2 & echo started",
    timeout: null,
    outcome: "succeeded",
  },
  {
    name: "exit-subshell-holds-pipe",
    command: "(sleep 300 &) ; echo bye",
    timeout: null,
    outcome: "succeeded",
  },
  { name: "exit-bg-holds-pipe", command: "sleep 300 >&1 &", timeout: null, outcome: "succeeded" },
  {
    name: "exit-stderr-holder",
    command: "(trap '' TERM; exec sleep 300 >/dev/null) 2>&1 & echo x >&2",
    timeout: null,
    outcome: "succeeded",
  },
];

/** A prefix unique to this run: job ids start with it, so /proc scans see only ours. */
function runMarker(): string {
  const hex = [...crypto.getRandomValues(new Uint8Array(4))]
    .map((b) => b.toString(16).padStart(2, "0")).join("");
  return `pt${hex}-`;
}

interface Leftover {
  pid: number;
  jobId: string;
  state: string;
  cmdline: string;
}

/**
 * Live processes (zombies excepted: PID 1 here reaps only every ~2 s) whose environment
 * has a `QUEUECTL_JOB_ID` starting with `marker`. Tests run with -A, so /proc is readable.
 */
function leftovers(marker: string): Leftover[] {
  const found: Leftover[] = [];
  const dec = new TextDecoder();
  for (const entry of Deno.readDirSync("/proc")) {
    if (!/^\d+$/.test(entry.name)) continue;
    const pid = Number(entry.name);
    try {
      const env = dec.decode(Deno.readFileSync(`/proc/${pid}/environ`)).split("\0");
      const jobId = env.find((v) => v.startsWith("QUEUECTL_JOB_ID="))?.slice(16);
      if (jobId === undefined || !jobId.startsWith(marker)) continue;
      const stat = Deno.readTextFileSync(`/proc/${pid}/stat`);
      const state = stat.slice(stat.lastIndexOf(")") + 2)[0];
      if (state === "Z" || state === "X") continue;
      const cmdline = dec.decode(Deno.readFileSync(`/proc/${pid}/cmdline`)).replaceAll("\0", " ");
      found.push({ pid, jobId, state, cmdline: cmdline.trim() });
    } catch { /* it ended while we looked */ }
  }
  return found;
}

/** SIGKILLs what a failed run left, so one failure does not leak 300-second sleeps. */
function killLeftovers(marker: string): void {
  for (const p of leftovers(marker)) {
    try {
      Deno.kill(p.pid, "SIGKILL");
    } catch { /* gone */ }
  }
}

/** Accumulates a stream's text as it arrives. */
function collect(stream: ReadableStream<Uint8Array>): { text: string } {
  const sink = { text: "" };
  (async () => {
    for await (const chunk of stream.pipeThrough(new TextDecoderStream())) sink.text += chunk;
  })().catch(() => {});
  return sink;
}

interface AttemptRow {
  job_id: string;
  attempt: number;
  outcome: string;
  duration_ms: number | null;
  error: string | null;
}

/** Every attempt of this run's jobs, read straight from the store. */
function attemptRows(home: string): AttemptRow[] {
  const db = new DatabaseSync(join(home, "queue.db"), { readOnly: true });
  try {
    db.exec("PRAGMA busy_timeout = 10000");
    return db.prepare(
      "SELECT job_id, attempt, outcome, duration_ms, error FROM attempts ORDER BY job_id, attempt",
    ).all() as unknown as AttemptRow[];
  } finally {
    db.close();
  }
}

type Counts = Record<string, number>;
const status = async (home: string) =>
  json<{ counts: Counts }>(await runCli(home, ["status", "--json"])).counts;

Deno.test({
  name: "process trees: 200 jobs that try to outlive their attempt end in bound, leave nothing",
  // The workers' stderr pumps end with the workers, which the test stops itself.
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    const home = await tempHome("queuectl-ptree-");
    const marker = runMarker();
    const workers: Deno.ChildProcess[] = [];
    const logs: { text: string }[] = [];
    try {
      for (const [key, value] of [["kill-grace", String(KILL_GRACE_S)], ["max-retries", "0"]]) {
        const r = await runCli(home, ["config", "set", key, value]);
        assert.equal(r.code, 0, r.stderr);
      }
      const shapeOf = new Map<string, Shape>();
      const lines = Array.from({ length: JOBS }, (_, i) => {
        const shape = SHAPES[i % SHAPES.length];
        const id = `${marker}${shape.name}-${i}`;
        shapeOf.set(id, shape);
        return JSON.stringify({ id, command: shape.command, timeout_s: shape.timeout });
      }).join("\n");
      const enq = await runCli(home, ["enqueue", "-"], { stdin: lines });
      assert.equal(enq.code, 0, enq.stderr);

      for (let i = 0; i < WORKERS; i++) {
        const w = spawnCli(home, ["worker", "start", "--count", String(SLOTS)], {
          stderr: "piped",
        });
        workers.push(w);
        logs.push(collect(w.stderr));
      }
      const started = performance.now();
      await waitFor(async () => {
        const c = await status(home);
        return c.completed + c.dead === JOBS;
      }, { timeoutMs: 240_000, intervalMs: 500, what: `all ${JOBS} jobs final` });
      const elapsed = performance.now() - started;

      // Nothing of theirs is left: the worker reports an attempt only once its group is gone.
      const left = leftovers(marker);
      assert.deepEqual(left, [], `processes left behind: ${JSON.stringify(left.slice(0, 5))}`);

      // Each attempt ended as its shape says, within its bound, exactly once.
      const rows = attemptRows(home).filter((r) => r.job_id.startsWith(marker));
      assert.equal(rows.length, JOBS, "one attempt per job");
      const byShape = new Map<string, number[]>();
      const problems: string[] = [];
      for (const row of rows) {
        const shape = shapeOf.get(row.job_id)!;
        const boundMs = (shape.timeout === null ? 0 : shape.timeout * 1000) +
          KILL_GRACE_S * 1000 + SLACK_MS;
        const list = byShape.get(shape.name) ?? [];
        list.push(row.duration_ms ?? Infinity);
        byShape.set(shape.name, list);
        if (row.outcome !== shape.outcome) {
          problems.push(
            `${row.job_id}: outcome ${row.outcome} (${row.error}), want ${shape.outcome}`,
          );
        }
        if (row.duration_ms === null || row.duration_ms > boundMs) {
          problems.push(`${row.job_id}: took ${row.duration_ms} ms, bound ${boundMs} ms`);
        }
      }
      const summary = [...byShape].map(([name, ms]) => {
        ms.sort((a, b) => a - b);
        const at = (q: number) => ms[Math.min(ms.length - 1, Math.floor(q * ms.length))];
        return `${name} ${at(0.5)}/${at(0.9)}/${ms.at(-1)}`;
      });
      console.log(
        `process trees: ${JOBS} jobs in ${(elapsed / 1000).toFixed(1)} s on ${WORKERS}x${SLOTS} ` +
          `slots; attempt ms p50/p90/max by shape: ${summary.join(", ")}`,
      );
      assert.deepEqual(problems.slice(0, 10), [], `${problems.length} problem(s)`);

      // No slot hung: all eight take new work at once.
      const probe = Array.from(
        { length: WORKERS * SLOTS },
        (_, i) => JSON.stringify({ id: `${marker}probe-${i}`, command: "sleep 2" }),
      ).join("\n");
      assert.equal((await runCli(home, ["enqueue", "-"], { stdin: probe })).code, 0);
      await waitFor(async () => (await status(home)).processing === WORKERS * SLOTS, {
        timeoutMs: 30_000,
        intervalMs: 100,
        what: `${WORKERS * SLOTS} probe jobs running at once`,
      });
      const succeeded = rows.filter((r) => r.outcome === "succeeded").length;
      await waitFor(async () => (await status(home)).completed === succeeded + WORKERS * SLOTS, {
        timeoutMs: 60_000,
        intervalMs: 200,
        what: "probe jobs completed",
      });

      const stop = await runCli(home, ["worker", "stop", "--wait"]);
      assert.equal(stop.code, 0, stop.stderr);
      for (const [i, w] of workers.entries()) {
        assert.equal((await w.status).code, 0, logs[i].text);
      }
      assert.deepEqual(leftovers(marker), []);
    } finally {
      for (const w of workers) {
        try {
          w.kill("SIGKILL");
        } catch { /* already exited */ }
        await w.status;
      }
      killLeftovers(marker);
      await cleanup(home);
    }
  },
});
