/**
 * The executor against real `sh` and real processes: outcomes, output capping, timeouts
 * and aborts that kill whole process groups, and background children that hold pipes.
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import { type AttemptResult, type AttemptSpec, runAttempt } from "../src/pool/executor.ts";
import { groupMembers } from "../src/pool/process.ts";
import { waitFor } from "./helpers.ts";

const MARKER = (n: number) => `\n[queuectl: output truncated at ${n} bytes]\n`;

/** Runs `command` in a fresh temp dir; returns the result, the output text and the pgid. */
async function run(
  command: string,
  spec: Partial<AttemptSpec> = {},
  options: { signal?: AbortSignal; onSpawn?: (pid: number) => void } = {},
): Promise<
  { result: AttemptResult; output: string; pgid: number | null; ticks: number | null; mode: number }
> {
  const dir = await Deno.makeTempDir({ prefix: "queuectl-exec-" });
  try {
    let pgid: number | null = null;
    let ticks: number | null = null;
    const outputPath = join(dir, "out", "1.log"); // "out" is missing: runAttempt makes it
    const result = await runAttempt({
      jobId: "job-1",
      attempt: 2,
      command,
      cwd: dir,
      timeoutMs: null,
      killGraceMs: 200,
      outputPath,
      outputLimit: 1 << 20,
      ...spec,
    }, {
      signal: options.signal,
      onSpawn: ({ pid, startTicks }) => {
        pgid = pid;
        ticks = startTicks;
        options.onSpawn?.(pid);
      },
    });
    let output = "";
    let mode = 0;
    // The file exists once the job printed something.
    if (pgid !== null && result.outputBytes > 0) {
      output = await Deno.readTextFile(outputPath);
      mode = (await Deno.stat(outputPath)).mode! & 0o777;
    }
    return { result, output, pgid, ticks, mode };
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

/** Waits until process group `pgid` has no live (non-zombie) member. */
async function assertGroupGone(pgid: number | null): Promise<void> {
  assert.ok(pgid !== null, "onSpawn was not called");
  await waitFor(() => groupMembers(pgid)?.length === 0, {
    timeoutMs: 5000,
    what: `process group ${pgid} to be gone`,
  });
}

Deno.test("success: exit 0, output in a 0600 file, job id and attempt in env", async () => {
  const { result, output, mode } = await run(
    'echo "id=$QUEUECTL_JOB_ID attempt=$QUEUECTL_ATTEMPT"; sleep 0.05; echo oops >&2; pwd',
  );
  assert.deepEqual(result.outcome, { kind: "succeeded", exitCode: 0 });
  assert.equal(result.exitCode, 0);
  assert.equal(result.signal, null);
  assert.equal(result.error, null);
  assert.match(output, /^id=job-1 attempt=2\noops\n\/.*queuectl-exec-/);
  assert.equal(result.outputBytes, new TextEncoder().encode(output).length);
  assert.equal(result.truncated, false);
  assert.equal(mode, 0o600);
  assert.ok(result.endedMs >= result.startedMs);
});

Deno.test("a job that prints nothing leaves no output file", async () => {
  const dir = await Deno.makeTempDir({ prefix: "queuectl-exec-" });
  try {
    const outputPath = join(dir, "out", "1.log");
    const result = await runAttempt({
      jobId: "silent",
      attempt: 1,
      command: "true",
      cwd: dir,
      timeoutMs: null,
      killGraceMs: 200,
      outputPath,
      outputLimit: 1 << 20,
    });
    assert.equal(result.outcome.kind, "succeeded");
    assert.equal(result.outputBytes, 0);
    assert.equal(result.outputError, null);
    await assert.rejects(Deno.stat(outputPath), Deno.errors.NotFound);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("an output file that cannot be created loses the output, not the attempt", async () => {
  const dir = await Deno.makeTempDir({ prefix: "queuectl-exec-" });
  try {
    // A regular file where the output folder should be: creating the file fails (ENOTDIR).
    Deno.writeTextFileSync(join(dir, "out"), "");
    const result = await runAttempt({
      jobId: "lost",
      attempt: 1,
      command: "echo hello; exit 3",
      cwd: dir,
      timeoutMs: null,
      killGraceMs: 200,
      outputPath: join(dir, "out", "1.log"),
      outputLimit: 1 << 20,
    });
    assert.deepEqual(result.outcome, { kind: "failed", exitCode: 3 });
    assert.equal(result.outputBytes, 0);
    assert.match(result.outputError ?? "", /^cannot create output file .*out\/1\.log: /);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("a non-zero exit is a failed attempt with its code", async () => {
  const { result } = await run("echo bad; exit 3");
  assert.deepEqual(result.outcome, { kind: "failed", exitCode: 3 });
  assert.equal(result.exitCode, 3);
  assert.equal(result.error, "exit code 3");
});

Deno.test("an unknown command fails with exit 127 and sh's message in the output", async () => {
  const { result, output } = await run("no-such-command-queuectl");
  assert.deepEqual(result.outcome, { kind: "failed", exitCode: 127 });
  assert.match(output, /not found/);
});

Deno.test("a missing working directory is spawn_failed, not an exception", async () => {
  let spawned = false;
  const { result } = await run("true", { cwd: "/nonexistent/queuectl" }, {
    onSpawn: () => spawned = true,
  });
  assert.equal(result.outcome.kind, "spawn_failed");
  assert.match(result.error!, /^spawn failed: working directory \/nonexistent\/queuectl/);
  assert.equal(spawned, false);
});

Deno.test("a timeout kills the whole process tree", async () => {
  const { result, pgid } = await run("sleep 100 & sleep 100", { timeoutMs: 300 });
  assert.deepEqual(result.outcome, { kind: "timed_out" });
  assert.equal(result.error, "timed out after 0.3s");
  assert.ok(result.durationMs >= 300 && result.durationMs < 5000, `${result.durationMs} ms`);
  await assertGroupGone(pgid);
});

Deno.test("a job that ignores SIGTERM gets SIGKILL after the grace period", async () => {
  const { result, pgid } = await run('trap "" TERM; echo ready; sleep 100', {
    timeoutMs: 200,
    killGraceMs: 300,
  });
  assert.deepEqual(result.outcome, { kind: "timed_out" });
  assert.equal(result.signal, "SIGKILL");
  assert.ok(result.durationMs >= 500, `SIGKILL came after ${result.durationMs} ms`);
  await assertGroupGone(pgid);
});

Deno.test("huge output is capped at the limit plus one marker line", async () => {
  const limit = 1 << 20;
  const started = performance.now();
  const { result, output } = await run("head -c 50000000 /dev/zero; echo done >&2", {
    outputLimit: limit,
  });
  const elapsed = performance.now() - started;
  assert.deepEqual(result.outcome, { kind: "succeeded", exitCode: 0 });
  assert.equal(result.truncated, true);
  assert.equal(output.length, limit + MARKER(limit).length);
  assert.ok(output.endsWith(MARKER(limit)));
  assert.equal(result.outputBytes, output.length);
  assert.ok(elapsed < 10_000, `took ${elapsed} ms`);
});

Deno.test("memory stays flat however much a job prints", async () => {
  const before = Deno.memoryUsage().rss;
  const { result } = await run("head -c 400000000 /dev/zero", { outputLimit: 1000 });
  const grown = Deno.memoryUsage().rss - before;
  assert.equal(result.truncated, true);
  assert.ok(grown < 100 << 20, `RSS grew by ${grown >> 20} MiB for 400 MB of output`);
});

Deno.test("output exactly at the limit is not truncated", async () => {
  const { result, output } = await run("printf 1234567890", { outputLimit: 10 });
  assert.equal(result.truncated, false);
  assert.equal(output, "1234567890");
});

Deno.test("stdout and stderr interleave in arrival order", async () => {
  const { output } = await run("echo a; sleep 0.05; echo b >&2; sleep 0.05; echo c");
  assert.equal(output, "a\nb\nc\n");
});

/** Whether `pid` is a live process (not a zombie). */
function alive(pid: number): boolean {
  try {
    const stat = Deno.readTextFileSync(`/proc/${pid}/stat`);
    return stat.slice(stat.lastIndexOf(")") + 2)[0] !== "Z";
  } catch {
    return false;
  }
}

Deno.test("a background child holding the pipe neither hangs nor survives", async () => {
  // The child holds the pipe; left alone it would close it only when it ends. It writes a
  // file just before it would end on its own, so "the attempt ended before that file
  // exists" is the bound: an executor that waited for the pipe's end instead of killing
  // the child fails it whatever the machine's load, and a working one has 30 s to spare.
  const dir = await Deno.makeTempDir({ prefix: "queuectl-exec-bg-" });
  const natural = join(dir, "ended-on-its-own");
  try {
    const { result, output, pgid } = await run(`(sleep 30; : > ${natural}) & echo hi`, {
      killGraceMs: 100,
    });
    assert.deepEqual(result.outcome, { kind: "succeeded", exitCode: 0 });
    assert.equal(output, "hi\n");
    assert.throws(() => Deno.statSync(natural), "the attempt waited for the child to end");
    await assertGroupGone(pgid);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("a process that left the group and holds the pipe delays the end only briefly", async () => {
  // setsid(1) puts sleep in a session of its own, out of reach of the group kill, so it
  // holds the pipe for its 30 s. The bound is that it is still alive when the attempt
  // ends: an executor that waited for the pipe's end could only end after it, however
  // fast or slow this machine is; the wait it does allow (PIPE_EOF_WAIT_MS, 200 ms) is
  // far inside those 30 s.
  // sh waits until it is: a group kill that came first would make this the case above.
  const { result, output } = await run(
    `setsid sleep 30 & p=$!; until [ "$(cut -d' ' -f6 /proc/$p/stat)" = $p ]; do sleep 0.01; done; echo $p`,
    { killGraceMs: 100 },
  );
  const escaped = Number(output.trim());
  try {
    assert.ok(escaped > 1, `the escaped pid: ${JSON.stringify(output)}`);
    assert.ok(alive(escaped), "the attempt ended only when the escaped holder did");
    assert.deepEqual(result.outcome, { kind: "succeeded", exitCode: 0 });
  } finally {
    Deno.kill(escaped, "SIGKILL");
  }
});

Deno.test("a timeout still bounds the job when its worker is killed -9", async () => {
  const dir = await Deno.makeTempDir({ prefix: "queuectl-exec-" });
  const script = join(dir, "worker.ts");
  const executor = new URL("../src/pool/executor.ts", import.meta.url).href;
  await Deno.writeTextFile(
    script,
    `import { runAttempt } from ${JSON.stringify(executor)};
await runAttempt({ jobId: "j", attempt: 1, command: "sleep 100 & sleep 100", cwd: null,
  timeoutMs: 300, killGraceMs: 100, outputPath: ${JSON.stringify(join(dir, "out"))},
  outputLimit: 1000 }, { onSpawn: ({ pid }) => console.log(pid) });`,
  );
  const worker = new Deno.Command(Deno.execPath(), {
    args: ["run", "--allow-read", "--allow-write", "--allow-env", "--allow-run", script],
    stdin: "null",
    stdout: "piped",
  }).spawn();
  try {
    const reader = worker.stdout.pipeThrough(new TextDecoderStream()).getReader();
    const pgid = Number((await reader.read()).value);
    await reader.cancel();
    const killedAt = performance.now();
    worker.kill("SIGKILL"); // before its 300 ms timer: only timeout(1) is left to act
    assert.equal((await worker.status).signal, "SIGKILL");
    assert.ok(groupMembers(pgid)!.length > 0);
    await assertGroupGone(pgid);
    // timeout(1) waits timeout + grace + 2 s, so that we act first while we live.
    assert.ok(performance.now() - killedAt > 1500);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("an abort kills the group and reports its reason", async () => {
  const controller = new AbortController();
  let timer: ReturnType<typeof setTimeout> | undefined;
  const { result, pgid } = await run("sleep 100 & sleep 100", {}, {
    signal: controller.signal,
    onSpawn: () => timer = setTimeout(() => controller.abort("shutdown"), 50),
  });
  clearTimeout(timer);
  assert.deepEqual(result.outcome, { kind: "aborted", reason: "shutdown" });
  assert.equal(result.error, "aborted: shutdown");
  await assertGroupGone(pgid);
});

Deno.test("an abort right after spawn still stops the job", async () => {
  const controller = new AbortController();
  const started = performance.now();
  const { result, pgid } = await run("sleep 100", { timeoutMs: 60_000 }, {
    signal: controller.signal,
    onSpawn: () => controller.abort("lease lost"),
  });
  assert.deepEqual(result.outcome, { kind: "aborted", reason: "lease lost" });
  assert.ok(performance.now() - started < 5000);
  await assertGroupGone(pgid);
});

Deno.test("an already aborted signal runs nothing", async () => {
  let spawned = false;
  const { result } = await run("true", {}, {
    signal: AbortSignal.abort("shutdown"),
    onSpawn: () => spawned = true,
  });
  assert.deepEqual(result.outcome, { kind: "aborted", reason: "shutdown" });
  assert.equal(spawned, false);
});

Deno.test("death by a signal we did not send is killed, also under timeout(1)", async () => {
  for (const timeoutMs of [null, 60_000]) {
    const { result } = await run("kill -9 $$", { timeoutMs });
    assert.deepEqual(result.outcome, { kind: "killed", signal: "SIGKILL" }, `timeout ${timeoutMs}`);
    assert.equal(result.error, "killed by SIGKILL");
    assert.equal(result.exitCode, null);
  }
});

Deno.test("onSpawn reports the pid that leads the job's process group", async () => {
  for (const timeoutMs of [null, 60_000]) {
    // Field 5 of /proc/<pid>/stat is the process group ("sh" has no spaces to trip on).
    const { result, output, pgid, ticks } = await run(
      "read -r s < /proc/$$/stat; set -- $s; echo $5; sleep 0.1",
      { timeoutMs },
    );
    assert.equal(result.outcome.kind, "succeeded");
    assert.equal(output.trim(), String(pgid), `timeout ${timeoutMs}`);
    assert.ok(ticks !== null && ticks > 0, `start ticks ${ticks}`);
  }
});
