/**
 * `deno task demo`: a short tour on the embedded SQLite store, in a fresh temporary data
 * directory. It runs the real CLI, printing each command before its output.
 *
 * @module
 */

import { selfArgv } from "../src/self.ts";

const home = Deno.makeTempDirSync({ prefix: "queuectl-demo-" });
const dim = (
  s: string,
) => (Deno.stdout.isTerminal() && !Deno.env.get("NO_COLOR") ? `\x1b[2m${s}\x1b[0m` : s);

async function q(...args: string[]): Promise<string> {
  console.log(`\n$ queuectl ${args.map((a) => (/^[\w.,=:-]+$/.test(a) ? a : `'${a}'`)).join(" ")}`);
  const [cmd, ...rest] = selfArgv(["--home", home, ...args]);
  const out = await new Deno.Command(cmd, { args: rest, stdout: "piped", stderr: "piped" })
    .output();
  const text = new TextDecoder().decode(out.stdout);
  Deno.stdout.writeSync(out.stdout);
  Deno.stderr.writeSync(out.stderr);
  if (out.code !== 0) throw new Error(`queuectl ${args[0]} exited ${out.code}`);
  return text;
}

console.log(dim(`queuectl demo — data directory ${home}`));
try {
  await q("config", "set", "backoff-max", "1");
  await q("enqueue", '{"id":"hello","command":"echo hello from queuectl"}');
  await q("enqueue", '{"id":"slow","command":"sleep 1; echo done sleeping","priority":5}');
  await q("enqueue", '{"id":"flaky","command":"echo trying; exit 3","max_retries":2}');
  await q("enqueue", "--id", "dated", "--", "date", "-u");
  await q("worker", "start", "--count", "3", "--detach");
  console.log(dim("\n(waiting for the queue to drain: flaky fails 3 times, 1 s apart)"));
  while (true) {
    const status = JSON.parse(await quiet("status", "--json"));
    const c = status.counts;
    if (c.pending + c.processing + c.failed === 0) break;
    await new Promise((r) => setTimeout(r, 200));
  }
  await q("status");
  await q("list");
  await q("show", "flaky");
  await q("logs", "hello");
  await q("dlq", "list");
  await q("dlq", "retry", "flaky");
  await q("worker", "stop", "--wait");
  console.log(dim(`\nDone. Explore further with --home ${home}, or remove it.`));
} catch (e) {
  console.error(`demo failed: ${(e as Error).message}`);
  await quiet("worker", "stop", "--wait").catch(() => {});
  Deno.exit(1);
}

async function quiet(...args: string[]): Promise<string> {
  const [cmd, ...rest] = selfArgv(["--home", home, ...args]);
  const out = await new Deno.Command(cmd, { args: rest, stdout: "piped", stderr: "null" }).output();
  return new TextDecoder().decode(out.stdout);
}
