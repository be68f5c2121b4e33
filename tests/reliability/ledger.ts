/**
 * A ledger that jobs write themselves, and a checker that holds it against the store.
 *
 * The store says what queuectl believes happened; the ledger says what the job commands
 * actually did. Each job built with {@linkcode ledgerCommand} appends a `start` line before
 * its body and an `end` line after it, each with the job id, the attempt number, a token
 * naming this execution and a wall-clock timestamp in nanoseconds. An `>>` append of a
 * short line is one `write(2)` on an `O_APPEND` file, atomic on a local file system, so
 * lines of concurrent jobs never interleave.
 *
 * {@linkcode checkLedger} then answers: was any job lost, did any run more than once, did
 * two executions of one job ever run at the same time, is any job process still alive,
 * is the database intact, is anything stuck in `processing`.
 *
 * The job ids carry a marker unique to the test run (see {@linkcode runMarker}), so the
 * leftover-process scan sees only this run's processes.
 *
 * @module
 */

import { DatabaseSync } from "node:sqlite";

/** A prefix unique to one test run, for job ids: `<prefix><8 hex digits>-`. */
export function runMarker(prefix: string): string {
  const bytes = crypto.getRandomValues(new Uint8Array(4));
  return `${prefix}${[...bytes].map((b) => b.toString(16).padStart(2, "0")).join("")}-`;
}

/** Quotes `text` as one `sh` word. */
function shWord(text: string): string {
  return `'${text.replaceAll("'", `'\\''`)}'`;
}

/**
 * A job command that records its execution in the ledger at `ledgerPath`:
 *
 * ```sh
 * L='<ledger>'; t=$$
 * echo "start $QUEUECTL_JOB_ID $QUEUECTL_ATTEMPT $t $(date +%s%N)" >> "$L"
 * { <body>
 * }; s=$?
 * echo "end $QUEUECTL_JOB_ID $QUEUECTL_ATTEMPT $t $(date +%s%N) $s" >> "$L"; exit $s
 * ```
 *
 * The token `$$` is the pid of the attempt's `sh` (its process-group leader): unique among
 * live processes, so with the start time it names one execution even if the same attempt
 * number ever ran twice. The start stamp is taken before the body begins and the end stamp
 * after it ends, so the ledger interval contains the body's run. `body` must not `exit`.
 */
export function ledgerCommand(ledgerPath: string, body: string): string {
  return `L=${shWord(ledgerPath)}; t=$$; ` +
    `echo "start $QUEUECTL_JOB_ID $QUEUECTL_ATTEMPT $t $(date +%s%N)" >> "$L"; ` +
    `{ ${body}\n}; s=$?; ` +
    `echo "end $QUEUECTL_JOB_ID $QUEUECTL_ATTEMPT $t $(date +%s%N) $s" >> "$L"; exit $s`;
}

/** One execution of a job's command, as the ledger saw it. Times are ms since the epoch. */
export interface Execution {
  id: string;
  attempt: number;
  token: string;
  startMs: number;
  /** From the `end` line; null when the execution never wrote one (it was killed). */
  endMs: number | null;
  exitStatus: number | null;
  /**
   * When the execution is known to have stopped: its end line, else (killed without one)
   * the time the store recorded its attempt as ended, since whoever ends an attempt kills
   * it first (see {@linkcode checkLedger}); Infinity when neither is known.
   */
  stoppedMs: number;
}

/** A process of this run still alive after the fact. */
export interface LeftoverProcess {
  pid: number;
  jobId: string;
  attempt: string;
  state: string;
  cmdline: string;
}

/** What {@linkcode checkLedger} found. Every list is empty on a healthy run. */
export interface LedgerReport {
  /** Expected jobs that are not `completed` in the store or never wrote a successful end. */
  lost: string[];
  /** Jobs whose body ran to a successful end more than once (at-least-once delivery). */
  duplicateCompletions: string[];
  /** Jobs whose command started more than once (retries after a lost lease). */
  duplicateStarts: string[];
  /** Two executions of one job alive at the same time. */
  overlappingAttempts: Array<{ id: string; first: Execution; second: Execution }>;
  /** Live processes whose environment names one of the expected jobs (zombies excepted). */
  leftoverProcesses: LeftoverProcess[];
  /** `PRAGMA integrity_check` through a read-only connection: "ok" when healthy. */
  integrity: string;
  /** Expected jobs still `processing`. */
  stuckProcessing: string[];
  /** Executions the store has no attempt record for, or lines that do not parse. */
  anomalies: string[];
  /** Every execution, by job. */
  executions: Map<string, Execution[]>;
  /** Counts, for a summary line. */
  totals: { jobs: number; executions: number; completions: number };
}

/** A ledger timestamp in nanoseconds since the epoch, as milliseconds (exact to 1 µs). */
function nsToMs(ns: string): number {
  if (!/^\d{10,}$/.test(ns)) return NaN;
  return Number(ns.slice(0, -6)) + Number(ns.slice(-6)) / 1e6;
}

/** Parses a ledger file into executions by job id; malformed lines go to `bad`. */
export function readLedger(
  ledgerPath: string,
  bad: string[] = [],
): Map<string, Execution[]> {
  let text = "";
  try {
    text = Deno.readTextFileSync(ledgerPath);
  } catch (e) {
    if (!(e instanceof Deno.errors.NotFound)) throw e;
  }
  const byKey = new Map<string, Execution>();
  const byJob = new Map<string, Execution[]>();
  for (const line of text.split("\n")) {
    if (line === "") continue;
    const [kind, id, attemptText, token, ns, status] = line.split(" ");
    const attempt = Number(attemptText);
    const ms = nsToMs(ns ?? "");
    if (!id || !Number.isInteger(attempt) || !token || Number.isNaN(ms)) {
      bad.push(`malformed ledger line: ${JSON.stringify(line)}`);
      continue;
    }
    const key = `${id} ${attempt} ${token}`;
    if (kind === "start") {
      if (byKey.has(key)) {
        bad.push(`execution started twice: ${key}`);
        continue;
      }
      const e: Execution = {
        id,
        attempt,
        token,
        startMs: ms,
        endMs: null,
        exitStatus: null,
        stoppedMs: Infinity,
      };
      byKey.set(key, e);
      const list = byJob.get(id) ?? [];
      list.push(e);
      byJob.set(id, list);
    } else if (kind === "end") {
      const e = byKey.get(key);
      if (!e || e.endMs !== null) {
        bad.push(`end without a start: ${JSON.stringify(line)}`);
        continue;
      }
      e.endMs = ms;
      e.stoppedMs = ms;
      e.exitStatus = Number(status);
    } else {
      bad.push(`malformed ledger line: ${JSON.stringify(line)}`);
    }
  }
  return byJob;
}

/**
 * Live processes (not zombies: PID 1 here reaps late) whose environment has
 * `QUEUECTL_JOB_ID` set to one of `ids`. Needs `/proc`, so tests run with `-A`.
 */
export function leftoverProcesses(ids: ReadonlySet<string>): LeftoverProcess[] {
  const found: LeftoverProcess[] = [];
  const dec = new TextDecoder();
  for (const entry of Deno.readDirSync("/proc")) {
    if (!/^\d+$/.test(entry.name)) continue;
    const pid = Number(entry.name);
    try {
      const env = dec.decode(Deno.readFileSync(`/proc/${pid}/environ`)).split("\0");
      const jobId = env.find((v) => v.startsWith("QUEUECTL_JOB_ID="))?.slice(16);
      if (jobId === undefined || !ids.has(jobId)) continue;
      const stat = Deno.readTextFileSync(`/proc/${pid}/stat`);
      const state = stat.slice(stat.lastIndexOf(")") + 2)[0];
      if (state === "Z" || state === "X") continue;
      const cmdline = dec.decode(Deno.readFileSync(`/proc/${pid}/cmdline`)).replaceAll("\0", " ");
      const attempt = env.find((v) => v.startsWith("QUEUECTL_ATTEMPT="))?.slice(17) ?? "?";
      found.push({ pid, jobId, attempt, state, cmdline: cmdline.trim() });
    } catch { /* it ended while we looked, or is not ours to read */ }
  }
  return found;
}

/** A read-only connection to a queuectl database, for checks that must change nothing. */
export function openReadOnly(dbPath: string): DatabaseSync {
  const db = new DatabaseSync(dbPath, { readOnly: true });
  db.exec("PRAGMA busy_timeout = 10000");
  return db;
}

type Row = Record<string, unknown>;

/**
 * Holds the ledger at `ledgerPath` against the database at `dbPath` for the jobs
 * `expectedIds`. Call it once the workers are stopped.
 *
 * Overlap, honestly: an execution with an end line stopped then. One without an end line
 * was killed (no job here exits early), and only two things kill a job: its worker (abort,
 * timeout, shutdown), which waits for the process group to be gone before it records the
 * attempt's end; and the rescuer, which sends SIGKILL to the orphan's group before it
 * records the attempt as `lost`. So such an execution is taken to have stopped when the
 * store says its attempt ended. If the kill had missed, the process would either have
 * written its end line later (caught by the interval check) or still be alive (caught as
 * a leftover process). An execution with neither end line nor ended attempt, or whose
 * process is still alive, counts as running forever, so any later execution of that job
 * overlaps it.
 */
export function checkLedger(
  ledgerPath: string,
  dbPath: string,
  expectedIds: readonly string[],
): LedgerReport {
  const anomalies: string[] = [];
  const executions = readLedger(ledgerPath, anomalies);
  const expected = new Set(expectedIds);
  for (const id of executions.keys()) {
    if (!expected.has(id)) anomalies.push(`ledger names a job not enqueued: ${id}`);
  }

  const db = openReadOnly(dbPath);
  let integrity: string;
  const states = new Map<string, string>();
  const attempts = new Map<string, Row>();
  try {
    integrity = (db.prepare("PRAGMA integrity_check").all() as Row[])
      .map((r) => String(r.integrity_check)).join("; ");
    for (const r of db.prepare("SELECT id, state FROM jobs").all() as Row[]) {
      states.set(String(r.id), String(r.state));
    }
    const rows = db.prepare("SELECT job_id, attempt, outcome, ended_at FROM attempts")
      .all() as Row[];
    for (const r of rows) attempts.set(`${r.job_id} ${r.attempt}`, r);
  } finally {
    db.close();
  }

  // Complete each execution's interval from the store, then look for overlaps. An execution
  // whose process is still alive has not stopped, whatever the store says.
  const leftovers = leftoverProcesses(expected);
  const alive = new Set(leftovers.map((p) => `${p.jobId} ${p.attempt}`));
  const overlappingAttempts: LedgerReport["overlappingAttempts"] = [];
  let total = 0;
  let completions = 0;
  for (const [id, list] of executions) {
    total += list.length;
    for (const e of list) {
      if (e.exitStatus === 0) completions++;
      const record = attempts.get(`${id} ${e.attempt}`);
      if (!record) {
        anomalies.push(`execution with no attempt record: ${id} attempt ${e.attempt}`);
        continue;
      }
      if (
        e.endMs === null && record.ended_at != null && record.outcome !== "running" &&
        !alive.has(`${id} ${e.attempt}`)
      ) {
        e.stoppedMs = Number(record.ended_at);
      }
    }
    const sorted = [...list].sort((a, b) => a.startMs - b.startMs);
    for (let i = 0; i < sorted.length; i++) {
      for (let j = i + 1; j < sorted.length; j++) {
        if (sorted[j].startMs < sorted[i].stoppedMs) {
          overlappingAttempts.push({ id, first: sorted[i], second: sorted[j] });
        }
      }
    }
  }

  const lost: string[] = [];
  const duplicateCompletions: string[] = [];
  const duplicateStarts: string[] = [];
  const stuckProcessing: string[] = [];
  for (const id of expectedIds) {
    const list = executions.get(id) ?? [];
    const ok = list.filter((e) => e.exitStatus === 0).length;
    const state = states.get(id);
    if (state !== "completed" || ok === 0) lost.push(id);
    if (state === "processing") stuckProcessing.push(id);
    if (ok > 1) duplicateCompletions.push(id);
    if (list.length > 1) duplicateStarts.push(id);
  }

  return {
    lost,
    duplicateCompletions,
    duplicateStarts,
    overlappingAttempts,
    leftoverProcesses: leftovers,
    integrity,
    stuckProcessing,
    anomalies,
    executions,
    totals: { jobs: expectedIds.length, executions: total, completions },
  };
}

/** A few lines describing what is wrong in `report`, for assertion messages. */
export function describeProblems(report: LedgerReport, max = 5): string {
  const parts: string[] = [];
  const show = (name: string, items: unknown[]) => {
    if (items.length) {
      parts.push(`${name} (${items.length}): ${JSON.stringify(items.slice(0, max))}`);
    }
  };
  show("lost", report.lost);
  show("overlapping", report.overlappingAttempts);
  show("leftover processes", report.leftoverProcesses);
  show("stuck processing", report.stuckProcessing);
  show("anomalies", report.anomalies);
  if (report.integrity !== "ok") parts.push(`integrity: ${report.integrity}`);
  return parts.join("\n") || "no problems";
}
