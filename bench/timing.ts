/**
 * Wall times of whole commands (CLI processes), interleaved so that load from other
 * processes hits every command alike: with hyperfine (`-N`, no shell) when it is installed,
 * else a plain loop.
 *
 * @module
 */

import { type Context, have, run } from "./lib.ts";

/** A command to time: a name and its argv (no shell). */
export interface TimedCommand {
  name: string;
  argv: string[];
}

/**
 * Wall times (ms) of each command, interleaved: with hyperfine, `rounds` rounds each
 * timing every command `runs` times after `warmup` runs; without it, a loop of
 * `rounds × runs` iterations running the commands in turn. Commands must succeed.
 */
export async function timeCommands(
  ctx: Context,
  commands: TimedCommand[],
  options: { rounds: number; runs: number; warmup: number },
): Promise<Map<string, number[]>> {
  const times = new Map<string, number[]>(commands.map((c) => [c.name, []]));
  if (have("hyperfine")) {
    const quote = (a: string) => `'${a.replaceAll("'", `'\\''`)}'`;
    for (let round = 0; round < options.rounds; round++) {
      const json = `${ctx.tmp}/hyperfine-${crypto.randomUUID()}.json`;
      const args = [
        "-N",
        "--style",
        "none",
        "--warmup",
        String(options.warmup),
        "--runs",
        String(Math.max(2, options.runs)),
        "--export-json",
        json,
      ];
      // Alternate the order each round.
      const ordered = round % 2 ? [...commands].reverse() : commands;
      for (const c of ordered) args.push("-n", c.name, c.argv.map(quote).join(" "));
      await run("hyperfine", args, { env: { NO_COLOR: "1" } });
      const report = JSON.parse(Deno.readTextFileSync(json)) as {
        results: { command: string; times: number[]; exit_codes: number[] }[];
      };
      for (const r of report.results) {
        if (r.exit_codes.some((c) => c !== 0)) throw new Error(`${r.command} failed in hyperfine`);
        times.get(r.command)!.push(...r.times.map((s) => s * 1000));
      }
    }
    return times;
  }
  for (let w = 0; w < options.warmup; w++) {
    for (const c of commands) await timeOnce(c.argv);
  }
  for (let i = 0; i < options.rounds * options.runs; i++) {
    for (const c of commands) times.get(c.name)!.push(await timeOnce(c.argv));
  }
  return times;
}

async function timeOnce(argv: string[]): Promise<number> {
  const t0 = performance.now();
  const out = await new Deno.Command(argv[0], {
    args: argv.slice(1),
    stdin: "null",
    stdout: "null",
    stderr: "piped",
  }).output();
  const ms = performance.now() - t0;
  if (!out.success) throw new Error(`${argv.join(" ")}: ${new TextDecoder().decode(out.stderr)}`);
  return ms;
}
