/**
 * The queue as a library sees it: a data directory, its config and its store.
 *
 * @module
 */

import { type Config, loadConfig } from "./config.ts";
import { DuplicateJobError, JobNotFoundError, UsageError } from "./errors.ts";
import { ensureHome, resolveHome } from "./home.ts";
import {
  isJobState,
  type Job,
  JOB_STATES,
  type JobDetail,
  type JobState,
  newJobId,
  parseNewJob,
} from "./job.ts";
import { notifyWorkers } from "./notify.ts";
import { openStore } from "./store/open.ts";
import type { Durability } from "./store/sqlite/db.ts";
import type { JobInsert, ListOptions, StateCounts, Store, WorkerInfo } from "./store/store.ts";

/** Options for {@link openQueue}. */
export interface QueueOptions {
  /** The data directory. @default `$QUEUECTL_HOME`, else the XDG data directory */
  home?: string;
  /** A store URL or path. @default `$QUEUECTL_DB`, else `<home>/queue.db` */
  db?: string | null;
  /** Commit durability of the SQLite store. @default "full" */
  durability?: Durability;
}

/** Counts per state and the live workers. */
export interface Status {
  counts: StateCounts;
  workers: WorkerInfo[];
}

/** Opens the queue in a data directory, creating it (mode 0700) when missing. */
export async function openQueue(options: QueueOptions = {}): Promise<Queue> {
  const home = resolveHome(options.home);
  ensureHome(home);
  const url = options.db !== undefined ? options.db : Deno.env.get("QUEUECTL_DB") ?? null;
  const store = await openStore({ url, home, durability: options.durability });
  return new Queue(home, store);
}

/** A handle on one queue: enqueue, inspect, retry from the DLQ. */
export class Queue {
  constructor(readonly home: string, readonly store: Store) {}

  /** The current configuration (re-read from config.json each call). */
  config(): Config {
    return loadConfig(this.home);
  }

  /**
   * Validates and enqueues jobs in one transaction. Returns their ids in input order.
   *
   * @throws {UsageError} when any job is invalid or an id is taken; nothing is written.
   */
  async enqueue(
    inputs: unknown[],
    options: { now?: number; cwd?: string | null } = {},
  ): Promise<string[]> {
    const now = options.now ?? Date.now();
    const config = this.config();
    const defaultCwd = options.cwd === undefined ? Deno.cwd() : options.cwd;
    const seen = new Set<string>();
    const rows: JobInsert[] = inputs.map((input, i) => {
      let job;
      try {
        job = parseNewJob(input, { now, defaultCwd });
      } catch (e) {
        if (inputs.length > 1 && e instanceof UsageError) {
          throw new UsageError(
            e.message.replace(/^cannot enqueue:/, `cannot enqueue: job ${i + 1}:`),
          );
        }
        throw e;
      }
      const id = job.id ?? newJobId(now);
      if (seen.has(id)) throw new DuplicateJobError(id);
      seen.add(id);
      return {
        id,
        command: job.command,
        max_retries: job.max_retries ?? config.maxRetries,
        priority: job.priority,
        run_at_ms: job.run_at_ms ?? now,
        timeout_s: job.timeout_s === undefined ? config.jobTimeoutS : job.timeout_s,
        queue: job.queue,
        cwd: job.cwd,
      };
    });
    if (rows.length === 0) throw new UsageError("cannot enqueue: no jobs given");
    await this.store.enqueue(rows, now);
    if (rows.some((r) => r.run_at_ms <= now)) notifyWorkers(this.home);
    return rows.map((r) => r.id);
  }

  /** One job with its attempts. @throws {JobNotFoundError} */
  async get(id: string): Promise<JobDetail> {
    const job = await this.store.getJob(id);
    if (!job) throw new JobNotFoundError(id, "show job");
    return job;
  }

  /** Jobs, newest first. */
  list(options: ListOptions = {}): Promise<Job[]> {
    return this.store.listJobs(options);
  }

  /** Counts per state and live workers. */
  async status(now: number = Date.now()): Promise<Status> {
    const config = this.config();
    const [counts, workers] = await Promise.all([
      this.store.countByState(),
      this.store.listWorkers(now, config.leaseS * 1000),
    ]);
    return { counts, workers };
  }

  /** Moves dead jobs back to pending (`ids` null: all of them). */
  async retryDead(ids: string[] | null, now: number = Date.now()): Promise<string[]> {
    const moved = await this.store.retryDead(ids, now);
    if (moved.length) notifyWorkers(this.home);
    return moved;
  }

  /** Releases the store. */
  close(): void {
    this.store.close();
  }
}

/** Parses a comma-separated list of states. @throws {UsageError} */
export function parseStates(text: string): JobState[] {
  const states = text.split(",").map((s) => s.trim()).filter(Boolean);
  for (const s of states) {
    if (!isJobState(s)) {
      throw new UsageError(
        `cannot list jobs: unknown state ${JSON.stringify(s)} (valid: ${JOB_STATES.join(", ")})`,
      );
    }
  }
  return states as JobState[];
}
