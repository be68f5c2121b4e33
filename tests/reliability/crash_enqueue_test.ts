/**
 * Crash during writes: `kill -9` the real CLI during a bulk enqueue (one transaction) at
 * many moments (while it starts and parses, while the transaction spills pages into the
 * WAL, while it prints the ids after the commit, and at times spread over a whole run),
 * then check:
 *
 * - every id it acknowledged (printed on stdout, which happens only after the commit) is in
 *   the store;
 * - the batch is all or nothing: either every job of it is there or none is;
 * - `PRAGMA integrity_check` says ok, what was there before is still there, and the store
 *   takes new writes.
 *
 * Default: 20 kills of a 100,000-job batch (about 30 s here). `QUEUECTL_SOAK=1` makes it
 * 100 kills. `QUEUECTL_CRASH_JOBS=N` changes the batch size.
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import { DatabaseSync } from "node:sqlite";
import { cleanup, CLI, CLI_FLAGS, envInt, tempHome } from "../helpers.ts";
import { openQueue } from "../../src/queue.ts";

const SOAK = Deno.env.get("QUEUECTL_SOAK") === "1";
const JOBS = envInt("QUEUECTL_CRASH_JOBS", 100_000);
const ROUNDS = SOAK ? 100 : 20;

/** When a round sends SIGKILL. */
type Trigger =
  /** `ms` after spawn (start-up, reading, parsing: before the transaction). */
  | { kind: "at"; ms: number }
  /** `ms` after the WAL file first grows: the transaction is writing pages. */
  | { kind: "wal"; ms: number }
  /** On the first bytes on stdout: committed, printing the ids. */
  | { kind: "stdout" };

/** A batch's JSON Lines: ids `<batch>-000000` …, queue `<batch>` to count it by. */
function batchLines(batch: string, n: number): Uint8Array {
  const parts: string[] = [];
  for (let i = 0; i < n; i++) {
    const id = `${batch}-${String(i).padStart(6, "0")}`;
    parts.push(`{"id":"${id}","command":"echo ${i}","queue":"${batch}","priority":${i % 7}}`);
  }
  return new TextEncoder().encode(parts.join("\n") + "\n");
}

/** A small seeded PRNG (mulberry32), so a failing run can be replayed. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function fileSize(path: string): number {
  try {
    return Deno.statSync(path).size;
  } catch {
    return 0;
  }
}

interface RoundResult {
  trigger: string;
  /** ms from spawn to the kill (or to a natural exit). */
  killedAtMs: number;
  /** The process had already exited with 0 before the kill landed. */
  finished: boolean;
  acknowledged: number;
  present: number;
}

/** Runs one enqueue of `input` and kills it at `trigger`. */
async function crashOnce(
  home: string,
  input: { file: string; viaStdin: boolean; bytes: Uint8Array },
  trigger: Trigger,
): Promise<{ stdout: string; killedAtMs: number; finished: boolean }> {
  const args = input.viaStdin ? ["enqueue", "-"] : ["enqueue", "--file", input.file];
  const t0 = performance.now();
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", ...CLI_FLAGS, CLI, "--home", home, ...args],
    stdin: input.viaStdin ? "piped" : "null",
    stdout: "piped",
    stderr: "piped",
    env: { NO_COLOR: "1" },
  }).spawn();
  if (input.viaStdin) {
    const writer = child.stdin.getWriter();
    // The kill may land while we still write: a broken pipe is expected then.
    writer.write(input.bytes).then(() => writer.close()).catch(() => {});
  }
  let exited = false;
  const status = child.status.then((s) => {
    exited = true;
    return s;
  });
  // Read stdout as it comes, to see the first acknowledged id.
  const chunks: Uint8Array[] = [];
  let sawStdout: () => void = () => {};
  const firstStdout = new Promise<void>((resolve) => (sawStdout = resolve));
  const reading = (async () => {
    for await (const chunk of child.stdout) {
      chunks.push(chunk);
      sawStdout();
    }
  })();
  const stderr = new Response(child.stderr).text();

  let killedAtMs = 0;
  const kill = () => {
    killedAtMs = performance.now() - t0;
    try {
      child.kill("SIGKILL");
    } catch { /* already exited */ }
  };
  const wal = join(home, "queue.db-wal");
  if (trigger.kind === "at") {
    await Promise.race([new Promise((r) => setTimeout(r, trigger.ms)), status]);
  } else if (trigger.kind === "wal") {
    // Poll the WAL: it is empty until the transaction spills pages into it.
    while (!exited && fileSize(wal) === 0) await new Promise((r) => setTimeout(r, 1));
    if (trigger.ms > 0) await Promise.race([new Promise((r) => setTimeout(r, trigger.ms)), status]);
  } else {
    await Promise.race([firstStdout, status]);
  }
  const finished = exited;
  if (!exited) kill();
  else killedAtMs = performance.now() - t0;
  const s = await status;
  await reading;
  const err = await stderr;
  if (finished) assert.equal(s.code, 0, `an enqueue that was not killed failed: ${err}`);
  else if (s.code !== 0) assert.equal(s.signal, "SIGKILL", `unexpected end: ${s.code} ${err}`);
  const bytes = new Uint8Array(chunks.reduce((n, c) => n + c.length, 0));
  let at = 0;
  for (const c of chunks) {
    bytes.set(c, at);
    at += c.length;
  }
  return { stdout: new TextDecoder().decode(bytes), killedAtMs, finished };
}

/** Checks the store after a crash; returns how many jobs of `batch` are there. */
function verify(home: string, batch: string, acknowledged: string[]): number {
  const db = new DatabaseSync(join(home, "queue.db"));
  try {
    // Opening read-write lets SQLite recover the WAL left by the killed process.
    const integrity = db.prepare("PRAGMA integrity_check").all() as { integrity_check: string }[];
    assert.deepEqual(integrity.map((r) => r.integrity_check), ["ok"], "integrity_check");
    assert.deepEqual(db.prepare("PRAGMA foreign_key_check").all(), [], "foreign_key_check");
    const { n, lo, hi } = db.prepare(
      "SELECT count(*) AS n, min(id) AS lo, max(id) AS hi FROM jobs WHERE queue = ?",
    ).get(batch) as { n: number; lo: string | null; hi: string | null };
    assert.ok(n === 0 || n === JOBS, `all or nothing: ${n} of ${JOBS} jobs of ${batch} present`);
    if (n === JOBS) {
      assert.equal(lo, `${batch}-000000`);
      assert.equal(hi, `${batch}-${String(JOBS - 1).padStart(6, "0")}`);
    }
    const has = db.prepare("SELECT 1 AS x FROM jobs WHERE id = ?");
    for (const id of acknowledged) {
      assert.ok(has.get(id), `acknowledged id ${JSON.stringify(id)} is missing`);
    }
    assert.ok(has.get("keep-before"), "the job enqueued before the crash survived");
    return n;
  } finally {
    db.close();
  }
}

Deno.test({
  name: `crash: kill -9 during a ${JOBS.toLocaleString("en")}-job bulk enqueue, ${ROUNDS} times`,
  fn: async () => {
    const seed = envInt("QUEUECTL_CRASH_SEED", Date.now() % 1_000_000, { min: 0 });
    console.log(`crash test seed ${seed} (QUEUECTL_CRASH_SEED=${seed} replays the timings)`);
    const random = prng(seed);
    const dir = await tempHome("queuectl-crash-");
    const results: RoundResult[] = [];
    const started = performance.now();
    try {
      // Calibrate: how long a whole run takes here and now (the machine is shared).
      const inputs = new Map<string, { file: string; bytes: Uint8Array }>();
      const inputFor = (batch: string) => {
        let input = inputs.get(batch);
        if (!input) {
          const bytes = batchLines(batch, JOBS);
          const file = join(dir, `${batch}.jsonl`);
          Deno.writeFileSync(file, bytes);
          input = { file, bytes };
          inputs.clear(); // keep one batch in memory
          inputs.set(batch, input);
        }
        return input;
      };
      const newHome = async (name: string) => {
        const home = join(dir, name);
        const queue = await openQueue({ home, db: null });
        try {
          await queue.enqueue([{ id: "keep-before", command: "true" }]);
        } finally {
          queue.close(); // the last connection checkpoints: the WAL starts empty
        }
        return home;
      };
      const calHome = await newHome("calibrate");
      const cal = await crashOnce(calHome, { ...inputFor("cal"), viaStdin: false }, {
        kind: "stdout",
      });
      const fullMs = cal.killedAtMs * 1.3; // time to the first id, plus the printing
      await cleanup(calHome);
      console.log(`calibration: ${Math.round(cal.killedAtMs)} ms to the first acknowledged id`);

      for (let round = 0; round < ROUNDS; round++) {
        const batch = `b${String(round).padStart(3, "0")}`;
        // A quarter each: start-up/parsing, inside the transaction, printing, anywhere.
        const trigger: Trigger = [
          (): Trigger => ({ kind: "at", ms: Math.round(random() * fullMs * 0.5) }),
          (): Trigger => ({ kind: "wal", ms: Math.round(random() * fullMs * 0.3) }),
          (): Trigger => ({ kind: "stdout" }),
          (): Trigger => ({ kind: "at", ms: Math.round(random() * fullMs * 1.2) }),
        ][round % 4]();
        const home = await newHome(batch);
        const viaStdin = round % 2 === 1;
        const r = await crashOnce(home, { ...inputFor(batch), viaStdin }, trigger);
        // Only whole lines are acknowledged ids; a cut last line is not.
        const lines = r.stdout.split("\n");
        const acknowledged = lines.slice(0, -1);
        for (const id of acknowledged) assert.match(id, new RegExp(`^${batch}-\\d{6}$`));
        const present = verify(home, batch, acknowledged);
        if (acknowledged.length) assert.equal(present, JOBS, "acknowledged means all");
        if (r.finished) assert.equal(acknowledged.length, JOBS, "a finished run printed all");
        // The store takes new writes after the crash.
        const queue = await openQueue({ home, db: null });
        try {
          await queue.enqueue([{ id: "after-crash", command: "true" }]);
        } finally {
          queue.close();
        }
        results.push({
          trigger: trigger.kind === "stdout" ? "stdout" : `${trigger.kind}+${trigger.ms}ms`,
          killedAtMs: Math.round(r.killedAtMs),
          finished: r.finished,
          acknowledged: acknowledged.length,
          present,
        });
        await cleanup(home);
      }
    } finally {
      await cleanup(dir);
    }
    const seconds = ((performance.now() - started) / 1000).toFixed(1);
    console.log(`${ROUNDS} rounds of ${JOBS} jobs in ${seconds} s (stdin on odd rounds):`);
    for (const r of results) {
      const outcome = r.finished
        ? "finished before the kill"
        : r.present
        ? `committed, ${r.acknowledged} acknowledged`
        : "rolled back";
      console.log(
        `  ${r.trigger.padEnd(12)} killed at ${String(r.killedAtMs).padStart(5)} ms: ${outcome}`,
      );
    }
    // The triggers must have hit both sides of the commit.
    assert.ok(results.some((r) => r.present === 0), "some kill landed before the commit");
    assert.ok(results.some((r) => r.present === JOBS && !r.finished), "some kill after it");
    assert.ok(
      results.some((r) => r.trigger.startsWith("wal") && r.present === 0),
      "some kill landed inside the transaction (WAL growing) and rolled back",
    );
  },
});
