/**
 * Scenario 6: a store with 1,000,000 finished jobs. `status` and `list` wall times (CLI
 * processes, hyperfine) against the same commands on a store with a few jobs; the claim
 * rate (store API: claim(1) → heartbeat → finish on freshly enqueued jobs, durability
 * `normal` so that fsync time does not hide what the history costs the SQL) against the
 * same loop on an empty store, interleaved; and bytes per job.
 *
 * @module
 */

import { historyStore } from "./history_store.ts";
import { timeCommands } from "./timing.ts";
import {
  cli,
  cliArgs,
  type Context,
  dbPath,
  DENO,
  type Figure,
  figure,
  freshHome,
  jobJsonBytes,
} from "./lib.ts";
import { storeLoop } from "./overhead.ts";

const CLAIM = { durability: "normal", k: 1, mode: "calls" } as const;

export async function history(ctx: Context): Promise<Figure[]> {
  const big = await historyStore(ctx, ctx.quick ? 20_000 : 1_000_000);
  const small = await freshHome(ctx, "history-empty");
  await cli(small, ["enqueue", JSON.stringify({ command: "true" })], { stdout: "null" });
  const jobs = big.jobs.toLocaleString("en-US");

  const times = await timeCommands(ctx, [
    { name: "status", argv: [DENO, ...cliArgs(big.home, ["status"])] },
    { name: "status-empty", argv: [DENO, ...cliArgs(small, ["status"])] },
    { name: "list", argv: [DENO, ...cliArgs(big.home, ["list"])] },
    { name: "list-empty", argv: [DENO, ...cliArgs(small, ["list"])] },
  ], ctx.quick ? { rounds: 1, runs: 3, warmup: 1 } : { rounds: 2, runs: 10, warmup: 2 });

  // One history job as data (before the claim loop adds newer completed jobs).
  const jsonBytes = await jobJsonBytes(big.home);

  // Claim rate: the same drain on the big store and on an empty one, alternating.
  const n = ctx.quick ? 200 : 1000;
  const bigRates: number[] = [];
  const emptyRates: number[] = [];
  for (let r = 0; r < ctx.runs; r++) {
    for (const which of r % 2 ? ["empty", "big"] : ["big", "empty"]) {
      const path = which === "big" ? dbPath(big.home) : `${ctx.tmp}/claim-empty-${r}.db`;
      const rate = await storeLoop(path, CLAIM, n, `claim-r${r}`);
      (which === "big" ? bigRates : emptyRates).push(rate);
      ctx.log(`claim rate run ${r + 1} ${which}: ${rate.toFixed(0)} jobs/s`);
    }
  }

  return [
    ...(["status", "list"] as const).map((cmd) =>
      figure({
        id: `history.${cmd}`,
        scenario: "6 1M-job store",
        label: `queuectl ${cmd === "list" ? "list (newest 50)" : cmd}, ${jobs} finished jobs`,
        unit: "ms",
        better: "lower",
        runs: times.get(cmd)!,
        baseline: { label: `${cmd} on a store with one job`, runs: times.get(`${cmd}-empty`)! },
        target: { text: "< 150 ms", test: (f) => f.value < 150 },
      })
    ),
    figure({
      id: "history.claim",
      scenario: "6 1M-job store",
      label: `claim(1)→heartbeat→finish, ${n} new jobs beside ${jobs} finished, durability normal`,
      unit: "jobs/s",
      better: "higher",
      runs: bigRates,
      baseline: { label: "the same on an empty store", runs: emptyRates },
      target: { text: "≥ 0.9× empty store", test: (f) => f.ratio! >= 0.9 },
    }),
    figure({
      id: "history.bytes_per_job",
      scenario: "6 1M-job store",
      label: "database bytes per finished job (job row, attempt row, indexes)",
      unit: "B/job",
      better: "lower",
      runs: [big.bytes / big.jobs],
      baseline: { label: "the job as data: its `show --json` (job + attempt)", value: jsonBytes },
      target: { text: "report", test: () => null },
      note: `${(big.bytes / 1e6).toFixed(0)} MB for ${jobs} jobs, built in ${
        big.buildSeconds.toFixed(1)
      } s`,
    }),
  ];
}
