/**
 * Fuzzing the command line: generated and mutated enqueue JSON and JSON Lines (argument,
 * stdin, file), `--` form flags, config keys and values, ids with odd characters, fields
 * megabytes long, invalid UTF-8 bytes. Every input must:
 *
 * - exit 0 (accepted) or 2 (rejected); 1 or a crash fails the test;
 * - on rejection print exactly one line on stderr, `queuectl: cannot …`, and no stack trace
 *   (nor a stack trace on success);
 * - on rejection leave the store as it was: row count and content checksum of jobs,
 *   attempts and workers, SQLite's data_version, and the bytes of config.json.
 *
 * Thousands of inputs run in this process through `main(args, io)` (a CLI process costs
 * about 100 ms); a sample of a few hundred also runs through real CLI processes with the
 * shipped permission flags, against a twin data directory fed the same inputs in the same
 * order, and must give the same exit code and stderr.
 *
 * Every accepted enqueue, whatever its form (mutated, the `--` form, `--json`), and on both
 * sides of the process comparison, must print exactly the ids it added, each stored as it
 * was given (the round trip, fuzz_oracle.ts); a few accepted inputs of each form always
 * run, so every form is checked however few inputs a run draws.
 *
 * The generator is a seeded PRNG: the seed is printed; `QUEUECTL_FUZZ_SEED=S` replays a
 * run, `QUEUECTL_FUZZ_N=N` sets the number of in-process inputs (default 10,000),
 * `QUEUECTL_FUZZ_PROCESS_N` the process sample (default 200); each must be >= 1, and the
 * test asserts it ran exactly that many.
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import { main } from "../../cli.ts";
import { cleanup, CLI, CLI_FLAGS, envInt, tempHome } from "../helpers.ts";
import { type Case, generate, Rng } from "./fuzz_inputs.ts";
import { roundTrip, type Sources } from "./fuzz_oracle.ts";
import { fuzzDir, killSome, seedHome, StoreWatch } from "./fuzz_store.ts";

const N = envInt("QUEUECTL_FUZZ_N", 10_000);
const PROCESS_N = envInt("QUEUECTL_FUZZ_PROCESS_N", 200);
const SEED = envInt("QUEUECTL_FUZZ_SEED", Date.now() % 1_000_000_007, { min: 0 });

interface Result {
  code: number;
  stdout: string;
  stderr: string;
}

function materialize(
  c: Case,
  dir: string,
): { args: string[]; stdin?: Uint8Array; sources: Sources } {
  const file = join(dir, "input.jsonl");
  if (c.file) Deno.writeFileSync(file, c.file);
  const args = c.args.map((a) =>
    a.replaceAll("@FILE@", file).replaceAll("@MISSING@", join(dir, "missing.jsonl"))
  );
  const sources = { stdin: c.stdin, file: c.file && { path: file, bytes: c.file } };
  return { args, stdin: c.stdin, sources };
}

/** The store's ids before an enqueue runs, to see what it added (null for other commands). */
function idsBefore(args: string[], watch: StoreWatch): Set<string> | null {
  return args[0] === "enqueue" ? watch.ids() : null;
}

/** The round trip of an accepted enqueue (see fuzz_oracle.ts); null otherwise. */
async function checkRoundTrip(
  args: string[],
  sources: Sources,
  result: Result,
  watch: StoreWatch,
  before: Set<string> | null,
): Promise<string | null> {
  if (result.code !== 0 || before === null) return null;
  return await roundTrip(args, sources, result, watch, before);
}

async function runInProcess(home: string, args: string[], stdin?: Uint8Array): Promise<Result> {
  let stdout = "";
  let stderr = "";
  const code = await main(["--home", home, ...args], {
    stdout: (t) => (stdout += t),
    stderr: (t) => (stderr += t),
    stdin: () => Promise.resolve(stdin ?? new Uint8Array()),
  });
  return { code, stdout, stderr };
}

async function runProcess(home: string, args: string[], stdin?: Uint8Array): Promise<Result> {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", ...CLI_FLAGS, CLI, "--home", home, ...args],
    stdin: stdin === undefined ? "null" : "piped",
    stdout: "piped",
    stderr: "piped",
    env: { NO_COLOR: "1" },
  }).spawn();
  if (stdin !== undefined) {
    const writer = child.stdin.getWriter();
    await writer.write(stdin).catch(() => {});
    await writer.close().catch(() => {});
  }
  const out = await child.output();
  const dec = new TextDecoder();
  return { code: out.code, stdout: dec.decode(out.stdout), stderr: dec.decode(out.stderr) };
}

type RoundTrips = { all: number; mutated: number; dash: number; json: number };

function countRoundTrip(counts: RoundTrips, c: Case, args: string[]): void {
  counts.all++;
  if (c.kind.includes("~mut")) counts.mutated++;
  if (args.includes("--")) counts.dash++;
  if (args.includes("--json")) counts.json++;
}

/**
 * Inputs that are accepted on purpose, one of each form the round trip must cover (a
 * mutated one, the `--` form with flags and quoting, `--json`), so that however few inputs
 * a run draws, each form is checked at least once.
 */
const FIXED_CASES: Case[] = [
  {
    kind: "enqueue-dash",
    args: [
      "enqueue",
      "--priority",
      "-3",
      "--queue=q1",
      "--",
      "printf",
      "%s\n",
      "a b",
      "$(id)",
      "'",
    ],
  },
  { kind: "enqueue-arg", args: ["enqueue", '{"command":"echo hi","max_retries":2}', "--json"] },
  {
    kind: "enqueue-arg~mut",
    args: [
      "enqueue",
      "--json",
      '[{"command":"true","timeout_s":null},{"command":"x","queue":"m"}]',
    ],
  },
  {
    kind: "enqueue-stdin~mut",
    args: ["enqueue", "--file=-", "--json"],
    stdin: new TextEncoder().encode('\r\n{"command":"a","cwd":null}\r\n\n{"command":"b"}'),
  },
];

function assertRoundTripsCovered(counts: RoundTrips): void {
  for (const [form, count] of Object.entries(counts)) {
    assert.ok(count > 0, `no accepted ${form} enqueue was round-tripped`);
  }
}

const STACK = /\n\s+at |file:\/\/|\.ts:\d+:\d+|^\w*Error:|Uncaught|panicked/m;

/** What is wrong with one result, or null. */
function judge(result: Result, before: ReturnType<StoreWatch["state"]>, after: typeof before) {
  if (result.code !== 0 && result.code !== 2) return `exit ${result.code}`;
  if (STACK.test(result.stderr)) return "a stack trace on stderr";
  if (result.code === 2) {
    if (!/^queuectl: cannot [^\n]*\n$/.test(result.stderr)) {
      return `not one "queuectl: cannot" line on stderr`;
    }
    if (after.rows !== before.rows) return `store changed: ${before.rows} -> ${after.rows}`;
    if (after.dataVersion !== before.dataVersion) return "a transaction committed";
    if (after.config !== before.config) return "config.json changed";
  }
  return null;
}

function show(c: Case): string {
  const cut = (s: string) => s.length > 160 ? `${s.slice(0, 160)}…(${s.length})` : s;
  const parts = [`${c.kind}: ${cut(JSON.stringify(c.args))}`];
  if (c.stdin) parts.push(`stdin ${cut(JSON.stringify(new TextDecoder().decode(c.stdin)))}`);
  if (c.file) parts.push(`file ${cut(JSON.stringify(new TextDecoder().decode(c.file)))}`);
  return parts.join(" ");
}

/** Some process cases are mangled by the OS on the way in, not by queuectl: skip them. */
function processSafe(c: Case): boolean {
  // An argument cannot hold NUL, and a lone surrogate has no UTF-8 form to pass.
  return c.args.every((a) => !a.includes("\0") && a.isWellFormed());
}

Deno.test({
  name: `fuzz: ${
    N.toLocaleString("en")
  } generated inputs in process, all exit 0 or 2, one line, store unchanged on rejection`,
  fn: async () => {
    console.log(`fuzz seed ${SEED} (QUEUECTL_FUZZ_SEED=${SEED} replays this run)`);
    const r = new Rng(SEED);
    const dir = await fuzzDir("queuectl-fuzz-");
    const home = join(dir, "home");
    const failures: string[] = [];
    const kinds = new Map<string, [number, number, number]>();
    const roundTrips = { all: 0, mutated: 0, dash: 0, json: 0 };
    let ran = 0;
    const t0 = performance.now();
    try {
      await seedHome(home);
      let watch = new StoreWatch(home);
      let state = watch.state();
      for (let i = 0; i < N + FIXED_CASES.length; i++) {
        const c = i < N ? generate(r, i) : FIXED_CASES[i - N];
        const { args, stdin, sources } = materialize(c, dir);
        const before = idsBefore(args, watch);
        let result: Result;
        const t1 = performance.now();
        try {
          result = await runInProcess(home, args, stdin);
        } catch (e) {
          result = { code: -1, stdout: "", stderr: `main threw: ${(e as Error)?.stack ?? e}` };
        }
        ran++;
        const after = watch.state();
        const problem = judge(result, state, after) ??
          await checkRoundTrip(args, sources, result, watch, before);
        if (result.code === 0 && before !== null) countRoundTrip(roundTrips, c, args);
        const k = kinds.get(c.kind) ?? [0, 0, 0];
        k[result.code === 0 ? 0 : 1]++;
        k[2] += performance.now() - t1;
        kinds.set(c.kind, k);
        if (problem && failures.length < 20) {
          failures.push(
            `#${i} ${problem}\n    ${show(c)}\n    -> exit ${result.code}, stderr ${
              JSON.stringify(result.stderr.slice(0, 400))
            }`,
          );
        }
        state = after;
        // Keep the store small so the checksum stays cheap.
        if (result.code === 0 && watch.jobCount() > 60) {
          watch.close();
          killSome(home);
          watch = new StoreWatch(home);
          state = watch.state();
        }
      }
      watch.close();
    } finally {
      await cleanup(dir);
    }
    const seconds = (performance.now() - t0) / 1000;
    console.log(
      `${N} inputs in ${seconds.toFixed(1)} s (${
        (N / seconds).toFixed(0)
      }/s); accepted/rejected by kind:`,
    );
    for (const [kind, [ok, bad, ms]] of [...kinds].sort()) {
      console.log(`  ${kind.padEnd(22)} ${ok}/${bad}, ${(ms / (ok + bad)).toFixed(2)} ms each`);
    }
    console.log(`round trips of accepted enqueues: ${JSON.stringify(roundTrips)}`);
    assert.deepEqual(failures, [], `seed ${SEED}:\n${failures.join("\n")}`);
    assert.equal(ran, N + FIXED_CASES.length, "every generated input ran, and the fixed ones");
    assertRoundTripsCovered(roundTrips);
  },
});

Deno.test({
  name: `fuzz: ${PROCESS_N} inputs through real CLI processes behave as in process`,
  fn: async () => {
    const seed = SEED ^ 0x5eed;
    console.log(`process fuzz seed ${seed} (from QUEUECTL_FUZZ_SEED=${SEED})`);
    const r = new Rng(seed);
    const cases: Case[] = [];
    for (let i = 0; cases.length < PROCESS_N; i++) {
      const c = generate(r, i % 1000 === 999 ? 0 : i); // no huge cases: slow to pipe, and covered
      if (processSafe(c)) cases.push(c);
    }
    // Invalid UTF-8 in every channel, whatever the generator drew.
    const bad = new Uint8Array([
      0x7b,
      0x22,
      0x63,
      0x6f,
      0x6d,
      0x6d,
      0x61,
      0x6e,
      0x64,
      0x22,
      0x3a,
      0x22,
      0xff,
      0x22,
      0x7d,
      0x0a,
    ]); // {"command":"\xff"}
    cases.push({ kind: "utf8-stdin", args: ["enqueue", "-"], stdin: bad });
    cases.push({ kind: "utf8-file", args: ["enqueue", "--file", "@FILE@"], file: bad });
    cases.push(...FIXED_CASES);
    // Lanes run in parallel, each an in-process home and a process home fed the same inputs.
    const LANES = 3;
    // Not on /dev/shm: Deno wants --allow-all for anything under /dev, which the CLI lacks.
    const dir = await tempHome("queuectl-fuzzp-");
    const failures: string[] = [];
    const roundTrips = { all: 0, mutated: 0, dash: 0, json: 0 };
    let ran = 0;
    const t0 = performance.now();
    try {
      await Promise.all(Array.from({ length: LANES }, async (_, lane) => {
        const laneDir = join(dir, `lane${lane}`);
        const homes = [join(laneDir, "inproc"), join(laneDir, "proc")];
        for (const h of homes) await seedHome(h);
        const watches = homes.map((h) => new StoreWatch(h));
        let states = watches.map((w) => w.state());
        try {
          for (let i = lane; i < cases.length; i += LANES) {
            const c = cases[i];
            const { args, stdin, sources } = materialize(c, laneDir);
            const before = watches.map((w) => idsBefore(args, w));
            const a = await runInProcess(homes[0], args, stdin);
            const b = await runProcess(homes[1], args, stdin);
            ran++;
            const after = watches.map((w) => w.state());
            const problems = [judge(a, states[0], after[0]), judge(b, states[1], after[1])];
            // What each stored is what it was given, in process and as a real process alike.
            for (const [side, res] of [a, b].entries()) {
              const p = await checkRoundTrip(args, sources, res, watches[side], before[side]);
              if (p) problems.push(`${side ? "as a process" : "in process"}: ${p}`);
            }
            if (a.code === 0 && before[0] !== null) countRoundTrip(roundTrips, c, args);
            const norm = (res: Result, home: string) =>
              res.stderr.replaceAll(home, "<home>").replace(/\d{4}-\d\d-\d\dT[\d:.]+Z/g, "<time>");
            if (a.code !== b.code) {
              problems.push(`exit ${a.code} in process, ${b.code} as a process`);
            } else if (a.code === 2 && norm(a, homes[0]) !== norm(b, homes[1])) {
              problems.push(
                `stderr differs: ${JSON.stringify(a.stderr)} vs ${JSON.stringify(b.stderr)}`,
              );
            }
            for (const p of problems) {
              if (p) {
                failures.push(
                  `process case ${i} ${p}\n    ${show(c)}\n    -> ${
                    JSON.stringify(b.stderr.slice(0, 300))
                  }`,
                );
              }
            }
            states = after;
          }
        } finally {
          for (const w of watches) w.close();
        }
      }));
    } finally {
      await cleanup(dir);
    }
    const seconds = (performance.now() - t0) / 1000;
    console.log(
      `${cases.length} inputs through processes (and in process) in ${seconds.toFixed(1)} s; ` +
        `round trips of accepted enqueues: ${JSON.stringify(roundTrips)}`,
    );
    assert.equal(ran, cases.length, "every input ran");
    assertRoundTripsCovered(roundTrips);
    assert.deepEqual(
      failures.slice(0, 20),
      [],
      `seed ${seed}:\n${failures.slice(0, 20).join("\n")}`,
    );
  },
});
