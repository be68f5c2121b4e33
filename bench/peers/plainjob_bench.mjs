/**
 * plainjob's no-op scenario, as its README runs it on Node with better-sqlite3: `n` jobs
 * added in one `addMany` (timed apart), then one worker with an empty processor takes them
 * one at a time until all are done. Prints one JSON line.
 *
 * Usage: node plainjob_bench.mjs PEERS_DIR DB_PATH JOBS
 * PEERS_DIR is where `npm install --prefix PEERS_DIR plainjob better-sqlite3@12` put them.
 */

import { createRequire } from "node:module";
import { pathToFileURL } from "node:url";

const [peers, dbPath, jobsText] = process.argv.slice(2);
const n = Number(jobsText);
const require = createRequire(`${peers}/package.json`);
const Database = require("better-sqlite3");
const { better, defineQueue, defineWorker } = await import(
  pathToFileURL(require.resolve("plainjob")).href
);

// plainjob logs through console.debug by default; that would time the terminal, not the queue.
const silent = { error() {}, warn() {}, info() {}, debug() {} };
const connection = better(new Database(dbPath));
const queue = defineQueue({ connection, logger: silent });

const t0 = performance.now();
queue.addMany("bench", Array.from({ length: n }, (_, i) => ({ i })));
const enqueueSeconds = (performance.now() - t0) / 1000;

let done = 0;
let allDone;
const finished = new Promise((resolve) => allDone = resolve);
const worker = defineWorker("bench", () => {}, {
  queue,
  logger: silent,
  onCompleted: () => {
    if (++done === n) allDone();
  },
});
const t1 = performance.now();
void worker.start();
await finished;
const seconds = (performance.now() - t1) / 1000;
const pragma = connection.prepare("PRAGMA synchronous").get();
console.log(JSON.stringify({
  jobs: n,
  seconds,
  jobsPerS: n / seconds,
  enqueueSeconds,
  synchronous: pragma.synchronous,
  driver: "better-sqlite3 " + require("better-sqlite3/package.json").version,
  plainjob: require("plainjob/package.json").version,
}));
process.exit(0);
