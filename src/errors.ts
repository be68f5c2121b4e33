/**
 * The few error classes a caller catches. Messages read `cannot <do X>: <why>` with no
 * trailing period; `cli.ts` is the one place that maps them to exit codes.
 *
 * @module
 */

/** Bad usage or bad input: the store is unchanged. The CLI exits 2. */
export class UsageError extends Error {
  override name = "UsageError";
}

/** A job id that no job has. The CLI exits 2 (it is bad input). */
export class JobNotFoundError extends UsageError {
  override name = "JobNotFoundError";
  constructor(readonly id: string, action = "find job") {
    super(`cannot ${action}: no job with id ${JSON.stringify(id)}`);
  }
}

/** A config key or value that is not valid. The CLI exits 2. */
export class ConfigError extends UsageError {
  override name = "ConfigError";
}

/** An enqueue whose id is already taken. The CLI exits 2; nothing was written. */
export class DuplicateJobError extends UsageError {
  override name = "DuplicateJobError";
  constructor(readonly id: string) {
    super(`cannot enqueue: a job with id ${JSON.stringify(id)} already exists`);
  }
}

/** Something in the environment failed (disk, database, permissions). The CLI exits 1. */
export class OperationalError extends Error {
  override name = "OperationalError";
}

/** The exit code for an error: 2 for bad input, 1 for everything else. */
export function exitCodeFor(error: unknown): 1 | 2 {
  return error instanceof UsageError ? 2 : 1;
}
