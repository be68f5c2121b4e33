/**
 * Where `enqueue --file` spends its time (scenario 3 diagnosis): the same steps the
 * command takes, timed one by one in this process: read, UTF-8 decode, JSON Lines parse,
 * validation and ids (`Queue.enqueue` minus the store), the store's transaction, printing
 * the ids. Deno's start-up is scenario 4's runtime floor, on top.
 *
 *   deno run --allow-read --allow-write --allow-env --allow-sys=hostname,osRelease \
 *     --allow-run bench/diagnose/enqueue_phases.ts [jobs=100000]
 *
 * @module
 */

import { parseJsonLines } from "../../src/commands/enqueue.ts";
import { openQueue } from "../../src/queue.ts";

const n = Number(Deno.args[0] ?? 100_000);
const home = await Deno.makeTempDir({ prefix: "queuectl-diag-" });
const file = `${home}/jobs.jsonl`;
Deno.writeTextFileSync(file, `${JSON.stringify({ command: "true" })}\n`.repeat(n));
const queue = await openQueue({ home });
let storeMs = 0;
const enqueue = queue.store.enqueue.bind(queue.store);
queue.store.enqueue = async (...args) => {
  const t = performance.now();
  try {
    return await enqueue(...args);
  } finally {
    storeMs = performance.now() - t;
  }
};

const phases: [string, number][] = [];
let t = performance.now();
const mark = (name: string) => {
  const now = performance.now();
  phases.push([name, now - t]);
  t = now;
};
const bytes = await Deno.readFile(file);
mark("read file");
const text = new TextDecoder("utf-8", { fatal: true }).decode(bytes);
mark("decode UTF-8");
const inputs = parseJsonLines(text);
mark("parse JSON Lines");
const ids = await queue.enqueue(inputs);
mark("Queue.enqueue");
const out = new TextEncoder().encode(ids.join("\n") + "\n");
const devnull = Deno.openSync("/dev/null", { write: true });
for (let w = 0; w < out.length;) w += devnull.writeSync(out.subarray(w));
devnull.close();
mark("print ids");
queue.close();
mark("close");

const total = phases.reduce((a, [, ms]) => a + ms, 0);
console.log(`enqueue --file phases, ${n} jobs, in-process (no start-up):`);
for (const [name, ms] of phases) {
  console.log(`  ${name.padEnd(18)} ${ms.toFixed(1).padStart(8)} ms`);
  if (name === "Queue.enqueue") {
    console.log(`    validation, ids  ${(ms - storeMs).toFixed(1).padStart(8)} ms`);
    console.log(`    store.enqueue    ${storeMs.toFixed(1).padStart(8)} ms`);
  }
}
console.log(
  `  total              ${total.toFixed(1).padStart(8)} ms = ${
    (n / total * 1000).toFixed(0)
  } jobs/s`,
);
await Deno.remove(home, { recursive: true });
