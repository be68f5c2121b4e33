/**
 * The job model: states, the public job shape, and validation of what users enqueue.
 *
 * Everything here is pure: no storage, no clock reads (callers pass `now`).
 *
 * @module
 */

import { UsageError } from "./errors.ts";

/**
 * A job's lifecycle state. The dead-letter queue is the `dead` state, not a table.
 *
 * - `pending`: waiting to run; `enqueue` and `dlq retry` put a job here.
 * - `processing`: claimed by a worker that holds its lease; only a claim puts a job here.
 * - `completed`: its last attempt exited 0; the worker that ran it records this.
 * - `failed`: its last attempt failed and it waits for its retry at `run_at`; the worker
 *   (or the rescuer, when the worker died) records this.
 * - `dead`: it failed with no retries left; the worker or the rescuer records this.
 * - `cancelled`: a user cancelled it; reserved for the cancel command (SPEC §4).
 */
export type JobState =
  | "pending"
  | "processing"
  | "completed"
  | "failed"
  | "dead"
  | "cancelled";

/** Every state, in lifecycle order. The SQL `CHECK` constraint lists the same ones. */
export const JOB_STATES: readonly JobState[] = [
  "pending",
  "processing",
  "completed",
  "failed",
  "dead",
  "cancelled",
];

/** Whether `value` names a job state. */
export function isJobState(value: string): value is JobState {
  return (JOB_STATES as readonly string[]).includes(value);
}

/** A job as `--json` output and the library API show it (snake_case, ISO-8601 UTC times). */
export interface Job {
  id: string;
  command: string;
  state: JobState;
  attempts: number;
  max_retries: number;
  priority: number;
  run_at: string;
  timeout_s: number | null;
  queue: string;
  cwd: string | null;
  created_at: string;
  updated_at: string;
  last_error: string | null;
  exit_code: number | null;
}

/** One attempt of a job, as `show ID` lists it. */
export interface Attempt {
  attempt: number;
  worker_id: string;
  started_at: string;
  ended_at: string | null;
  /** `running` until the attempt ends, then how it ended. */
  outcome: OutcomeKind | "running";
  exit_code: number | null;
  signal: string | null;
  duration_ms: number | null;
  error: string | null;
  output_path: string | null;
  output_bytes: number | null;
  pid: number | null;
}

/** A job with its attempts, as `show ID --json` prints it. */
export interface JobDetail extends Job {
  attempts_log: Attempt[];
}

/** How an attempt ended. The executor produces these; the store records them. */
export type OutcomeKind =
  | "succeeded"
  | "failed"
  | "timed_out"
  | "killed"
  | "spawn_failed"
  | "aborted"
  | "lost";

/** A validated enqueue request: every field resolved except config-dependent defaults. */
export interface NewJob {
  id: string | null;
  command: string;
  max_retries: number | null;
  priority: number;
  /** Milliseconds since the epoch, or null for "now". */
  run_at_ms: number | null;
  timeout_s: number | null | undefined;
  queue: string;
  cwd: string | null;
}

const ENQUEUE_FIELDS = [
  "id",
  "command",
  "max_retries",
  "priority",
  "run_at",
  "delay_s",
  "timeout_s",
  "queue",
  "cwd",
] as const;

/** Longest accepted command, in UTF-16 code units (1 MiB). */
export const MAX_COMMAND_LENGTH = 1 << 20;
const ID_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._:@-]{0,127}$/;
const QUEUE_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;

/**
 * Validates one enqueue request (a parsed JSON object) and returns it resolved.
 * `defaultCwd` fills `cwd` when absent; `now` resolves `delay_s`.
 *
 * @throws {UsageError} naming the first field that is wrong.
 */
export function parseNewJob(
  input: unknown,
  options: { now: number; defaultCwd: string | null },
): NewJob {
  if (typeof input !== "object" || input === null || Array.isArray(input)) {
    throw new UsageError("cannot enqueue: a job must be a JSON object");
  }
  const o = input as Record<string, unknown>;
  for (const key of Object.keys(o)) {
    if (!(ENQUEUE_FIELDS as readonly string[]).includes(key)) {
      throw new UsageError(
        `cannot enqueue: unknown field ${JSON.stringify(key)} (valid: ${
          ENQUEUE_FIELDS.join(", ")
        })`,
      );
    }
  }
  const command = o.command;
  if (typeof command !== "string" || command.trim() === "") {
    throw new UsageError(`cannot enqueue: "command" must be a non-empty string`);
  }
  if (command.length > MAX_COMMAND_LENGTH) {
    throw new UsageError(
      `cannot enqueue: "command" is longer than ${MAX_COMMAND_LENGTH} characters`,
    );
  }
  if (command.includes("\0")) {
    throw new UsageError(`cannot enqueue: "command" must not contain NUL characters`);
  }
  // A lone surrogate (JSON "\ud800") has no UTF-8 form: SQLite would store U+FFFD instead,
  // a command other than the one given.
  if (!command.isWellFormed()) {
    throw new UsageError(`cannot enqueue: "command" holds an unpaired surrogate (\\ud800-\\udfff)`);
  }
  let id: string | null = null;
  if (o.id !== undefined && o.id !== null) {
    if (typeof o.id !== "string" || !ID_PATTERN.test(o.id)) {
      throw new UsageError(
        `cannot enqueue: "id" must be 1-128 characters of letters, digits and ._:@- starting with a letter or digit`,
      );
    }
    id = o.id;
  }
  const maxRetries = optionalInt(o, "max_retries", 0, 1000);
  const priority = optionalInt(o, "priority", -1_000_000, 1_000_000) ?? 0;
  if (o.run_at !== undefined && o.delay_s !== undefined) {
    throw new UsageError(`cannot enqueue: give "run_at" or "delay_s", not both`);
  }
  let runAt: number | null = null;
  if (o.run_at !== undefined && o.run_at !== null) {
    runAt = typeof o.run_at === "string" ? parseIsoTime(o.run_at) : NaN;
    if (Number.isNaN(runAt)) {
      throw new UsageError(
        `cannot enqueue: "run_at" must be an ISO-8601 time with a zone, e.g. "2026-01-31T12:00:00Z"`,
      );
    }
  }
  if (o.delay_s !== undefined && o.delay_s !== null) {
    const delay = o.delay_s;
    if (typeof delay !== "number" || !Number.isFinite(delay) || delay < 0 || delay > 3.2e9) {
      throw new UsageError(`cannot enqueue: "delay_s" must be a number of seconds >= 0`);
    }
    runAt = options.now + Math.round(delay * 1000);
  }
  let timeout: number | null | undefined = undefined;
  if (o.timeout_s !== undefined) {
    const t = o.timeout_s;
    if (t !== null && (typeof t !== "number" || !Number.isFinite(t) || t <= 0 || t > 3.2e7)) {
      throw new UsageError(`cannot enqueue: "timeout_s" must be a number of seconds > 0, or null`);
    }
    timeout = t as number | null;
  }
  let queue = "default";
  if (o.queue !== undefined && o.queue !== null) {
    if (typeof o.queue !== "string" || !QUEUE_PATTERN.test(o.queue)) {
      throw new UsageError(
        `cannot enqueue: "queue" must be 1-64 characters of letters, digits and ._- starting with a letter or digit`,
      );
    }
    queue = o.queue;
  }
  let cwd = options.defaultCwd;
  if (o.cwd !== undefined) {
    if (
      o.cwd !== null &&
      (typeof o.cwd !== "string" || o.cwd === "" || o.cwd.includes("\0") || !o.cwd.isWellFormed())
    ) {
      throw new UsageError(`cannot enqueue: "cwd" must be a non-empty path string, or null`);
    }
    cwd = o.cwd as string | null;
  }
  return {
    id,
    command,
    max_retries: maxRetries,
    priority,
    run_at_ms: runAt,
    timeout_s: timeout,
    queue,
    cwd,
  };
}

function optionalInt(
  o: Record<string, unknown>,
  key: string,
  min: number,
  max: number,
): number | null {
  const v = o[key];
  if (v === undefined || v === null) return null;
  if (typeof v !== "number" || !Number.isInteger(v) || v < min || v > max) {
    throw new UsageError(`cannot enqueue: "${key}" must be an integer from ${min} to ${max}`);
  }
  return v;
}

const ISO_WITH_ZONE = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d{1,9})?)?(Z|[+-]\d{2}:?\d{2})$/i;

/** Parses an ISO-8601 time that names its zone; NaN when it is not one. */
export function parseIsoTime(text: string): number {
  if (!ISO_WITH_ZONE.test(text)) return NaN;
  return Date.parse(text);
}

/** Milliseconds since the epoch as ISO-8601 UTC. */
export function iso(ms: number): string {
  return new Date(ms).toISOString();
}

const ID_ALPHABET = "0123456789abcdefghjkmnpqrstvwxyz"; // Crockford base32, lower case
let lastIdTime = 0;
let lastIdRandom = 0;

/**
 * A new job id: 10 characters of millisecond time then 6 of randomness, Crockford base32
 * in lower case. Ids sort by creation time; within one millisecond of one process the
 * random part counts up, so one process never repeats an id and a bulk batch keeps its
 * order. Two processes collide with odds of about 1 in 10^9 per millisecond shared.
 */
export function newJobId(now: number): string {
  let random: number;
  if (now <= lastIdTime) {
    now = lastIdTime;
    random = lastIdRandom + 1;
    if (random >= 2 ** 30) {
      now += 1;
      random = crypto.getRandomValues(new Uint32Array(1))[0] >>> 3;
    }
  } else {
    random = crypto.getRandomValues(new Uint32Array(1))[0] >>> 3; // leave headroom to count up
  }
  lastIdTime = now;
  lastIdRandom = random;
  return encode(now, 10) + encode(random, 6);
}

function encode(value: number, width: number): string {
  let out = "";
  for (let i = 0; i < width; i++) {
    out = ID_ALPHABET[value % 32] + out;
    value = Math.floor(value / 32);
  }
  return out;
}
