/**
 * Process trees under fire: 200 jobs whose processes try every way of outliving their
 * attempt (background grandchildren, a `trap '' TERM`, a child that keeps the output pipe
 * open after `sh` exits), run by two real worker processes of four slots each.
 *
 * Each attempt must end within its bound (see `attemptBoundMs`: with a timeout, before the job's
 * timeout(1) backstop could act; when `sh` exits on its own, kill-grace + 1 s plus what
 * plain `true` jobs run beside them took), leave no process behind (every job process
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
/** Plain `true` jobs among the 200, every CONTROL_EVERY-th: the baseline of one attempt. */
const CONTROL_EVERY = 10;
/**
 * timeout(1) wraps a job that has a timeout and acts at timeout + kill-grace + 2 s
 * (src/pool/executor.ts launch): only if the worker's own timer and kill did not.
 */
const BACKSTOP_EXTRA_MS = 2000;
/** Fail if no job finishes for this long: far beyond any attempt's bound, far below 300 s. */
const STALL_MS = 60_000;
const CONTROLS = Math.ceil(JOBS / CONTROL_EVERY);

/**
 * The longest one attempt of `shape` may take; `baselineMs` is the slowest plain `true`
 * attempt of this run (spawn, reap and record on this machine, now, under this load).
 *
 * - With a timeout: before the job's timeout(1) backstop could act on its own. That is a
 *   condition, not a guess at the machine's speed: if the worker's own timer or SIGTERM
 *   failed, only timeout(1) (or the 300 s sleeps) could end the attempt, and not before
 *   that moment. A loaded machine has 2 s beyond timeout + kill-grace, twice the 1 s that
 *   came within milliseconds of failing at load 20+. (The worker's SIGKILL, which
 *   timeout(1) would stand in for 1 s later, is checked by `assertEscalation`.)
 * - Without one, `sh` exits at once and only the worker's cleanup ends what it left:
 *   1 s (and kill-grace for what ignores SIGTERM), plus twice the baseline, which grows with the load that
 *   slows the cleanup's own spawns and scans. A cleanup that regressed to seconds (as the
 *   /proc scan once did, ~1 s) still fails it; leftovers that were not killed at all fail
 *   the leftover check.
 */
function attemptBoundMs(shape: Shape, baselineMs: number): number {
  const graceMs = KILL_GRACE_S * 1000;
  if (shape.timeout !== null) return shape.timeout * 1000 + graceMs + BACKSTOP_EXTRA_MS;
  // Only what ignores SIGTERM waits out kill-grace.
  return (shape.command.includes("trap ''") ? graceMs : 0) + 1000 + 2 * baselineMs;
}

/**
 * SIGKILL after kill-grace, by the worker. The per-attempt bound cannot see it: timeout(1)
 * also SIGKILLs a job that ignores the SIGTERM it was sent, kill-grace + 1 s after it, so a
 * worker that never escalated would lose only that second, well inside a bound a loaded
 * machine can meet. So the `trap-term` shapes are held against `grandchildren` (same
 * timeout, dies of the SIGTERM) run by the same slots in the same minutes: the typical
 * (median) difference is kill-grace plus the grace wait's own delay when the worker kills,
 * kill-grace + 1 s when only timeout(1) does. The threshold sits halfway, and a median
 * ignores the odd attempt a load spike delays. And never before kill-grace: a lower bound,
 * which no load can break.
 */
function assertEscalation(byShape: Map<string, number[]>): void {
  const median = (ms: number[]) => [...ms].sort((a, b) => a - b)[Math.floor(ms.length / 2)];
  const graceMs = KILL_GRACE_S * 1000;
  const base = median(byShape.get("grandchildren")!);
  for (const name of ["trap-term", "trap-term-grandchildren"]) {
    const ms = byShape.get(name)!;
    const early = ms.filter((d) => d < TIMEOUT_S * 1000 + graceMs);
    assert.deepEqual(early, [], `${name}: SIGKILL before kill-grace`);
    const extra = median(ms) - base;
    assert.ok(
      extra < graceMs + 500,
      `${name}: median ${median(ms)} ms, ${extra} ms over grandchildren's: SIGKILL came from ` +
        `timeout(1) (kill-grace + 1 s), not the worker (kill-grace ${graceMs} ms)`,
    );
  }
}

/**
 * Waits until `progress` reaches `total`; fails only if the count it watches (the number of
 * finished jobs, from `progress`) stands still for `stallMs`, not after a fixed total time.
 */
async function waitProgress(
  progress: () => Promise<number>,
  total: number,
  { stallMs, what }: { stallMs: number; what: string },
): Promise<void> {
  let last = -1;
  let lastChange = performance.now();
  while (true) {
    const done = await progress();
    if (done === total) return;
    if (done !== last) [last, lastChange] = [done, performance.now()];
    if (performance.now() - lastChange > stallMs) {
      throw new Error(`no job finished for ${stallMs} ms waiting for ${what} (${done}/${total})`);
    }
    await new Promise((r) => setTimeout(r, 500));
  }
}

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
        const line = JSON.stringify({ id, command: shape.command, timeout_s: shape.timeout });
        // The baseline, run by the same slots among the others, under the same load.
        if (i % CONTROL_EVERY !== 0) return line;
        const control = JSON.stringify({ id: `${marker}control-${i}`, command: "true" });
        return `${control}\n${line}`;
      }).join("\n");
      const total = JOBS + CONTROLS;
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
      await waitProgress(
        async () => {
          const c = await status(home);
          return c.completed + c.dead;
        },
        total,
        { stallMs: STALL_MS, what: `all ${total} jobs final` },
      );
      const elapsed = performance.now() - started;

      // Nothing of theirs is left: the worker reports an attempt only once its group is gone.
      const left = leftovers(marker);
      assert.deepEqual(left, [], `processes left behind: ${JSON.stringify(left.slice(0, 5))}`);

      // Each attempt ended as its shape says, within its bound, exactly once.
      const all = attemptRows(home).filter((r) => r.job_id.startsWith(marker));
      assert.equal(all.length, total, "one attempt per job");
      const controls = all.filter((r) => !shapeOf.has(r.job_id));
      assert.equal(controls.length, CONTROLS);
      assert.ok(controls.every((r) => r.outcome === "succeeded"), JSON.stringify(controls));
      const baselineMs = Math.max(...controls.map((r) => r.duration_ms ?? Infinity));
      const rows = all.filter((r) => shapeOf.has(r.job_id));
      const byShape = new Map<string, number[]>();
      const problems: string[] = [];
      for (const row of rows) {
        const shape = shapeOf.get(row.job_id)!;
        const boundMs = attemptBoundMs(shape, baselineMs);
        const list = byShape.get(shape.name) ?? [];
        list.push(row.duration_ms ?? Infinity);
        byShape.set(shape.name, list);
        if (row.outcome !== shape.outcome) {
          problems.push(
            `${row.job_id}: outcome ${row.outcome} (${row.error}), want ${shape.outcome}`,
          );
        }
        // `>=`: timeout(1) acts no sooner than the bound, after the spawn the time counts from.
        if (row.duration_ms === null || row.duration_ms >= boundMs) {
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
          `slots; attempt ms p50/p90/max by shape: ${summary.join(", ")}; ` +
          `slowest of ${CONTROLS} plain \`true\` attempts ${baselineMs} ms`,
      );
      assert.deepEqual(problems.slice(0, 10), [], `${problems.length} problem(s)`);
      assertEscalation(byShape);

      // No slot hung: all eight take new work at once. Each probe holds its slot until the
      // gate opens, so "eight running at one instant" is a condition that comes however
      // slowly the slots claim; a hung slot never takes one, so the wait (a free slot claims
      // within its 1 s poll) runs out only then.
      const gate = join(home, "probe-gate");
      const probe = Array.from({ length: WORKERS * SLOTS }, (_, i) =>
        JSON.stringify({
          id: `${marker}probe-${i}`,
          command: `while [ ! -e ${gate} ]; do sleep 0.05; done`,
        })).join("\n");
      assert.equal((await runCli(home, ["enqueue", "-"], { stdin: probe })).code, 0);
      await waitFor(async () => (await status(home)).processing === WORKERS * SLOTS, {
        timeoutMs: STALL_MS,
        intervalMs: 100,
        what: `${WORKERS * SLOTS} probe jobs running at once`,
      });
      Deno.writeTextFileSync(gate, "");
      const succeeded = all.filter((r) => r.outcome === "succeeded").length;
      await waitFor(async () => (await status(home)).completed === succeeded + WORKERS * SLOTS, {
        timeoutMs: STALL_MS,
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
