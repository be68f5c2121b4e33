/**
 * System calls a worker makes per job (scenarios 1 and 2 diagnosis): runs
 * `worker start --count N` under `strace -f -c` on `--jobs` enqueued `true` jobs until
 * they are done, stops it, and prints strace's summary with calls per job. strace slows
 * the worker down several times: read the counts, not the times.
 *
 *   deno run -A bench/diagnose/strace_worker.ts --jobs 500 --count 1
 *
 * @module
 */

import { cli, cliArgs, DbProbe, DENO, jobsFile, waitFor } from "../lib.ts";

const opts = { jobs: 500, count: 1 };
for (let i = 0; i < Deno.args.length; i += 2) {
  (opts as Record<string, number>)[Deno.args[i].replace(/^--/, "")] = Number(Deno.args[i + 1]);
}
const dir = await Deno.makeTempDir({ prefix: "queuectl-strace-" });
const home = `${dir}/home`;
await cli(home, ["enqueue", "--file", jobsFile(dir, opts.jobs, "true")], { stdout: "null" });
const out = `${dir}/strace.txt`;
const strace = new Deno.Command("strace", {
  args: [
    "-f",
    "-c",
    "-o",
    out,
    DENO,
    ...cliArgs(home, ["worker", "start", "--count", String(opts.count)]),
  ],
  stdin: "null",
  stdout: "null",
  stderr: "null",
}).spawn();
const probe = new DbProbe(home);
const t0 = performance.now();
await waitFor("jobs to finish", () => probe.workers() === 1 && probe.active() === 0, {
  timeoutMs: 600_000,
  everyMs: 20,
});
const seconds = (performance.now() - t0) / 1000;
probe.close();
// strace's child is the worker: stop it, and strace writes its summary and exits.
const children = Deno.readTextFileSync(`/proc/${strace.pid}/task/${strace.pid}/children`).trim();
Deno.kill(Number(children.split(" ")[0]), "SIGTERM");
await strace.status;
const lines = Deno.readTextFileSync(out).split("\n");
console.log(
  `worker --count ${opts.count}, ${opts.jobs} true jobs under strace: ${seconds.toFixed(1)} s`,
);
console.log("   calls/job  calls     seconds  syscall");
for (const line of lines) {
  const m = line.trim().match(/^([\d.]+)\s+([\d.]+)\s+(\d+)\s+(\d+)\s+(?:(\d+)\s+)?(\w+)$/);
  if (!m) continue;
  const calls = Number(m[4]);
  console.log(
    `${(calls / opts.jobs).toFixed(2).padStart(11)} ${String(calls).padStart(6)} ${
      m[2].padStart(11)
    }  ${m[6]}`,
  );
}
await Deno.remove(dir, { recursive: true });
