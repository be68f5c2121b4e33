/**
 * The fuzzer's data directories (fuzz_test.ts): where they live, the jobs they start with,
 * and a watch on one that tells whether an input changed anything (a checksum of the
 * store's rows, its data_version, config.json's bytes) and what an enqueue stored.
 *
 * @module
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import { DatabaseSync, type StatementSync } from "node:sqlite";
import { main } from "../../cli.ts";
import { tempHome } from "../helpers.ts";
import type { StoredJob, StoreView } from "./fuzz_oracle.ts";

/**
 * The fuzz homes live on tmpfs where there is one: SQLite still fsyncs every commit
 * (synchronous=FULL), but there an fsync costs nothing, and accepted writes would otherwise
 * be most of the run time. Durability is not what this test is about.
 */
export async function fuzzDir(prefix: string): Promise<string> {
  try {
    return await Deno.makeTempDir({ dir: "/dev/shm", prefix });
  } catch {
    return await tempHome(prefix);
  }
}

/** A data directory with a few jobs (two dead) and a config.json. */
export async function seedHome(home: string): Promise<void> {
  const run = (args: string[]) =>
    main(["--home", home, ...args], { stdout: () => {}, stderr: () => {} });
  for (const id of ["keep-1", "keep-2", "dead-1", "dead-2"]) {
    assert.equal(await run(["enqueue", JSON.stringify({ id, command: `echo ${id}` })]), 0);
  }
  assert.equal(await run(["config", "set", "max-retries", "4"]), 0);
  killSome(home);
}

/** Marks the dead-* jobs dead (as a worker would) and drops what the fuzzer added. */
export function killSome(home: string): void {
  const db = new DatabaseSync(join(home, "queue.db"));
  try {
    db.exec("BEGIN IMMEDIATE");
    db.exec("DELETE FROM jobs WHERE id NOT IN ('keep-1', 'keep-2', 'dead-1', 'dead-2')");
    db.exec(
      "UPDATE jobs SET state = 'dead', attempt_seq = max_retries + 1, attempts = max_retries + 1 WHERE id LIKE 'dead-%'",
    );
    db.exec("UPDATE jobs SET state = 'pending', attempts = 0 WHERE id LIKE 'keep-%'");
    db.exec(
      "UPDATE terminal_counts SET n = (SELECT count(*) FROM jobs WHERE state = terminal_counts.state)",
    );
    db.exec("COMMIT");
  } finally {
    db.close();
  }
}

/** Watches one data directory: a checksum of the store's rows and of config.json. */
export class StoreWatch implements StoreView {
  #db: DatabaseSync;
  #selects: StatementSync[];
  #version: StatementSync;
  #home: string;
  constructor(home: string) {
    this.#home = home;
    this.#db = new DatabaseSync(join(home, "queue.db"), { readOnly: true });
    this.#selects = ["jobs", "attempts", "workers"].map((t) =>
      this.#db.prepare(`SELECT * FROM ${t} ORDER BY 1`)
    );
    this.#version = this.#db.prepare("PRAGMA data_version");
  }
  /** Row counts, an FNV-1a hash of every row, data_version, config.json's bytes. */
  state(): { rows: string; dataVersion: number; config: string } {
    let hash = 0x811c9dc5;
    const counts: number[] = [];
    for (const select of this.#selects) {
      const rows = select.all();
      counts.push(rows.length);
      const text = JSON.stringify(rows);
      for (let i = 0; i < text.length; i++) {
        hash ^= text.charCodeAt(i);
        hash = Math.imul(hash, 0x01000193);
      }
    }
    const dataVersion = (this.#version.get() as { data_version: number }).data_version;
    let config = "";
    try {
      config = Deno.readTextFileSync(join(this.#home, "config.json"));
    } catch { /* missing */ }
    return { rows: `${counts.join("/")}#${(hash >>> 0).toString(16)}`, dataVersion, config };
  }
  /** Every job id in the store. */
  ids(): Set<string> {
    const rows = this.#db.prepare("SELECT id FROM jobs").all() as { id: string }[];
    return new Set(rows.map((r) => r.id));
  }
  /** A stored job's fields as given, or null. */
  stored(id: string): StoredJob | null {
    return (this.#db.prepare(
      "SELECT id, command, queue, priority, cwd, max_retries, timeout_s FROM jobs WHERE id = ?",
    ).get(id) as StoredJob | undefined) ?? null;
  }
  jobCount(): number {
    return (this.#db.prepare("SELECT count(*) AS n FROM jobs").get() as { n: number }).n;
  }
  close(): void {
    this.#db.close();
  }
}
