/**
 * What each part of queuectl's spawn recipe costs (scenario 1 diagnosis): the same `true`
 * command spawned from a Deno loop at `count` concurrency, adding one ingredient at a time
 * (setsid(1) for the process group, the job's environment, creating the output file, piped
 * stdout and stderr), then all of them as the executor does, then the executor itself
 * (`runAttempt`, the file opened while the command starts). Also times creating an empty
 * file alone, which on this project's VM disk swings between ~20 µs and ~900 µs.
 *
 *   deno run -A bench/diagnose/spawn_recipe.ts [jobs=1000] [count=1]
 *
 * @module
 */

import { runAttempt } from "../../src/pool/executor.ts";

const n = Number(Deno.args[0] ?? 1000);
const count = Number(Deno.args[1] ?? 1);
const dir = Deno.makeTempDirSync({ prefix: "queuectl-recipe-" });

interface Variant {
  name: string;
  setsid?: boolean;
  env?: boolean;
  file?: boolean;
  piped?: boolean;
}

const VARIANTS: Variant[] = [
  { name: "sh -c, output to /dev/null (the spawn limit)" },
  { name: "+ setsid(1)", setsid: true },
  { name: "+ job environment", env: true },
  { name: "+ create the output file first", file: true },
  { name: "+ stdout and stderr piped and drained", piped: true },
  { name: "all of the above", setsid: true, env: true, file: true, piped: true },
];

let k = 0;
async function spawnOne(v: Variant): Promise<void> {
  const file = v.file
    ? Deno.openSync(`${dir}/${k++}`, { write: true, createNew: true, mode: 0o600 })
    : null;
  const child = new Deno.Command(v.setsid ? "setsid" : "sh", {
    args: v.setsid ? ["sh", "-c", "true"] : ["-c", "true"],
    stdin: "null",
    stdout: v.piped ? "piped" : "null",
    stderr: v.piped ? "piped" : "null",
    env: v.env ? { QUEUECTL_JOB_ID: "j", QUEUECTL_ATTEMPT: "1" } : undefined,
  }).spawn();
  const drain = async (s: ReadableStream<Uint8Array>) => {
    for await (const chunk of s) file?.writeSync(chunk);
  };
  await Promise.all([child.status, ...(v.piped ? [drain(child.stdout), drain(child.stderr)] : [])]);
  file?.close();
}

async function lanes(one: () => Promise<void>): Promise<number> {
  let next = 0;
  const t0 = performance.now();
  await Promise.all(Array.from({ length: count }, async () => {
    while (next++ < n) await one();
  }));
  return n / ((performance.now() - t0) / 1000);
}

console.log(`${n} 'true' jobs, ${count} at a time`);
for (const v of VARIANTS) {
  console.log(`  ${v.name.padEnd(50)} ${(await lanes(() => spawnOne(v))).toFixed(0)} jobs/s`);
}
const executor = await lanes(async () => {
  const i = k++;
  await runAttempt({
    jobId: `j${i}`,
    attempt: 1,
    command: "true",
    cwd: null,
    timeoutMs: null,
    killGraceMs: 5000,
    outputPath: `${dir}/${i}`,
    outputLimit: 1 << 20,
  });
});
console.log(`  ${"queuectl's executor (runAttempt)".padEnd(50)} ${executor.toFixed(0)} jobs/s`);
const t0 = performance.now();
for (let i = 0; i < n; i++) {
  Deno.openSync(`${dir}/create-${i}`, { write: true, createNew: true, mode: 0o600 }).close();
}
console.log(`creating an empty file alone: ${((performance.now() - t0) / n * 1000).toFixed(0)} µs`);
Deno.removeSync(dir, { recursive: true });
