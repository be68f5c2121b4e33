/**
 * Where one `queuectl enqueue` spends its time above the runtime floor (scenario 4
 * diagnosis): the steps `cli.ts` → `enqueueCommand` take, timed in a fresh process: load
 * the command's modules, open the queue (data directory, SQLite connection, pragmas,
 * migration check), validate and insert (the store's transaction timed apart: its commit
 * fsyncs), wake workers, close. `performance.now()` at the first line is how long the
 * runtime took before running any of our code (V8 start, permission setup, module graph).
 *
 *   for i in 1 2 3 4 5; do deno run --allow-read --allow-write --allow-env \
 *     --allow-sys=hostname,osRelease --allow-run bench/diagnose/enqueue_startup.ts /tmp/h; done
 *
 * @module
 */

const boot = performance.now();
const home = Deno.args[0] ?? "/tmp/queuectl-diag-startup";
const phases: [string, number][] = [["runtime before first line", boot]];
let t = boot;
const mark = (name: string) => {
  const now = performance.now();
  phases.push([name, now - t]);
  t = now;
};
const { enqueueCommand: _ } = await import("../../src/commands/enqueue.ts");
const { openQueue } = await import("../../src/queue.ts");
mark("import enqueue command + queue");
await import("../../src/store/sqlite/sqlite_store.ts");
mark("import the SQLite store (node:sqlite)");
const queue = await openQueue({ home });
mark("openQueue (home, open db, pragmas)");
let storeMs = 0;
const enqueue = queue.store.enqueue.bind(queue.store);
queue.store.enqueue = async (...args) => {
  const s = performance.now();
  try {
    return await enqueue(...args);
  } finally {
    storeMs = performance.now() - s;
  }
};
await queue.enqueue([{ command: "true" }]);
mark("Queue.enqueue (validate, insert, commit, wake)");
queue.close();
mark("close");

// The connection's steps again, one by one, on a second connection (warm).
const { DatabaseSync } = await import("node:sqlite");
const raw: [string, number][] = [];
let r = performance.now();
const step = (name: string) => {
  const now = performance.now();
  raw.push([name, now - r]);
  r = now;
};
const db = new DatabaseSync(`${home}/queue.db`);
step("new DatabaseSync");
db.exec("PRAGMA busy_timeout = 5000");
db.prepare("PRAGMA busy_timeout").get();
step("busy_timeout");
db.prepare("PRAGMA journal_mode = WAL").get();
step("journal_mode=WAL");
db.exec("PRAGMA synchronous = FULL");
db.exec("PRAGMA foreign_keys = ON");
step("synchronous, foreign_keys");
db.prepare("PRAGMA user_version").get();
step("user_version");
db.close();
step("close");
console.log(
  phases.map(([n, ms]) => `${n}: ${ms.toFixed(1)} ms`).join("; ") +
    `; of which store.enqueue (BEGIN IMMEDIATE … COMMIT): ${storeMs.toFixed(1)} ms; total ${
      performance.now().toFixed(1)
    } ms`,
);
console.log("  second connection: " + raw.map(([n, ms]) => `${n} ${ms.toFixed(2)} ms`).join("; "));
