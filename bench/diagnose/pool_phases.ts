/**
 * Where a worker's time goes (scenario 1 diagnosis): runs the real {@link Pool} in this
 * process on `--jobs` jobs with `--count` slots and the given durability, timing every
 * store call through a proxy, then runs the executor alone (`runAttempt`, no queue) and a
 * plain spawn on the same command, for a per-job budget:
 *
 *   wall/job = store/job (transactions, fsync included) + executor/job + the rest
 *   (loop, Web Worker messages, wake-ups).
 *
 * Run it with the CLI's permission flags, as the worker runs (with -A it would read /proc
 * directly where the worker goes through `sh`):
 *
 *   deno run --allow-read --allow-write --allow-env --allow-sys=hostname,osRelease \
 *     --allow-run bench/diagnose/pool_phases.ts --jobs 1000 --count 1 --durability full
 *
 * @module
 */

import { openQueue } from "../../src/queue.ts";
import { Pool } from "../../src/pool/pool.ts";
import { runAttempt } from "../../src/pool/executor.ts";
import type { Store } from "../../src/store/store.ts";

const opts = { jobs: 1000, count: 1, durability: "full", cmd: "true" };
for (let i = 0; i < Deno.args.length; i += 2) {
  const key = Deno.args[i].replace(/^--/, "") as keyof typeof opts;
  (opts as Record<string, unknown>)[key] = key === "jobs" || key === "count"
    ? Number(Deno.args[i + 1])
    : Deno.args[i + 1];
}

const home = await Deno.makeTempDir({ prefix: "queuectl-diag-" });
const queue = await openQueue({ home, durability: opts.durability as "full" | "normal" });
await queue.enqueue(Array.from({ length: opts.jobs }, () => ({ command: opts.cmd })));

const calls = new Map<string, { n: number; ms: number }>();
const timed = new Proxy(queue.store, {
  get(target, prop, receiver) {
    const value = Reflect.get(target, prop, receiver);
    if (typeof value !== "function") return value;
    return (...args: unknown[]) => {
      const t0 = performance.now();
      const result = value.apply(target, args);
      const done = () => {
        const c = calls.get(String(prop)) ?? { n: 0, ms: 0 };
        c.n++;
        c.ms += performance.now() - t0;
        calls.set(String(prop), c);
      };
      if (result instanceof Promise) return result.finally(done);
      done();
      return result;
    };
  },
}) as Store;

const pool = new Pool(timed, { home, slots: opts.count });
const t0 = performance.now();
const running = pool.run();
while ((await queue.store.countByState()).completed < opts.jobs) {
  await new Promise((r) => setTimeout(r, 5));
}
const wallMs = performance.now() - t0;
pool.stop();
await running;
queue.close();

let storeMs = 0;
console.log(
  `pool: ${opts.jobs} '${opts.cmd}' jobs, --count ${opts.count}, durability ${opts.durability}`,
);
console.log(
  `  wall ${wallMs.toFixed(0)} ms = ${(opts.jobs / wallMs * 1000).toFixed(0)} jobs/s, ${
    (wallMs / opts.jobs).toFixed(2)
  } ms/job`,
);
for (const [name, c] of calls) {
  storeMs += c.ms;
  console.log(
    `  store.${name}: ${c.n} calls, ${c.ms.toFixed(0)} ms (${(c.ms / c.n).toFixed(2)} ms/call, ${
      (c.ms / opts.jobs).toFixed(2)
    } ms/job)`,
  );
}
console.log(`  store total ${(storeMs / opts.jobs).toFixed(2)} ms/job (main thread, blocking)`);

// The executor alone, one attempt at a time, and a plain spawn, on this thread.
const outDir = `${home}/diag-out`;
Deno.mkdirSync(outDir);
const n = Math.min(opts.jobs, 300);
let e0 = performance.now();
for (let i = 0; i < n; i++) {
  const r = await runAttempt({
    jobId: `d${i}`,
    attempt: 1,
    command: opts.cmd,
    cwd: null,
    timeoutMs: null,
    killGraceMs: 5000,
    outputPath: `${outDir}/${i}.log`,
    outputLimit: 10 << 20,
  });
  if (r.outcome.kind !== "succeeded") throw new Error(JSON.stringify(r));
}
const executorMs = (performance.now() - e0) / n;
e0 = performance.now();
for (let i = 0; i < n; i++) {
  await new Deno.Command("sh", { args: ["-c", opts.cmd], stdout: "null", stderr: "null" }).output();
}
const spawnMs = (performance.now() - e0) / n;
console.log(`  executor alone (runAttempt, sequential): ${executorMs.toFixed(2)} ms/job`);
console.log(`  plain spawn sh -c (sequential): ${spawnMs.toFixed(2)} ms/job`);
if (opts.count === 1) {
  const rest = wallMs / opts.jobs - storeMs / opts.jobs - executorMs;
  console.log(`  rest (loop, messages, wake-ups) at --count 1: ${rest.toFixed(2)} ms/job`);
}
await Deno.remove(home, { recursive: true });
