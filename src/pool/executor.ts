/**
 * Runs one attempt of a job: spawn → stream output → wait (timeout, abort) → clean up the
 * process group → classify.
 *
 * The job runs as `sh -c <command>` leading a new session and process group, so a timeout,
 * an abort or the end of the attempt kills everything it started with one `kill(-pid)`.
 *
 * @module
 */

import { CappedWriter, drainPipe } from "./output.ts";
import { calibrateStartTicks, killGroup, spawnStartTicks } from "./process.ts";

/** One attempt to run. */
export interface AttemptSpec {
  jobId: string;
  attempt: number;
  command: string;
  /** Working directory; null inherits the worker's. */
  cwd: string | null;
  /** Per-attempt time limit in milliseconds; null means none. */
  timeoutMs: number | null;
  /** How long SIGTERM gets before SIGKILL. */
  killGraceMs: number;
  /** The attempt's output file, created with mode 0600 when the job first prints. */
  outputPath: string;
  /** Bytes of output kept in the file. */
  outputLimit: number;
  /** Extra environment variables for the job. */
  env?: Record<string, string>;
}

/** How an attempt ended; a closed union so callers' switches are exhaustive. */
export type Outcome =
  | { kind: "succeeded"; exitCode: 0 }
  | { kind: "failed"; exitCode: number }
  | { kind: "timed_out" }
  /** Died of a signal we did not send. */
  | { kind: "killed"; signal: string }
  /** We killed it because the caller aborted (shutdown, lease lost, cancel). */
  | { kind: "aborted"; reason: string }
  /** `local`: the failure was this worker's (e.g. its disk is full), not the job's. */
  | { kind: "spawn_failed"; message: string; local?: boolean };

/** What an attempt did. Times are milliseconds since the epoch (from `now`). */
export interface AttemptResult {
  outcome: Outcome;
  startedMs: number;
  endedMs: number;
  /** Measured on the monotonic clock, so a clock step does not distort it. */
  durationMs: number;
  /** Bytes written to the output file, the truncation marker included. */
  outputBytes: number;
  truncated: boolean;
  /** Why output was lost (its file could not be created or written), or null. */
  outputError: string | null;
  signal: string | null;
  exitCode: number | null;
  /** One human line, e.g. "exit code 3", "timed out after 2s"; null on success. */
  error: string | null;
}

/**
 * The result of an attempt that never ran: `error` is the recorded line, `local` marks a
 * failure of the worker's own (see {@link Outcome}).
 */
export function notRun(message: string, error: string, local = false): AttemptResult {
  const now = Date.now();
  return {
    outcome: { kind: "spawn_failed", message, ...(local ? { local } : {}) },
    startedMs: now,
    endedMs: now,
    durationMs: 0,
    outputBytes: 0,
    truncated: false,
    outputError: null,
    signal: null,
    exitCode: null,
    error,
  };
}

/** After the group is gone, how long pipes may stay open (held by an escaped process). */
const PIPE_EOF_WAIT_MS = 200;
/** Longest delay setTimeout accepts; longer timeouts re-arm. */
const MAX_TIMER_MS = 2 ** 31 - 1;

/**
 * Runs one attempt of `spec` and reports how it ended. Never throws: failures are outcomes.
 *
 * At `timeoutMs` the group gets SIGTERM, `killGraceMs` later SIGKILL. The job also runs
 * inside `timeout -k <grace+1>s <timeout+grace+2>s` (GNU coreutils) where that is on PATH,
 * so the limit holds even if this worker is killed -9 and nobody is left to enforce it.
 *
 * `options.signal` aborts the attempt the same way; its reason (a string) becomes the
 * outcome's. `onSpawn` learns the group's leader, for orphan killing if this worker dies.
 */
export async function runAttempt(
  spec: AttemptSpec,
  options: {
    signal?: AbortSignal;
    onSpawn?: (p: { pid: number; startTicks: number | null }) => void;
    /** @default {Date.now} */
    now?: () => number;
  } = {},
): Promise<AttemptResult> {
  const now = options.now ?? Date.now;
  const startedMs = now();
  const t0 = performance.now();
  const finish = (outcome: Outcome, rest: Partial<AttemptResult> = {}): AttemptResult => ({
    outcome,
    startedMs,
    endedMs: now(),
    durationMs: Math.round(performance.now() - t0),
    outputBytes: 0,
    truncated: false,
    outputError: null,
    signal: null,
    exitCode: null,
    error: describe(outcome, spec.timeoutMs),
    ...rest,
  });
  const abort = options.signal;
  if (abort?.aborted) return finish({ kind: "aborted", reason: reasonOf(abort) });

  // 1. Spawn. The output file is created on the job's first byte (see CappedWriter).
  const writer = new CappedWriter(spec.outputPath, spec.outputLimit);
  const how = launch(spec);
  let child: Deno.ChildProcess;
  calibrateStartTicks();
  const spawnedAt = performance.now();
  try {
    child = new Deno.Command(how.program, {
      args: how.args,
      cwd: spec.cwd ?? undefined,
      env: {
        ...spec.env,
        QUEUECTL_JOB_ID: spec.jobId,
        QUEUECTL_ATTEMPT: String(spec.attempt),
      },
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
      detached: how.detached,
    }).spawn();
  } catch (e) {
    return finish({ kind: "spawn_failed", message: spawnError(e, spec.cwd) });
  }
  const pid = child.pid;
  const pipes = [drainPipe(child.stdout, writer), drainPipe(child.stderr, writer)];

  // 2. Arm the timeout and the abort; whichever fires first owns the kill.
  let exited = false;
  const status = child.status.then((st) => (exited = true, st));
  // Set from callbacks, so declared with `as` to keep TypeScript from narrowing it to null.
  let cause = null as Extract<Outcome, { kind: "timed_out" | "aborted" }> | null;
  let killing: Promise<void> | null = null;
  const terminate = () => killing ??= killUntilExit(pid, spec.killGraceMs, () => exited);
  const onAbort = () => {
    cause ??= { kind: "aborted", reason: reasonOf(abort!) };
    terminate();
  };
  abort?.addEventListener("abort", onAbort, { once: true });
  const disarm = spec.timeoutMs === null ? null : setLongTimeout(spec.timeoutMs, () => {
    cause ??= { kind: "timed_out" };
    terminate();
  });
  try {
    options.onSpawn?.({ pid, startTicks: spawnStartTicks(pid, spawnedAt) });
  } catch { /* the caller's bookkeeping must not leave the job unsupervised */ }

  // 3. The attempt is over when sh exits.
  const { code, signal: died } = await status;
  disarm?.();
  abort?.removeEventListener("abort", onAbort);

  // 4. Whatever is left of the group goes with it (one syscall when nothing is); then the
  // pipes get a short bound, in case a process that left the group still holds them.
  if (killing !== null) await killing;
  // killGroup's first signal answers "gone" when nothing is left: no scan in that case.
  await killGroup(pid, { graceMs: spec.killGraceMs });
  if (!pipes.every((p) => p.finished)) {
    let timer: ReturnType<typeof setTimeout> | undefined;
    const expired = new Promise<void>((resolve) => timer = setTimeout(resolve, PIPE_EOF_WAIT_MS));
    await Promise.race([Promise.all(pipes.map((p) => p.done)), expired]);
    clearTimeout(timer);
    await Promise.all(pipes.map((p) => p.cancel()));
  }
  writer.finish();
  writer.close();

  // 5. Classify: our own kill first, then how sh ended.
  const signal = died ?? null;
  const exitCode = signal === null ? code : null;
  const output = {
    outputBytes: writer.bytesWritten,
    truncated: writer.truncated,
    outputError: writer.error,
  };
  const raw = { ...output, signal, exitCode };
  if (cause !== null) return finish(cause, raw);
  if (signal !== null) return finish({ kind: "killed", signal }, raw);
  if (exitCode === 0) return finish({ kind: "succeeded", exitCode: 0 }, raw);
  // 124 is timeout(1) enforcing the limit itself: only if our timer was late (a stalled
  // thread), so only past the limit; a job's own "exit 124" ends sooner.
  if (exitCode === 124 && spec.timeoutMs !== null && how.wrapped) {
    if (performance.now() - t0 >= spec.timeoutMs) return finish({ kind: "timed_out" }, raw);
  }
  return finish({ kind: "failed", exitCode: exitCode ?? -1 }, raw);
}

/**
 * Kills the attempt's group (SIGTERM, grace, SIGKILL) and keeps at it until `exited()`:
 * for the few milliseconds before setsid(1) has run the group does not exist yet and a
 * kill finds nothing. Retrying by group id, never by the leader's bare pid, means a pid
 * reused after the leader was reaped is never signalled.
 */
async function killUntilExit(pid: number, graceMs: number, exited: () => boolean) {
  let delay = 1;
  while (!exited()) {
    await killGroup(pid, { graceMs });
    if (exited()) return;
    await new Promise((resolve) => setTimeout(resolve, delay));
    delay = Math.min(delay * 2, 50);
  }
}

/** How to start a job's command: the program, its arguments, whether Deno must detach. */
interface Launch {
  program: string;
  args: string[];
  detached: boolean;
  /** Whether timeout(1) enforces `timeoutMs` too. */
  wrapped: boolean;
}

/**
 * `sh -c <command>` as the leader of a new session and process group (pgid == pid), in
 * timeout(1) when there is a limit, so it holds even if this worker is killed -9.
 *
 * Why not simply Deno's `detached: true`: Deno implements it with setsid() in a pre-exec
 * hook, which makes Rust fork the whole Deno process instead of using posix_spawn; measured
 * here that costs ~10 ms per job against ~4 ms for a plain spawn. Exec'ing setsid(1) first
 * costs one small exec and gives the same result: `sh` (same pid) leads a new session and
 * group. The price: for the few ms before setsid(1) runs the group does not exist yet (see
 * killUntilExit). Without setsid(1) on PATH, Deno's `detached` it is.
 *
 * timeout(1) runs without --foreground so it signals the whole group; spawned directly,
 * not through `sh -c 'exec timeout …'`, which would cost one more exec for the same tree.
 */
function launch(spec: AttemptSpec): Launch {
  const sh = ["sh", "-c", spec.command];
  const timeout = spec.timeoutMs === null ? null : which("timeout");
  let argv = sh;
  if (timeout !== null && spec.timeoutMs !== null) {
    // Later than our own timer (timeoutMs, then killGraceMs): it acts only when we can't.
    const grace = Math.max(0, spec.killGraceMs);
    const limit = seconds(Math.max(0, spec.timeoutMs) + grace + 2000);
    argv = [timeout, "-k", seconds(grace + 1000), limit, ...sh];
  }
  const setsid = which("setsid");
  if (setsid !== null) argv = [setsid, ...argv];
  const [program, ...args] = argv;
  return { program, args, detached: setsid === null, wrapped: timeout !== null };
}

const found = new Map<string, string | null>();

/** Absolute path of `name` on PATH, looked up once per thread; null when absent. */
function which(name: string): string | null {
  if (found.has(name)) return found.get(name)!;
  let path = "/usr/bin:/bin";
  try {
    path = Deno.env.get("PATH") ?? path;
  } catch { /* no --allow-env: the usual places */ }
  let result: string | null = null;
  for (const dir of path.split(":")) {
    if (!dir.startsWith("/")) continue; // a relative entry would depend on the job's cwd
    try {
      const info = Deno.statSync(`${dir}/${name}`);
      if (info.isFile && ((info.mode ?? 0) & 0o111) !== 0) {
        result = `${dir}/${name}`;
        break;
      }
    } catch { /* not here */ }
  }
  found.set(name, result);
  return result;
}

/** `ms` as a duration for timeout(1) and messages, e.g. "2.5s". */
function seconds(ms: number): string {
  return `${Number((ms / 1000).toFixed(3))}s`;
}

/** Calls `fn` after `ms`, also past setTimeout's ~24.8-day limit; returns the disarm. */
function setLongTimeout(ms: number, fn: () => void): () => void {
  let timer: ReturnType<typeof setTimeout>;
  const arm = (left: number) => {
    const step = Math.min(Math.max(0, left), MAX_TIMER_MS);
    timer = setTimeout(() => left > step ? arm(left - step) : fn(), step);
  };
  arm(ms);
  return () => clearTimeout(timer);
}

function reasonOf(signal: AbortSignal): string {
  const reason = signal.reason;
  if (typeof reason === "string") return reason;
  return String((reason as Error | undefined)?.message ?? reason ?? "aborted");
}

function spawnError(e: unknown, cwd: string | null): string {
  if (cwd !== null) {
    try {
      if (!Deno.statSync(cwd).isDirectory) return `working directory ${cwd} is not a directory`;
    } catch {
      return `working directory ${cwd} does not exist`;
    }
  }
  return (e as Error)?.message ?? String(e);
}

/** The one-line `error` of an outcome. */
function describe(outcome: Outcome, timeoutMs: number | null): string | null {
  switch (outcome.kind) {
    case "succeeded":
      return null;
    case "failed":
      return `exit code ${outcome.exitCode}`;
    case "timed_out":
      return `timed out after ${seconds(timeoutMs ?? 0)}`;
    case "killed":
      return `killed by ${outcome.signal}`;
    case "aborted":
      return `aborted: ${outcome.reason}`;
    case "spawn_failed":
      return `spawn failed: ${outcome.message}`;
  }
}
