/**
 * Where a worker's resident memory goes (scenario 7 diagnosis): RSS after each step a
 * `worker start` takes, in this process, then per execution slot (a Web Worker running
 * src/pool/slot.ts) and per bare Web Worker (an empty module) for comparison.
 *
 *   deno run --allow-read --allow-write --allow-env --allow-sys=hostname,osRelease \
 *     --allow-run bench/diagnose/memory_breakdown.ts
 *
 * @module
 */

const mb = (x: number) => (x / 1024 / 1024).toFixed(1);
let last = Deno.memoryUsage().rss;
const step = (name: string) => {
  const m = Deno.memoryUsage();
  console.log(
    `${name.padEnd(44)} rss ${mb(m.rss).padStart(6)} MB (+${mb(m.rss - last).padStart(5)})  heap ${
      mb(m.heapUsed)
    }/${mb(m.heapTotal)} MB  external ${mb(m.external)} MB`,
  );
  last = m.rss;
};
const settle = () => new Promise((r) => setTimeout(r, 300));

step("runtime + this script");
const home = await Deno.makeTempDir({ prefix: "queuectl-diag-" });
const { openQueue } = await import("../../src/queue.ts");
step("import queue (store, sqlite modules)");
const queue = await openQueue({ home });
step("open the store (node:sqlite connection)");
const { configure, getLogger } = await import("@logtape/logtape");
await configure({
  sinks: { null: () => {} },
  loggers: [
    { category: ["queuectl"], lowestLevel: "info", sinks: ["null"] },
    { category: ["logtape", "meta"], lowestLevel: "warning", sinks: ["null"] },
  ],
});
getLogger(["queuectl"]).info("x");
step("import and configure LogTape");
const { Pool } = await import("../../src/pool/pool.ts");
step("import the pool");

const slots: Worker[] = [];
for (let i = 1; i <= 8; i++) {
  slots.push(new Worker(new URL("../../src/pool/slot.ts", import.meta.url), { type: "module" }));
  await settle();
  if (i === 1 || i === 4 || i === 8) step(`${i} slot Web Worker(s) (src/pool/slot.ts)`);
}
for (const w of slots) w.terminate();
await settle();
step("slots terminated");
const bare: Worker[] = [];
const empty = `data:application/javascript,${encodeURIComponent("self.onmessage = () => {};")}`;
for (let i = 1; i <= 8; i++) {
  bare.push(new Worker(empty, { type: "module" }));
  await settle();
  if (i === 1 || i === 4 || i === 8) step(`${i} bare Web Worker(s) (empty module)`);
}
for (const w of bare) w.terminate();
void Pool;
queue.close();
await Deno.remove(home, { recursive: true });
