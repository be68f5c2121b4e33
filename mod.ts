/**
 * queuectl as a library: open a queue, enqueue jobs, inspect them, and run a worker pool
 * from code.
 *
 * ```ts
 * import { openQueue, Pool } from "./mod.ts";
 *
 * const queue = await openQueue({ home: "/tmp/my-queue" });
 * const [id] = await queue.enqueue([{ command: "echo hello" }]);
 * const pool = new Pool(queue.store, { home: queue.home, slots: 2 });
 * const running = pool.run();
 * // … later
 * pool.stop();
 * await running;
 * console.log((await queue.get(id)).state); // "completed"
 * queue.close();
 * ```
 *
 * @module
 */

export { openQueue, parseStates, Queue, type QueueOptions, type Status } from "./src/queue.ts";
export { Pool, type PoolLog, type PoolOptions } from "./src/pool/pool.ts";
export {
  type Attempt,
  isJobState,
  type Job,
  JOB_STATES,
  type JobDetail,
  type JobState,
  type OutcomeKind,
} from "./src/job.ts";
export {
  type Config,
  CONFIG_KEYS,
  type ConfigKey,
  DEFAULT_CONFIG,
  loadConfig,
  setConfigValue,
} from "./src/config.ts";
export { nextRunAt, retryDelayMs } from "./src/backoff.ts";
export {
  ConfigError,
  DuplicateJobError,
  JobNotFoundError,
  OperationalError,
  UsageError,
} from "./src/errors.ts";
export type { Store } from "./src/store/store.ts";
export { openStore } from "./src/store/open.ts";
