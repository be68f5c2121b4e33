/**
 * Scenario 4: one `queuectl enqueue '{"command":"true"}'` against the runtime floor, a
 * `deno run` of an empty script with the same permission flags; and the same enqueue
 * against a store holding 1,000,000 finished jobs. Timed with hyperfine (`-N`, no shell),
 * in alternating rounds, else with an interleaved loop.
 *
 * @module
 */

import { historyStore } from "./history_store.ts";
import { timeCommands } from "./timing.ts";
import {
  BENCH,
  CLI_FLAGS,
  cliArgs,
  type Context,
  DENO,
  type Figure,
  figure,
  freshHome,
  median,
} from "./lib.ts";

export async function startup(ctx: Context): Promise<Figure[]> {
  const history = await historyStore(ctx, ctx.quick ? 20_000 : 1_000_000);
  const empty = await freshHome(ctx, "startup");
  const job = JSON.stringify({ command: "true" });
  const times = await timeCommands(ctx, [
    { name: "floor", argv: [DENO, "run", ...CLI_FLAGS, `${BENCH}fixtures/empty.ts`] },
    { name: "enqueue", argv: [DENO, ...cliArgs(empty, ["enqueue", job])] },
    { name: "enqueue-history", argv: [DENO, ...cliArgs(history.home, ["enqueue", job])] },
  ], ctx.quick ? { rounds: 1, runs: 3, warmup: 1 } : { rounds: 3, runs: 12, warmup: 2 });
  const floor = { label: "deno run of an empty script, same flags", runs: times.get("floor")! };
  const jobs = history.jobs.toLocaleString("en-US");
  return [
    figure({
      id: "startup.floor",
      scenario: "4 one enqueue",
      label: "runtime floor: deno run of an empty script with the CLI's flags",
      unit: "ms",
      better: "lower",
      runs: times.get("floor")!,
    }),
    figure({
      id: "startup.enqueue",
      scenario: "4 one enqueue",
      label: "queuectl enqueue (one job, store with a few jobs)",
      unit: "ms",
      better: "lower",
      runs: times.get("enqueue")!,
      baseline: floor,
      target: { text: "≤ 1.3× runtime floor", test: (f) => f.ratio! <= 1.3 },
    }),
    figure({
      id: "startup.enqueue_history",
      scenario: "4 one enqueue",
      label: `queuectl enqueue (one job, store with ${jobs} finished jobs)`,
      unit: "ms",
      better: "lower",
      runs: times.get("enqueue-history")!,
      baseline: {
        label: "the same enqueue on a store with a few jobs",
        runs: times.get("enqueue")!,
      },
      target: { text: "≤ 1.1× enqueue without history", test: (f) => f.ratio! <= 1.1 },
      note: `${
        (median(times.get("enqueue-history")!) / median(times.get("floor")!)).toFixed(2)
      }× the runtime floor`,
    }),
  ];
}
