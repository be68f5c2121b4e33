/**
 * The worker pool: one process whose main thread owns the store (claims, heartbeats,
 * results, rescue) and whose N execution slots run one attempt each, all on one execution
 * thread (a Web Worker, see slot.ts).
 *
 * @module
 */

import { dirPath, joinPath as join } from "../paths.ts";
import { nextRunAt } from "../backoff.ts";
import { type Config, loadConfig } from "../config.ts";
import { outputRelPath } from "../home.ts";
import { watchWake } from "../notify.ts";
import type { OutcomeKind } from "../job.ts";
import type { AttemptFinished, AttemptStarted, ClaimedJob, Store } from "../store/store.ts";
import { type AttemptResult, type AttemptSpec, notRun } from "./executor.ts";
import { newWorkerId } from "./ids.ts";
import { hostIdentity, killByAttemptMarker, killGroup, processStartTicks } from "./process.ts";
import { forgetDeadNeighbours, rescueExpired } from "./rescuer.ts";
import type { SlotReport, SlotRequest } from "./slot.ts";

/** Where a pool's messages go. */
export type PoolLog = (level: "info" | "warn" | "error", message: string) => void;

/** Options for a {@link Pool}. */
export interface PoolOptions {
  /** The data directory (config and output files live there). */
  home: string;
  /** Execution slots: jobs run at once. @default 1 */
  slots?: number;
  /** Only claim from these queues. @default all queues */
  queues?: string[] | null;
  /** This worker's id in the registry. @default a new random id */
  workerId?: string;
  log?: PoolLog;
  /**
   * For tests only (tests/pool_thread_test.ts): the execution thread's module, there one
   * that loads the real slot.ts and then crashes. Not part of the library's API.
   * @internal
   * @default ./slot.ts
   */
  threadModule?: URL;
}

interface Slot {
  index: number;
  running: Running | null;
}

interface Running {
  claim: ClaimedJob;
  outputPath: string;
  abortReason: string | null;
  /** The attempt's process group, once spawned. */
  pid?: number;
}

/** Runs jobs from a store until stopped. */
export class Pool {
  readonly workerId: string;
  #store: Store;
  #home: string;
  #slotCount: number;
  #queues: string[] | null;
  #log: PoolLog;
  #config: Config;
  #configReadAt = 0;
  #slots: Slot[] = [];
  #thread: Worker | null = null;
  #started: AttemptStarted[] = [];
  #startedSince = 0;
  #finished: AttemptFinished[] = [];
  #wake: (() => void) | null = null;
  #stopDeadline: number | null = null;
  #abortedForShutdown = false;
  #nextHeartbeat = 0;
  #nextRescue = 0;
  #stopCheckDue = false;
  #claimsPausedUntil = 0;
  #outputDirs = new Set<string>();
  #host = hostIdentity();
  #startTicks: number | null | undefined;
  #threadModule: URL;

  constructor(store: Store, options: PoolOptions) {
    this.#store = store;
    this.#home = options.home;
    this.#slotCount = Math.max(1, options.slots ?? 1);
    this.#queues = options.queues?.length ? options.queues : null;
    this.workerId = options.workerId ?? newWorkerId();
    this.#log = options.log ?? (() => {});
    this.#config = loadConfig(this.#home);
    this.#threadModule = options.threadModule ?? new URL("./slot.ts", import.meta.url);
  }

  /** Whether a stop was asked for. */
  get stopping(): boolean {
    return this.#stopDeadline !== null;
  }

  /**
   * Stops claiming; running jobs get `graceMs` (default: the `shutdown-grace` config) to
   * finish, then they are killed and released back to pending.
   */
  stop(graceMs: number = this.#config.shutdownGraceS * 1000): void {
    const deadline = Date.now() + graceMs;
    if (this.#stopDeadline === null || deadline < this.#stopDeadline) this.#stopDeadline = deadline;
    this.#wake?.();
  }

  /** Kills running jobs now, releases them, and exits the loop. */
  kill(): void {
    this.stop(0);
  }

  /** Runs until stopped. Resolves once every slot is idle and the worker unregistered. */
  async run(): Promise<void> {
    await this.#register(Date.now());
    this.#log("info", `worker ${this.workerId} started with ${this.#slotCount} slot(s)`);
    for (let i = 0; i < this.#slotCount; i++) this.#slots.push({ index: i, running: null });
    this.#thread = this.#newThread();
    // New work wakes the loop at once; the poll interval is only the fallback.
    // A wake-up may also be `worker stop`: look for a stop request on the next round.
    const unwatch = watchWake(this.#home, () => {
      this.#stopCheckDue = true;
      this.#wake?.();
    });
    try {
      await this.#loop();
    } finally {
      unwatch();
      this.#thread?.terminate();
      await this.#store.unregisterWorker(this.workerId).catch(() => {});
      this.#log("info", `worker ${this.workerId} stopped`);
    }
  }

  async #loop(): Promise<void> {
    while (true) {
      try {
        if (await this.#round()) return;
      } catch (e) {
        // The store failed (disk full, database unreadable…): keep running jobs, keep
        // what is not yet recorded, and try again shortly. Leases outlive a short outage.
        this.#log("error", `${(e as Error).message}; retrying in 1 s`);
        await this.#sleep(1000);
      }
    }
  }

  /** One round of the worker loop; true when the pool is done. */
  async #round(): Promise<boolean> {
    const now = Date.now();
    this.#reloadConfig(now);
    // 1. Heartbeat: extend our leases, learn of lost ones and of a stop request.
    if (now >= this.#nextHeartbeat) await this.#heartbeat(now);
    // 2. A stop request through the store; rescue the jobs of dead workers.
    if (this.#stopCheckDue && !this.stopping) await this.#checkStop();
    if (now >= this.#nextRescue && !this.stopping) await this.#rescue(now);
    // 3. Record what the slots reported and claim a job for every free slot, in one
    //    transaction (group commit: one fsync however much there is to say).
    const paused = now < this.#claimsPausedUntil;
    const free = this.stopping || paused ? 0 : this.#slots.filter((s) => !s.running).length;
    const claimed = await this.#cycle(now, free);
    // 4. Stopping: kill what outlived the grace period; leave once every slot is idle.
    if (this.stopping) {
      const busy = this.#slots.filter((s) => s.running).length;
      if (busy === 0 && !this.#started.length && !this.#finished.length) return true;
      if (now >= this.#stopDeadline! && !this.#abortedForShutdown) {
        this.#abortedForShutdown = true;
        this.#log("warn", `shutdown grace over: killing ${busy} running job(s)`);
        for (const slot of this.#slots) this.#abort(slot, "shutdown");
      }
    } else if (free > 0 && claimed === free) {
      return false; // a full batch hints at more work: go round again without sleeping
    }
    // 5. Sleep until a slot reports, work arrives, a stop is asked, or a periodic check is
    //    due. The poll is only the fallback for delayed jobs and missed wake-ups. A start
    //    waits up to STARTED_DELAY_MS for company: a short job's start and result then go
    //    in one commit.
    if (this.#finished.length) return false;
    const due = Math.min(
      this.#started.length ? this.#startedSince + STARTED_DELAY_MS : Infinity,
      this.#nextHeartbeat,
      this.stopping ? this.#stopDeadline! : now + this.#config.pollIntervalS * 1000,
      paused ? this.#claimsPausedUntil : Infinity,
    );
    await this.#sleep(Math.max(0, due - Date.now()));
    return false;
  }

  #reloadConfig(now: number): void {
    // Workers pick up `config set` without a restart; reading once a second is plenty.
    if (now - this.#configReadAt < 1000) return;
    this.#configReadAt = now;
    try {
      this.#config = loadConfig(this.#home);
    } catch (e) {
      this.#log("warn", `keeping the previous config: ${(e as Error).message}`);
    }
  }

  async #cycle(now: number, free: number): Promise<number> {
    const started = this.#started;
    const finished = this.#finished;
    this.#started = [];
    this.#finished = [];
    let result;
    try {
      result = await this.#store.cycle({
        started,
        finished,
        claim: free > 0
          ? {
            workerId: this.workerId,
            host: this.#host,
            limit: free,
            queues: this.#queues,
            nowMs: now,
            leaseMs: this.#config.leaseS * 1000,
          }
          : null,
      });
    } catch (e) {
      // Nothing was written: keep the reports for the next try.
      this.#started = started.concat(this.#started);
      this.#finished = finished.concat(this.#finished);
      throw e;
    }
    const { refused, claimed } = result;
    for (const id of refused) {
      this.#log("warn", `result of job ${id} refused: its lease was taken over`);
    }
    const idle = this.#slots.filter((s) => !s.running);
    claimed.forEach((claim, i) => this.#dispatch(idle[i], claim, now));
    return claimed.length;
  }

  #dispatch(slot: Slot, claim: ClaimedJob, now: number): void {
    const rel = outputRelPath(claim.job.id, claim.attempt, now);
    const outputPath = join(this.#home, rel);
    const dir = dirPath(outputPath);
    if (!this.#outputDirs.has(dir)) {
      try {
        Deno.mkdirSync(dir, { recursive: true, mode: 0o700 });
        this.#outputDirs.add(dir);
      } catch (e) {
        // This worker's trouble (a full disk), not the job's: give the job back untouched.
        const message = `cannot create output folder ${dir}: ${(e as Error).message}`;
        slot.running = { claim, outputPath, abortReason: "local failure" };
        this.#slotDone(slot, localFailure(message));
        return;
      }
    }
    const spec: AttemptSpec = {
      jobId: claim.job.id,
      attempt: claim.attempt,
      command: claim.job.command,
      cwd: claim.job.cwd,
      timeoutMs: claim.job.timeout_s === null ? null : claim.job.timeout_s * 1000,
      killGraceMs: this.#config.killGraceS * 1000,
      outputPath,
      outputLimit: this.#config.outputLimitBytes,
    };
    slot.running = { claim, outputPath, abortReason: null };
    this.#post({ type: "run", slot: slot.index, spec });
  }

  #post(request: SlotRequest): void {
    this.#thread!.postMessage(request);
  }

  /**
   * The execution thread. If it crashes, the running attempts' process groups are killed
   * and each attempt ends as a crash (its job is retried); a new thread takes the next jobs.
   */
  #newThread(): Worker {
    const thread = new Worker(this.#threadModule, { type: "module" });
    thread.onmessage = (event: MessageEvent<SlotReport>) => this.#onReport(event.data);
    thread.onerror = (event) => {
      event.preventDefault();
      this.#log("error", `execution thread crashed: ${event.message}`);
      thread.terminate();
      this.#thread = this.#newThread();
      const grace = { graceMs: this.#config.killGraceS * 1000 };
      const running = this.#slots.filter((s) => s.running);
      // An attempt whose spawn report was lost with the thread is found by its marker.
      const kill = ({ pid, claim }: Running) =>
        pid ? killGroup(pid, grace) : killByAttemptMarker(claim.job.id, claim.attempt);
      Promise.all(running.map((s) => kill(s.running!)))
        .catch(() => {})
        .finally(() => {
          for (const slot of running) this.#slotDone(slot, crashResult(event.message));
          this.#wake?.();
        });
    };
    return thread;
  }

  #onReport(message: SlotReport): void {
    const slot = this.#slots[message.slot];
    const running = slot?.running;
    if (!running) return;
    if (message.type === "spawned") {
      running.pid = message.pid;
      if (!this.#started.length) {
        this.#startedSince = Date.now();
        setTimeout(() => this.#wake?.(), STARTED_DELAY_MS); // the loop may be asleep
      }
      this.#started.push({
        job_id: running.claim.job.id,
        token: running.claim.token,
        attempt: running.claim.attempt,
        process: { host: this.#host, pid: message.pid, start_ticks: message.startTicks },
        output_path: running.outputPath,
      });
      return; // recorded with the next commit, at most STARTED_DELAY_MS from now
    }
    this.#slotDone(slot, message.result);
    this.#wake?.();
  }

  #slotDone(slot: Slot, result: AttemptResult): void {
    const running = slot.running;
    if (!running) return;
    slot.running = null;
    const { claim } = running;
    const outcome: OutcomeKind = result.outcome.kind;
    if (result.outputError) {
      this.#log(
        "warn",
        `job ${claim.job.id} attempt ${claim.attempt}: output lost: ${result.outputError}`,
      );
    }
    // A failure of this worker (its disk is full…) releases the job instead of spending one
    // of its retries, and pauses claiming so the worker does not spin on it.
    const local = result.outcome.kind === "spawn_failed" && result.outcome.local === true;
    if (local) {
      this.#claimsPausedUntil = Date.now() + LOCAL_FAILURE_PAUSE_MS;
      this.#log("error", `${result.error}; pausing claims for 5 s`);
    }
    this.#finished.push({
      job_id: claim.job.id,
      token: claim.token,
      attempt: claim.attempt,
      outcome,
      exit_code: result.exitCode,
      signal: result.signal,
      error: result.error,
      ended_ms: result.endedMs,
      duration_ms: result.durationMs,
      output_bytes: result.outputBytes,
      disposition: running.abortReason === "shutdown" || local ? "release" : "retry",
      retry_at_ms: nextRunAt(result.endedMs, claim.attempt, {
        base: this.#config.backoffBase,
        maxS: this.#config.backoffMaxS,
        jitter: this.#config.backoffJitter,
      }),
    });
  }

  #abort(slot: Slot, reason: string): void {
    if (!slot.running || slot.running.abortReason) return;
    slot.running.abortReason = reason;
    this.#post({ type: "abort", slot: slot.index, reason });
  }

  async #heartbeat(now: number): Promise<void> {
    const leases = this.#slots.flatMap((s) =>
      s.running ? [{ job_id: s.running.claim.job.id, token: s.running.claim.token }] : []
    );
    const reply = await this.#store.heartbeat(this.workerId, leases, {
      nowMs: now,
      leaseMs: this.#config.leaseS * 1000,
    });
    // A third of the lease: two heartbeats can be missed before the lease runs out.
    this.#nextHeartbeat = now + (this.#config.leaseS * 1000) / 3;
    for (const id of reply.lost) {
      const slot = this.#slots.find((s) => s.running?.claim.job.id === id);
      if (slot) {
        this.#log("warn", `lost the lease of job ${id}: killing its attempt`);
        this.#abort(slot, "lease lost");
      }
    }
    if (reply.stop_requested && !this.stopping) {
      this.#log("info", "stop requested through the store");
      this.stop();
    }
    if (!reply.registered) {
      this.#log("warn", "this worker was dropped from the registry as dead: registering again");
      await this.#register(now);
    }
  }

  #register(now: number): Promise<void> {
    return this.#store.registerWorker({
      id: this.workerId,
      host: this.#host,
      pid: Deno.pid,
      start_ticks: this.#startTicks ??= processStartTicks(Deno.pid),
      slots: this.#slotCount,
      queues: this.#queues,
    }, now);
  }

  async #checkStop(): Promise<void> {
    this.#stopCheckDue = false;
    if (await this.#store.stopRequested(this.workerId)) {
      this.#log("info", "stop requested through the store");
      this.stop();
    }
  }

  async #rescue(now: number): Promise<void> {
    this.#nextRescue = now + this.#config.pollIntervalS * 1000;
    await this.#checkStop();
    if (this.stopping) return;
    const gone = await forgetDeadNeighbours(this.#store, {
      workerId: this.workerId,
      host: this.#host,
      nowMs: now,
      leaseMs: this.#config.leaseS * 1000,
    });
    for (const { worker, ended } of gone) {
      this.#log(
        "warn",
        `worker ${worker.id} (pid ${worker.pid}) is gone: rescuing its ${ended} job(s) now`,
      );
    }
    const report = await rescueExpired(this.#store, this.#config, { now });
    if (report.rescued.length) {
      this.#log(
        "warn",
        `rescued ${report.rescued.length} job(s) of dead workers (${report.orphansKilled} orphan group(s) killed)`,
      );
    }
  }

  #sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(timer);
        this.#wake = null;
        resolve();
      };
      const timer = setTimeout(done, ms);
      this.#wake = done;
    });
  }
}

/**
 * How long a started attempt's pid and output path may wait to be recorded. Until then
 * `logs` does not know the attempt's file yet, and a worker killed -9 leaves its orphan to
 * the rescuer's search by environment marker instead of by pid.
 */
const STARTED_DELAY_MS = 50;

/** How long a worker stops claiming after a failure of its own (e.g. a full disk). */
const LOCAL_FAILURE_PAUSE_MS = 5000;

function localFailure(message: string): AttemptResult {
  return notRun(message, message, true);
}

function crashResult(message: string): AttemptResult {
  return notRun(message, `execution thread crashed: ${message}`);
}
