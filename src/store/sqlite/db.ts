/**
 * One SQLite connection set up for many processes sharing one file: private file modes,
 * WAL, an explicit busy timeout, `BEGIN IMMEDIATE` writes retried with jitter, and
 * numbered migrations.
 *
 * @module
 */

import { DatabaseSync, type StatementSync } from "node:sqlite";
import { OperationalError } from "../../errors.ts";
import { dirPath } from "../../paths.ts";
import { assertLocalFileSystem, writeProblem } from "../fs_check.ts";
import m0001 from "../migrations/sqlite/0001_init.sql" with { type: "text" };
import m0002 from "../migrations/sqlite/0002_terminal_counts.sql" with { type: "text" };
import m0003 from "../migrations/sqlite/0003_worker_start_ticks.sql" with { type: "text" };

/** Migrations in order; the array index + 1 is the schema version. */
const MIGRATIONS: readonly string[] = [m0001, m0002, m0003];

/** How durable a commit is. */
export type Durability = "full" | "normal";

/** Options for opening a database. */
export interface OpenOptions {
  /**
   * `full` (the default) fsyncs the WAL on every commit, so an acknowledged write survives
   * power loss. `normal` fsyncs only at checkpoints: a crash of the process still loses
   * nothing, but power loss can lose the last commits.
   * @default "full"
   */
  durability?: Durability;
  /** How long one statement waits for a lock inside SQLite, ms. @default 5000 */
  busyTimeoutMs?: number;
}

/** Total time a write keeps retrying a busy database before it gives up, ms. */
const BUSY_GIVE_UP_MS = 60_000;

/** A SQLite connection with the write discipline queuectl needs. */
export class Db {
  readonly raw: DatabaseSync;
  readonly path: string;
  #statements = new Map<string, StatementSync>();
  #inTransaction = false;

  constructor(path: string, options: OpenOptions = {}) {
    this.path = path;
    if (createPrivate(path)) {
      // A new database: refuse a network file system before WAL is switched on. Only here
      // (and at worker start): reading the mount table costs an exec.
      try {
        assertLocalFileSystem(path);
      } catch (e) {
        try {
          Deno.removeSync(path); // the empty file we made, so the next open checks again
        } catch { /* already gone */ }
        throw e;
      }
    }
    try {
      this.raw = new DatabaseSync(path);
    } catch (e) {
      const message = (e as Error).message;
      throw new OperationalError(
        `cannot open database ${path}: ${message}${storageCause(path, message)}`,
      );
    }
    // Deno's node:sqlite ignores the constructor's timeout option: set it and check it.
    const busy = options.busyTimeoutMs ?? 5000;
    this.raw.exec(`PRAGMA busy_timeout = ${busy | 0}`);
    const got = (this.raw.prepare("PRAGMA busy_timeout").get() as Record<string, number>)?.timeout;
    if (got !== (busy | 0)) {
      throw new OperationalError(`cannot open database ${path}: busy_timeout stayed ${got}`);
    }
    this.#retryBusy("open database", () => {
      // WAL lets readers run beside the one writer; the mode is stored in the file, so
      // after the first open this only reads it.
      const mode = (this.raw.prepare("PRAGMA journal_mode = WAL").get() as { journal_mode: string })
        .journal_mode;
      if (mode !== "wal") {
        throw new OperationalError(`cannot open database ${path}: journal mode stayed ${mode}`);
      }
    });
    // FULL fsyncs the WAL at every commit: an acknowledged enqueue survives power loss.
    this.raw.exec(`PRAGMA synchronous = ${options.durability === "normal" ? "NORMAL" : "FULL"}`);
    this.raw.exec("PRAGMA foreign_keys = ON");
    this.#migrate();
  }

  /** A cached prepared statement. */
  prepare(sql: string): StatementSync {
    let s = this.#statements.get(sql);
    if (!s) {
      s = this.raw.prepare(sql);
      this.#statements.set(sql, s);
    }
    return s;
  }

  /**
   * Runs `fn` in a write transaction. `BEGIN IMMEDIATE` takes the write lock up front, so
   * a transaction never fails half-way because a reader upgraded late; if the lock stays
   * busy past the busy timeout the whole transaction is retried with jittered backoff, so
   * "database is locked" never reaches a user while the database is merely contended.
   */
  write<T>(action: string, fn: () => T): T {
    if (this.#inTransaction) return fn();
    return this.#retryBusy(action, () => {
      this.raw.exec("BEGIN IMMEDIATE");
      this.#inTransaction = true;
      try {
        const result = fn();
        this.raw.exec("COMMIT");
        return result;
      } catch (e) {
        try {
          this.raw.exec("ROLLBACK");
        } catch { /* the transaction may already be gone */ }
        throw e;
      } finally {
        this.#inTransaction = false;
      }
    });
  }

  /** Runs a read; retried like a write if the database is busy (e.g. during recovery). */
  read<T>(action: string, fn: () => T): T {
    if (this.#inTransaction) return fn();
    return this.#retryBusy(action, fn);
  }

  close(): void {
    this.#statements.clear();
    try {
      this.raw.close();
    } catch { /* already closed */ }
  }

  #retryBusy<T>(action: string, fn: () => T): T {
    const started = Date.now();
    for (let attempt = 1;; attempt++) {
      try {
        return fn();
      } catch (e) {
        if (!isBusy(e)) throw wrapSqliteError(action, e, this.path);
        if (Date.now() - started > BUSY_GIVE_UP_MS) {
          throw new OperationalError(`cannot ${action}: the database stayed locked for 60 s`);
        }
        // Jittered exponential backoff, 1..~100 ms: processes that collided spread out.
        sleepSync(Math.random() * Math.min(100, 2 ** attempt));
      }
    }
  }

  #migrate(): void {
    const version = (this.raw.prepare("PRAGMA user_version").get() as { user_version: number })
      .user_version;
    if (version === MIGRATIONS.length) return; // the common case: one cheap read
    if (version > MIGRATIONS.length) {
      throw new OperationalError(
        `cannot open database ${this.path}: its schema version ${version} is newer than this queuectl (${MIGRATIONS.length})`,
      );
    }
    this.write("migrate database", () => {
      this.raw.exec(
        "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, applied_at INTEGER NOT NULL) STRICT",
      );
      const row = this.raw.prepare("SELECT max(version) AS v FROM schema_migrations").get() as {
        v: number | null;
      };
      for (let v = (row.v ?? 0) + 1; v <= MIGRATIONS.length; v++) {
        // The row goes in first: a second process migrating at once conflicts on the key
        // instead of running the DDL twice.
        this.raw.prepare("INSERT INTO schema_migrations (version, applied_at) VALUES (?, ?)")
          .run(v, Date.now());
        this.raw.exec(MIGRATIONS[v - 1]);
      }
      this.raw.exec(`PRAGMA user_version = ${MIGRATIONS.length}`);
    });
  }
}

/** Whether an error is SQLite saying another connection holds the lock. */
export function isBusy(e: unknown): boolean {
  const message = (e as Error)?.message ?? "";
  return /database is locked|database is busy|database table is locked|SQLITE_BUSY/i.test(message);
}

function wrapSqliteError(action: string, e: unknown, path: string): unknown {
  if (!(e instanceof Error) || (e as { code?: string }).code !== "ERR_SQLITE_ERROR") return e;
  return new OperationalError(`cannot ${action}: ${e.message}${storageCause(path, e.message)}`);
}

/** SQLite's words when the file system refused a write; they do not say why. */
const STORAGE_ERRORS =
  /disk I\/O error|database or disk is full|readonly database|unable to open database file/;

/**
 * ` (DIR: no space left on device)` when SQLite's error is a refused write and a probe in
 * the database's folder finds the cause (a full disk, a read-only mount); else "".
 */
function storageCause(path: string, message: string): string {
  if (!STORAGE_ERRORS.test(message)) return "";
  const dir = dirPath(path);
  const why = writeProblem(dir);
  return why ? ` (${dir}: ${why})` : "";
}

/**
 * Creates the database file with mode 0600 before SQLite opens it (SQLite gives the WAL
 * and shared-memory files the same mode). Only a file that does not exist yet is touched:
 * opening and closing a plain handle on a live database would drop this process's locks.
 * Returns whether it created the file.
 */
function createPrivate(path: string): boolean {
  try {
    Deno.openSync(path, { write: true, createNew: true, mode: 0o600 }).close();
    return true;
  } catch (e) {
    if (e instanceof Deno.errors.AlreadyExists) return false;
    throw new OperationalError(`cannot create database ${path}: ${(e as Error).message}`);
  }
}

const sleeper = new Int32Array(new SharedArrayBuffer(4));
/** Blocks the thread; node:sqlite is synchronous, so a retry pause is too. */
function sleepSync(ms: number): void {
  Atomics.wait(sleeper, 0, 0, Math.max(1, ms));
}
