/**
 * The one interface the rest of queuectl uses to reach storage. SQLite implements it
 * now; PostgreSQL will implement the same contract, checked by
 * `tests/store_conformance.ts`.
 *
 * Every method that a worker uses to change a job it holds is fenced by the lease token
 * it got from `claim`: once a lease was taken over, the old holder changes nothing.
 *
 * @module
 */

import type { Job, JobDetail, JobState, OutcomeKind } from "../job.ts";

/** A job ready to be written by `enqueue`: every default already applied. */
export interface JobInsert {
  id: string;
  command: string;
  max_retries: number;
  priority: number;
  run_at_ms: number;
  timeout_s: number | null;
  queue: string;
  cwd: string | null;
}

/** Where a process runs, so a rescuer knows whether it can reach an orphan. */
export interface ProcessPlace {
  /** Host name plus PID-namespace and boot identity: equal strings mean "same kernel view". */
  host: string;
  /** Null while the attempt is claimed but its process not yet recorded. */
  pid: number | null;
  /** The process start time in clock ticks since boot (from /proc), against PID reuse. */
  start_ticks: number | null;
}

/** A job handed to a worker by `claim`, with the lease that fences its updates. */
export interface ClaimedJob {
  job: Job;
  /**
   * The number of the attempt this claim started, counting every attempt the job ever
   * had (1-based; unlike `job.attempts`, a DLQ retry does not reset it).
   */
  attempt: number;
  token: string;
  lease_expires_ms: number;
}

/** What `claim` takes. */
export interface ClaimOptions {
  workerId: string;
  /** The worker's {@link ProcessPlace.host}, recorded on each attempt at once. */
  host: string;
  limit: number;
  queues: string[] | null;
  nowMs: number;
  leaseMs: number;
}

/** What a worker reports and asks for in one {@link Store.cycle}. */
export interface CycleInput {
  started: AttemptStarted[];
  finished: AttemptFinished[];
  /** Claim more, or null to only record. */
  claim: ClaimOptions | null;
}

/** What {@link Store.cycle} returns. */
export interface CycleResult {
  /** Job ids whose result was refused (lease taken over). */
  refused: string[];
  claimed: ClaimedJob[];
}

/** A lease a worker holds: the job and the token that proves it. */
export interface Lease {
  job_id: string;
  token: string;
}

/** The process an attempt started, recorded as soon as it was spawned. */
export interface AttemptStarted extends Lease {
  attempt: number;
  process: ProcessPlace;
  output_path: string;
}

/** How an attempt ended, and what the job becomes. */
export interface AttemptFinished extends Lease {
  attempt: number;
  outcome: OutcomeKind;
  exit_code: number | null;
  signal: string | null;
  error: string | null;
  ended_ms: number;
  duration_ms: number;
  output_bytes: number | null;
  /**
   * What happens to the job: `retry` means completed on success, else failed until
   * `retry_at_ms` (or dead when no retries are left); `release` puts it back to pending
   * at once (a shutdown interrupted it).
   */
  disposition: "retry" | "release";
  /** When a failed job runs again, if it has retries left. */
  retry_at_ms: number;
}

/** A processing job whose lease ran out: its worker died or stalled. */
export interface ExpiredLease extends Lease {
  attempt: number;
  worker_id: string | null;
  attempts: number;
  max_retries: number;
  process: ProcessPlace | null;
}

/** A worker process as the registry shows it. */
export interface WorkerInfo {
  id: string;
  host: string;
  pid: number;
  slots: number;
  queues: string[] | null;
  started_at: string;
  heartbeat_at: string;
  state: "running" | "stopping";
  /** Jobs it holds now. */
  running: number;
  /** Its process's start time in clock ticks since boot (with host and pid, its identity). */
  start_ticks: number | null;
}

/** What a worker registers. */
export interface WorkerRegistration {
  id: string;
  host: string;
  pid: number;
  /** The process's start time in clock ticks since boot, or null when unknown. */
  start_ticks: number | null;
  slots: number;
  queues: string[] | null;
}

/** What a heartbeat tells the worker back. */
export interface HeartbeatReply {
  /** Jobs whose lease the worker no longer holds: it must stop running them. */
  lost: string[];
  /** Someone asked this worker to stop (`worker stop`). */
  stop_requested: boolean;
  /**
   * Whether the worker's registry row exists. A worker that stalled past its lease may
   * have been dropped as dead; it registers again so `worker list` and `stop` see it.
   */
  registered: boolean;
}

/** Filters for `listJobs`. Newest first. */
export interface ListOptions {
  states?: JobState[];
  queue?: string;
  /** @default 50 (0 means no limit) */
  limit?: number;
  offset?: number;
}

/** Per-state counts. */
export type StateCounts = Record<JobState, number>;

/** The storage contract. */
export interface Store {
  /** Which backend this is, e.g. `sqlite`. */
  readonly kind: string;
  /** Where it lives, for messages (a path or a URL without secrets). */
  readonly location: string;

  /** Inserts jobs in one transaction: all or none. @throws {DuplicateJobError} */
  enqueue(jobs: JobInsert[], nowMs: number): Promise<void>;
  getJob(id: string): Promise<JobDetail | null>;
  listJobs(options: ListOptions): Promise<Job[]>;
  countByState(): Promise<StateCounts>;
  /**
   * Moves dead jobs back to pending with attempts reset to 0 (`ids` null: every dead
   * job). Returns the ids moved. @throws {JobNotFoundError} or a UsageError when one
   * named job is not dead; then nothing moved.
   */
  retryDead(ids: string[] | null, nowMs: number): Promise<string[]>;

  /**
   * Atomically claims up to `limit` runnable jobs (pending or failed with `run_at` due),
   * highest priority first, then earliest `run_at`, then id. Each gets a fresh lease
   * token, `attempts + 1` and an attempt record.
   */
  claim(options: ClaimOptions): Promise<ClaimedJob[]>;
  /** Records the processes of started attempts (fenced; stale ones are ignored). */
  recordStarted(started: AttemptStarted[]): Promise<void>;
  /** Records finished attempts (fenced). Returns the job ids whose result was refused. */
  finish(finished: AttemptFinished[]): Promise<string[]>;
  /**
   * Records started and finished attempts and claims more jobs, atomically where the
   * backend can (one transaction: group commit). Same fencing as the single calls.
   */
  cycle(input: CycleInput): Promise<CycleResult>;
  /** Extends the leases a worker holds and refreshes its registry row. */
  heartbeat(
    workerId: string,
    leases: Lease[],
    options: { nowMs: number; leaseMs: number },
  ): Promise<HeartbeatReply>;

  /** Processing jobs whose lease expired before `nowMs`. */
  expiredLeases(nowMs: number, limit: number): Promise<ExpiredLease[]>;
  /**
   * Fails the attempts of expired leases through the normal retry path (failed with a
   * retry time, or dead), fenced by token and by the lease still being expired. Returns
   * the job ids it rescued.
   */
  rescue(
    expired: Array<ExpiredLease & { retry_at_ms: number; error: string }>,
    nowMs: number,
  ): Promise<string[]>;

  /**
   * Deletes up to `limit` jobs in `states` (terminal ones) last updated before `beforeMs`,
   * with their attempts, in one short transaction. Returns what went, with the output files
   * the caller should remove. Call it in a loop: small batches never block workers long.
   */
  prune(options: {
    states: JobState[];
    beforeMs: number;
    limit: number;
  }): Promise<{ ids: string[]; outputPaths: string[] }>;

  /** Whether someone asked this worker to stop; a cheap read a worker makes every poll. */
  stopRequested(workerId: string): Promise<boolean>;
  registerWorker(worker: WorkerRegistration, nowMs: number): Promise<void>;
  /** Removes a worker's registry row (on a clean exit). */
  unregisterWorker(workerId: string): Promise<void>;
  /**
   * For a worker known to be dead (its process is gone on this host): ends its leases as of
   * `nowMs`, so {@link Store.expiredLeases} returns its jobs at once instead of after the
   * lease, and removes its registry row. Returns how many leases it ended.
   */
  forgetDeadWorker(workerId: string, nowMs: number): Promise<number>;
  /** Workers whose heartbeat is newer than `staleMs` before `nowMs`. */
  listWorkers(nowMs: number, staleMs: number): Promise<WorkerInfo[]>;
  /** Asks live workers to stop (all, or the ones named). Returns how many were asked. */
  requestStop(workerIds: string[] | null, nowMs: number, staleMs: number): Promise<number>;

  /** Releases the connection. */
  close(): void;
}
