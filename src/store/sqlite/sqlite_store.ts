/**
 * The SQLite implementation of {@link Store}: one file in the data directory, shared by
 * every CLI call and worker process on the host.
 *
 * @module
 */

import { DuplicateJobError, JobNotFoundError, UsageError } from "../../errors.ts";
import {
  type Attempt,
  iso,
  type Job,
  JOB_STATES,
  type JobDetail,
  type JobState,
} from "../../job.ts";
import type {
  AttemptFinished,
  AttemptStarted,
  ClaimedJob,
  ClaimOptions,
  CycleInput,
  CycleResult,
  ExpiredLease,
  HeartbeatReply,
  JobInsert,
  Lease,
  ListOptions,
  StateCounts,
  Store,
  WorkerInfo,
  WorkerRegistration,
} from "../store.ts";
import { Db, type OpenOptions } from "./db.ts";

type Row = Record<string, unknown>;

const JOB_COLUMNS =
  "id, command, state, attempts, max_retries, priority, run_at, timeout_s, queue, cwd, created_at, updated_at, last_error, exit_code";

/** Opens (creating and migrating if needed) the SQLite store at `path`. */
export function openSqliteStore(path: string, options: OpenOptions = {}): SqliteStore {
  return new SqliteStore(new Db(path, options));
}

/** {@link Store} on one SQLite file. */
export class SqliteStore implements Store {
  readonly kind = "sqlite";
  readonly location: string;
  #db: Db;

  constructor(db: Db) {
    this.#db = db;
    this.location = db.path;
  }

  /** The connection, for tests and maintenance tools. */
  get db(): Db {
    return this.#db;
  }

  enqueue(jobs: JobInsert[], nowMs: number): Promise<void> {
    const insert = this.#db.prepare(
      `INSERT INTO jobs (id, command, max_retries, priority, run_at, timeout_s, queue, cwd, created_at, updated_at)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO NOTHING`,
    );
    return settle(() => {
      this.#db.write("enqueue", () => {
        for (const j of jobs) {
          const r = insert.run(
            j.id,
            j.command,
            j.max_retries,
            j.priority,
            j.run_at_ms,
            j.timeout_s,
            j.queue,
            j.cwd,
            nowMs,
            nowMs,
          );
          // Throwing rolls the whole batch back: all or nothing.
          if (r.changes === 0) throw new DuplicateJobError(j.id);
        }
      });
    });
  }

  getJob(id: string): Promise<JobDetail | null> {
    return settle(() =>
      this.#db.read("show job", () => {
        const row = this.#db.prepare(`SELECT ${JOB_COLUMNS} FROM jobs WHERE id = ?`).get(id) as
          | Row
          | undefined;
        if (!row) return null;
        const attempts = this.#db.prepare(
          `SELECT attempt, worker_id, started_at, ended_at, outcome, exit_code, signal, duration_ms,
                error, output_path, output_bytes, pid
         FROM attempts WHERE job_id = ? ORDER BY attempt`,
        ).all(id) as Row[];
        return { ...toJob(row), attempts_log: attempts.map(toAttempt) };
      })
    );
  }

  listJobs(options: ListOptions): Promise<Job[]> {
    const where: string[] = [];
    const params: (string | number)[] = [];
    if (options.states?.length) {
      where.push(`state IN (${options.states.map(() => "?").join(", ")})`);
      params.push(...options.states);
    }
    if (options.queue) {
      where.push("queue = ?");
      params.push(options.queue);
    }
    const limit = options.limit ?? 50;
    const sql = `SELECT ${JOB_COLUMNS} FROM jobs ${
      where.length ? "WHERE " + where.join(" AND ") : ""
    }
      ORDER BY created_at DESC, id DESC LIMIT ? OFFSET ?`;
    params.push(limit > 0 ? limit : -1, options.offset ?? 0);
    return settle(() =>
      this.#db.read("list jobs", () => (this.#db.prepare(sql).all(...params) as Row[]).map(toJob))
    );
  }

  countByState(): Promise<StateCounts> {
    const counts = Object.fromEntries(JOB_STATES.map((s) => [s, 0])) as StateCounts;
    return settle(() =>
      this.#db.read("count jobs", () => {
        // Final states from terminal_counts; the few active jobs from jobs_state_created.
        const active = this.#db.prepare("SELECT count(*) AS n FROM jobs WHERE state = ?");
        for (const state of ["pending", "processing", "failed"] as const) {
          counts[state] = Number((active.get(state) as Row).n);
        }
        for (const r of this.#db.prepare("SELECT state, n FROM terminal_counts").all() as Row[]) {
          counts[r.state as JobState] = Number(r.n);
        }
        return counts;
      })
    );
  }

  retryDead(ids: string[] | null, nowMs: number): Promise<string[]> {
    const reset = `UPDATE jobs SET state = 'pending', attempts = 0, run_at = ?, updated_at = ?,
       last_error = NULL, exit_code = NULL WHERE state = 'dead'`;
    return settle(() =>
      this.#db.write("retry dead jobs", () => {
        if (ids === null) {
          const rows = this.#db.prepare(`${reset} RETURNING id`).all(nowMs, nowMs) as Row[];
          this.#addTerminal({ dead: -rows.length });
          return rows.map((r) => String(r.id));
        }
        const one = this.#db.prepare(`${reset} AND id = ? RETURNING id`);
        const state = this.#db.prepare("SELECT state FROM jobs WHERE id = ?");
        for (const id of ids) {
          if (one.run(nowMs, nowMs, id).changes === 1) continue;
          const row = state.get(id) as Row | undefined;
          if (!row) throw new JobNotFoundError(id, "retry job");
          throw new UsageError(
            `cannot retry job ${JSON.stringify(id)}: it is ${row.state}, not dead`,
          );
        }
        this.#addTerminal({ dead: -ids.length });
        return ids;
      })
    );
  }

  claim(options: ClaimOptions): Promise<ClaimedJob[]> {
    if (options.limit <= 0) return Promise.resolve([]);
    return settle(() => this.#db.write("claim jobs", () => this.#claimIn(options)));
  }

  recordStarted(started: AttemptStarted[]): Promise<void> {
    if (started.length === 0) return Promise.resolve();
    return settle(() => this.#db.write("record started attempts", () => this.#startedIn(started)));
  }

  finish(finished: AttemptFinished[]): Promise<string[]> {
    if (finished.length === 0) return Promise.resolve([]);
    return settle(() => this.#db.write("record results", () => this.#finishIn(finished)));
  }

  cycle(input: CycleInput): Promise<CycleResult> {
    const claim = input.claim && input.claim.limit > 0 ? input.claim : null;
    if (!input.started.length && !input.finished.length && !claim) {
      return Promise.resolve({ refused: [], claimed: [] });
    }
    // Group commit: one transaction, so one fsync, for everything a worker has to say.
    return settle(() =>
      this.#db.write("record results and claim jobs", () => {
        this.#startedIn(input.started);
        const refused = this.#finishIn(input.finished);
        return { refused, claimed: claim ? this.#claimIn(claim) : [] };
      })
    );
  }

  #claimIn(options: ClaimOptions): ClaimedJob[] {
    const { workerId, host, limit, queues, nowMs, leaseMs } = options;
    const token = crypto.randomUUID();
    const expires = nowMs + leaseMs;
    const rows = this.#db.prepare(claimStatement(queues?.length ?? 0)).all(
      token,
      expires,
      workerId,
      nowMs,
      nowMs,
      ...(queues ?? []),
      limit,
    ) as Row[];
    const attemptInsert = this.#db.prepare(
      "INSERT INTO attempts (job_id, attempt, token, worker_id, host, started_at) VALUES (?, ?, ?, ?, ?, ?)",
    );
    const claimed = rows.map((row) => {
      const job = toJob(row);
      const attempt = Number(row.attempt_seq);
      attemptInsert.run(job.id, attempt, token, workerId, host, nowMs);
      return { job, attempt, token, lease_expires_ms: expires };
    });
    // RETURNING yields rows in update order, not claim order: restore claim order.
    return claimed.sort((a, b) =>
      b.job.priority - a.job.priority || a.job.run_at.localeCompare(b.job.run_at) ||
      (a.job.id < b.job.id ? -1 : a.job.id > b.job.id ? 1 : 0)
    );
  }

  #startedIn(started: AttemptStarted[]): void {
    if (started.length === 0) return;
    const update = this.#db.prepare(
      `UPDATE attempts SET host = ?, pid = ?, start_ticks = ?, output_path = ?
       WHERE job_id = ? AND attempt = ? AND token = ? AND outcome = 'running'`,
    );
    for (const s of started) {
      update.run(
        s.process.host,
        s.process.pid,
        s.process.start_ticks,
        s.output_path,
        s.job_id,
        s.attempt,
        s.token,
      );
    }
  }

  #finishIn(finished: AttemptFinished[]): string[] {
    if (finished.length === 0) return [];
    // Fenced: only the holder of the current lease can move the job out of processing.
    const job = this.#db.prepare(
      `UPDATE jobs SET
         state = CASE
           WHEN ?1 = 'succeeded' THEN 'completed'
           WHEN ?2 = 'release' THEN 'pending'
           WHEN attempts > max_retries THEN 'dead'
           ELSE 'failed' END,
         run_at = CASE
           WHEN ?1 = 'succeeded' THEN run_at
           WHEN ?2 = 'release' THEN ?3
           WHEN attempts > max_retries THEN run_at
           ELSE ?4 END,
         -- A released attempt (a shutdown, this worker's full disk) was not the job's: the
         -- claim gives back the one it counted, so it spends none of the job's retries.
         attempts = CASE WHEN ?2 = 'release' THEN attempts - 1 ELSE attempts END,
         exit_code = ?5, last_error = ?6, updated_at = ?3,
         lease_token = NULL, lease_expires_at = NULL, worker_id = NULL
       WHERE id = ?7 AND lease_token = ?8 AND state = 'processing'
       RETURNING state`,
    );
    const attempt = this.#db.prepare(
      `UPDATE attempts SET ended_at = ?, outcome = ?, exit_code = ?, signal = ?, duration_ms = ?,
         error = ?, output_bytes = ?
       WHERE job_id = ? AND attempt = ? AND token = ?`,
    );
    const refused: string[] = [];
    const ended: Partial<Record<JobState, number>> = {};
    for (const f of finished) {
      const row = job.get(
        f.outcome,
        f.disposition,
        f.ended_ms,
        f.retry_at_ms,
        f.exit_code,
        f.outcome === "succeeded" ? null : f.error,
        f.job_id,
        f.token,
      ) as Row | undefined;
      if (!row) {
        refused.push(f.job_id);
        continue;
      }
      const state = row.state as JobState;
      ended[state] = (ended[state] ?? 0) + 1;
      attempt.run(
        f.ended_ms,
        f.outcome,
        f.exit_code,
        f.signal,
        Math.round(f.duration_ms),
        f.error,
        f.output_bytes,
        f.job_id,
        f.attempt,
        f.token,
      );
    }
    this.#addTerminal(ended);
    return refused;
  }

  heartbeat(
    workerId: string,
    leases: Lease[],
    options: { nowMs: number; leaseMs: number },
  ): Promise<HeartbeatReply> {
    const extend = this.#db.prepare(
      `UPDATE jobs SET lease_expires_at = ? WHERE id = ? AND lease_token = ? AND state = 'processing'`,
    );
    const beat = this.#db.prepare(
      "UPDATE workers SET heartbeat_at = ? WHERE id = ? RETURNING stop_requested_at",
    );
    return settle(() =>
      this.#db.write("heartbeat", () => {
        const lost: string[] = [];
        const until = options.nowMs + options.leaseMs;
        for (const l of leases) {
          if (extend.run(until, l.job_id, l.token).changes === 0) lost.push(l.job_id);
        }
        const row = beat.get(options.nowMs, workerId) as Row | undefined;
        return { lost, stop_requested: row?.stop_requested_at != null, registered: row != null };
      })
    );
  }

  expiredLeases(nowMs: number, limit: number): Promise<ExpiredLease[]> {
    return settle(() => {
      const rows = this.#db.read("find expired leases", () =>
        this.#db.prepare(
          `SELECT j.id, j.lease_token, j.worker_id, j.attempts, j.attempt_seq, j.max_retries,
                a.host, a.pid, a.start_ticks
         FROM jobs j LEFT JOIN attempts a ON a.job_id = j.id AND a.attempt = j.attempt_seq
         WHERE j.state = 'processing' AND j.lease_expires_at < ?
         ORDER BY j.lease_expires_at LIMIT ?`,
        ).all(nowMs, limit) as Row[]);
      return rows.map((r) => ({
        job_id: String(r.id),
        token: String(r.lease_token),
        attempt: Number(r.attempt_seq),
        worker_id: r.worker_id == null ? null : String(r.worker_id),
        attempts: Number(r.attempts),
        max_retries: Number(r.max_retries),
        process: r.host == null ? null : {
          host: String(r.host),
          pid: r.pid == null ? null : Number(r.pid),
          start_ticks: r.start_ticks == null ? null : Number(r.start_ticks),
        },
      }));
    });
  }

  rescue(
    expired: Array<ExpiredLease & { retry_at_ms: number; error: string }>,
    nowMs: number,
  ): Promise<string[]> {
    const job = this.#db.prepare(
      `UPDATE jobs SET
         state = CASE WHEN attempts > max_retries THEN 'dead' ELSE 'failed' END,
         run_at = CASE WHEN attempts > max_retries THEN run_at ELSE ? END,
         last_error = ?, exit_code = NULL, updated_at = ?,
         lease_token = NULL, lease_expires_at = NULL, worker_id = NULL
       WHERE id = ? AND lease_token = ? AND state = 'processing' AND lease_expires_at < ?
       RETURNING state`,
    );
    const attempt = this.#db.prepare(
      `UPDATE attempts SET ended_at = ?, outcome = 'lost', error = ?,
         duration_ms = ? - started_at
       WHERE job_id = ? AND attempt = ? AND token = ? AND outcome = 'running'`,
    );
    return settle(() =>
      this.#db.write("rescue expired jobs", () => {
        const rescued: string[] = [];
        let dead = 0;
        for (const e of expired) {
          const row = job.get(e.retry_at_ms, e.error, nowMs, e.job_id, e.token, nowMs) as
            | Row
            | undefined;
          if (!row) continue;
          if (row.state === "dead") dead++;
          attempt.run(nowMs, e.error, nowMs, e.job_id, e.attempt, e.token);
          rescued.push(e.job_id);
        }
        this.#addTerminal({ dead });
        return rescued;
      })
    );
  }

  prune(options: {
    states: JobState[];
    beforeMs: number;
    limit: number;
  }): Promise<{ ids: string[]; outputPaths: string[] }> {
    const { states, beforeMs, limit } = options;
    if (states.includes("processing")) {
      return Promise.reject(new UsageError("cannot prune jobs: processing jobs are never pruned"));
    }
    if (states.length === 0) return Promise.resolve({ ids: [], outputPaths: [] });
    const marks = states.map(() => "?").join(", ");
    return settle(() =>
      this.#db.write("prune jobs", () => {
        // created_at <= updated_at, so the created_at range lets jobs_state_created find the
        // candidates without reading the whole table.
        const ids = (this.#db.prepare(
          `SELECT id FROM jobs WHERE state IN (${marks}) AND created_at < ? AND updated_at < ?
           LIMIT ?`,
        ).all(...states, beforeMs, beforeMs, limit) as Row[]).map((r) => String(r.id));
        if (ids.length === 0) return { ids, outputPaths: [] };
        const list = ids.map(() => "?").join(", ");
        const outputPaths = (this.#db.prepare(
          `SELECT output_path FROM attempts WHERE job_id IN (${list}) AND output_path IS NOT NULL`,
        ).all(...ids) as Row[]).map((r) => String(r.output_path));
        // Attempts go with their job (ON DELETE CASCADE).
        const gone = this.#db.prepare(`DELETE FROM jobs WHERE id IN (${list}) RETURNING state`)
          .all(...ids) as Row[];
        const removed: Partial<Record<JobState, number>> = {};
        for (const r of gone) {
          removed[r.state as JobState] = (removed[r.state as JobState] ?? 0) - 1;
        }
        this.#addTerminal(removed);
        return { ids, outputPaths };
      })
    );
  }

  stopRequested(workerId: string): Promise<boolean> {
    return settle(() => {
      const row = this.#db.read(
        "read worker state",
        () =>
          this.#db.prepare("SELECT stop_requested_at FROM workers WHERE id = ?").get(workerId) as
            | Row
            | undefined,
      );
      return row?.stop_requested_at != null;
    });
  }

  registerWorker(worker: WorkerRegistration, nowMs: number): Promise<void> {
    return settle(() => {
      this.#db.write("register worker", () => {
        this.#db.prepare(
          `INSERT INTO workers (id, host, pid, start_ticks, slots, queues, started_at, heartbeat_at)
           VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
        ).run(
          worker.id,
          worker.host,
          worker.pid,
          worker.start_ticks,
          worker.slots,
          worker.queues ? JSON.stringify(worker.queues) : null,
          nowMs,
          nowMs,
        );
      });
    });
  }

  unregisterWorker(workerId: string): Promise<void> {
    return settle(() => {
      this.#db.write("unregister worker", () => {
        this.#db.prepare("DELETE FROM workers WHERE id = ?").run(workerId);
      });
    });
  }

  forgetDeadWorker(workerId: string, nowMs: number): Promise<number> {
    return settle(() =>
      this.#db.write("forget a dead worker", () => {
        // expiredLeases takes leases that ended strictly before its time: end them just before.
        const ended = this.#db.prepare(
          `UPDATE jobs SET lease_expires_at = ?
           WHERE worker_id = ? AND state = 'processing' AND lease_expires_at >= ?`,
        ).run(nowMs - 1, workerId, nowMs).changes;
        this.#db.prepare("DELETE FROM workers WHERE id = ?").run(workerId);
        return Number(ended);
      })
    );
  }

  listWorkers(nowMs: number, staleMs: number): Promise<WorkerInfo[]> {
    return settle(() => {
      const rows = this.#db.read("list workers", () =>
        this.#db.prepare(
          `SELECT w.*, (SELECT count(*) FROM jobs j WHERE j.state = 'processing' AND j.worker_id = w.id)
                AS running
         FROM workers w WHERE w.heartbeat_at >= ? ORDER BY w.started_at, w.id`,
        ).all(nowMs - staleMs) as Row[]);
      return rows.map((r) => ({
        id: String(r.id),
        host: String(r.host),
        pid: Number(r.pid),
        slots: Number(r.slots),
        queues: r.queues == null ? null : JSON.parse(String(r.queues)),
        started_at: iso(Number(r.started_at)),
        heartbeat_at: iso(Number(r.heartbeat_at)),
        state: r.stop_requested_at == null ? "running" : "stopping",
        running: Number(r.running),
        start_ticks: r.start_ticks == null ? null : Number(r.start_ticks),
      }));
    });
  }

  requestStop(workerIds: string[] | null, nowMs: number, staleMs: number): Promise<number> {
    return settle(() =>
      this.#db.write("stop workers", () => {
        // Rows of workers that died without unregistering are dropped here too.
        this.#db.prepare("DELETE FROM workers WHERE heartbeat_at < ?").run(nowMs - staleMs);
        const base =
          "UPDATE workers SET stop_requested_at = coalesce(stop_requested_at, ?) WHERE heartbeat_at >= ?";
        if (workerIds === null) {
          return Number(this.#db.prepare(base).run(nowMs, nowMs - staleMs).changes);
        }
        const one = this.#db.prepare(`${base} AND id = ?`);
        let n = 0;
        for (const id of workerIds) n += Number(one.run(nowMs, nowMs - staleMs, id).changes);
        return n;
      })
    );
  }

  close(): void {
    this.#db.close();
  }

  /** Applies changes to terminal_counts; call inside the write that moved the jobs. */
  #addTerminal(delta: Partial<Record<JobState, number>>): void {
    const update = this.#db.prepare("UPDATE terminal_counts SET n = n + ? WHERE state = ?");
    for (const state of ["completed", "dead", "cancelled"] as const) {
      if (delta[state]) update.run(delta[state]!, state);
    }
  }
}

/**
 * The claim: one statement. The subquery walks the partial index jobs_ready in claim
 * order (INDEXED BY pins it: without statistics the planner would rather use the state
 * index and sort) and stops after LIMIT rows; the write lock taken by BEGIN IMMEDIATE
 * makes the pick and the update atomic across processes.
 */
export function claimStatement(queueCount: number): string {
  const queueFilter = queueCount ? `AND queue IN (${Array(queueCount).fill("?").join(", ")})` : "";
  return `UPDATE jobs
    SET state = 'processing', attempts = attempts + 1, attempt_seq = attempt_seq + 1,
        lease_token = ?, lease_expires_at = ?,
        worker_id = ?, updated_at = ?
    WHERE id IN (SELECT id FROM jobs INDEXED BY jobs_ready
                 WHERE state IN ('pending', 'failed') AND run_at <= ? ${queueFilter}
                 ORDER BY priority DESC, run_at, id LIMIT ?)
    RETURNING ${JOB_COLUMNS}, attempt_seq`;
}

/** Runs synchronous store code, turning a throw into a rejected promise. */
function settle<T>(fn: () => T): Promise<T> {
  try {
    return Promise.resolve(fn());
  } catch (e) {
    return Promise.reject(e);
  }
}

function toJob(r: Row): Job {
  return {
    id: String(r.id),
    command: String(r.command),
    state: r.state as JobState,
    attempts: Number(r.attempts),
    max_retries: Number(r.max_retries),
    priority: Number(r.priority),
    run_at: iso(Number(r.run_at)),
    timeout_s: r.timeout_s == null ? null : Number(r.timeout_s),
    queue: String(r.queue),
    cwd: r.cwd == null ? null : String(r.cwd),
    created_at: iso(Number(r.created_at)),
    updated_at: iso(Number(r.updated_at)),
    last_error: r.last_error == null ? null : String(r.last_error),
    exit_code: r.exit_code == null ? null : Number(r.exit_code),
  };
}

function toAttempt(r: Row): Attempt {
  const num = (v: unknown) => (v == null ? null : Number(v));
  const str = (v: unknown) => (v == null ? null : String(v));
  return {
    attempt: Number(r.attempt),
    worker_id: String(r.worker_id),
    started_at: iso(Number(r.started_at)),
    ended_at: r.ended_at == null ? null : iso(Number(r.ended_at)),
    outcome: r.outcome as Attempt["outcome"],
    exit_code: num(r.exit_code),
    signal: str(r.signal),
    duration_ms: num(r.duration_ms),
    error: str(r.error),
    output_path: str(r.output_path),
    output_bytes: num(r.output_bytes),
    pid: num(r.pid),
  };
}
