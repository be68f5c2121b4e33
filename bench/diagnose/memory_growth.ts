/**
 * Whether a worker's memory grows with the jobs it ran (scenario 7, "flat across 20,000
 * jobs"): runs the real {@link Pool} in this process on `--jobs` jobs with `--count` slots
 * and prints RSS and the main thread's V8 heap every `--every` completed jobs.
 *
 *   deno run --allow-read --allow-write --allow-env --allow-sys=hostname,osRelease \
 *     --allow-run bench/diagnose/memory_growth.ts --jobs 20000 --count 4 --every 2000
 *
 * @module
 */

import { openQueue } from "../../src/queue.ts";
import { Pool } from "../../src/pool/pool.ts";

const opts = { jobs: 20000, count: 4, every: 2000, cmd: "true" };
for (let i = 0; i < Deno.args.length; i += 2) {
  const key = Deno.args[i].replace(/^--/, "") as keyof typeof opts;
  (opts as Record<string, unknown>)[key] = key === "cmd"
    ? Deno.args[i + 1]
    : Number(Deno.args[i + 1]);
}

const home = await Deno.makeTempDir({ prefix: "queuectl-diag-" });
const queue = await openQueue({ home, durability: "normal" });
await queue.enqueue(Array.from({ length: opts.jobs }, () => ({ command: opts.cmd })));
const pool = new Pool(queue.store, { home, slots: opts.count });
const running = pool.run();
const mb = (x: number) => (x / 1048576).toFixed(1).padStart(6);
let next = 0;
while (true) {
  const done = (await queue.store.countByState()).completed;
  if (done >= next) {
    const m = Deno.memoryUsage();
    console.log(
      `${String(done).padStart(6)} done  rss ${mb(m.rss)} MB  heap ${mb(m.heapUsed)}/${
        mb(m.heapTotal)
      } MB  external ${mb(m.external)} MB`,
    );
    next += opts.every;
  }
  if (done >= opts.jobs) break;
  await new Promise((r) => setTimeout(r, 20));
}
pool.stop();
await running;
queue.close();
await Deno.remove(home, { recursive: true });
