/**
 * Output under fire: a job that prints 1 GiB. The worker drains it all (the job is never
 * blocked on a full pipe), keeps `output-limit` bytes plus a marker line, and its memory
 * stays flat: its resident set is sampled from /proc every 100 ms while the job runs, and
 * the kernel's high-water mark (VmHWM) covers the moments between samples.
 *
 * Prints one line per case (`output: …`) with the figures: peak RSS, time for 1 GiB, file
 * size.
 */

import assert from "node:assert/strict";
import { cleanup, json, runCli, spawnCli, tempHome, waitFor } from "../helpers.ts";
import type { JobDetail } from "../../src/job.ts";

const GIB = 1024 * 1024 * 1024;
const MIB = 1024 * 1024;
/** The most a worker process may hold resident while a job floods it. */
const RSS_LIMIT = 150 * 1000 * 1000;

const marker = (kept: number) => `\n[queuectl: output truncated at ${kept} bytes]\n`;

/** VmRSS and VmHWM of `pid` in bytes, or null once it is gone. */
function memoryOf(pid: number): { rss: number; hwm: number } | null {
  try {
    const status = Deno.readTextFileSync(`/proc/${pid}/status`);
    const kb = (key: string) => Number(new RegExp(`^${key}:\\s+(\\d+) kB`, "m").exec(status)?.[1]);
    return { rss: kb("VmRSS") * 1024, hwm: kb("VmHWM") * 1024 };
  } catch {
    return null;
  }
}

/** Samples a process's memory every `everyMs` until stopped. */
function sampler(pid: number, everyMs = 100) {
  const samples: number[] = [];
  const timer = setInterval(() => {
    const m = memoryOf(pid);
    if (m) samples.push(m.rss);
  }, everyMs);
  return {
    samples,
    stop() {
      clearInterval(timer);
    },
  };
}

const show = async (home: string, id: string) =>
  json<JobDetail>(await runCli(home, ["show", id, "--json"]));

const mb = (bytes: number) => `${(bytes / 1e6).toFixed(1)} MB`;

interface Case {
  name: string;
  command: string;
  /** `config set output-limit` before the worker starts; null keeps the default. */
  limit: string | null;
  limitBytes: number;
}

async function flood(c: Case): Promise<void> {
  const home = await tempHome("queuectl-output-");
  const id = `flood-${c.name}`;
  let worker: Deno.ChildProcess | null = null;
  let sampling: ReturnType<typeof sampler> | null = null;
  try {
    if (c.limit !== null) {
      const r = await runCli(home, ["config", "set", "output-limit", c.limit]);
      assert.equal(r.code, 0, r.stderr);
    }
    worker = spawnCli(home, ["worker", "start", "--count", "1"]);
    const listed = await waitFor(async () => {
      const ws = json<Array<{ pid: number }>>(await runCli(home, ["worker", "list", "--json"]));
      return ws.length === 1 && ws;
    }, { what: "the worker registered" });
    const pid = listed[0].pid;
    assert.equal(pid, worker.pid, "worker list shows the worker's pid");
    const before = memoryOf(pid)!;
    sampling = sampler(pid);

    const enq = await runCli(home, ["enqueue", JSON.stringify({ id, command: c.command })]);
    assert.equal(enq.code, 0, enq.stderr);
    const job = await waitFor(async () => {
      const j = await show(home, id);
      return j.state !== "pending" && j.state !== "processing" && j;
    }, { timeoutMs: 300_000, intervalMs: 250, what: `${id} finished` });
    sampling.stop();
    const after = memoryOf(pid)!;

    assert.equal(job.state, "completed", job.last_error ?? "");
    const attempt = job.attempts_log[0];
    assert.equal(attempt.outcome, "succeeded");

    // The file holds exactly the limit plus the marker line.
    const expected = c.limitBytes + marker(c.limitBytes).length;
    const size = Deno.statSync(attempt.output_path!).size;
    assert.equal(size, expected, "output file = limit + marker");
    assert.equal(attempt.output_bytes, expected, "recorded output_bytes = file size");

    // `logs` prints it all, the marker at the end.
    const logs = await runCli(home, ["logs", id]);
    assert.equal(logs.code, 0, logs.stderr);
    assert.equal(logs.stdout.length, expected);
    assert.ok(logs.stdout.endsWith(marker(c.limitBytes)), `logs ends with the marker`);

    const peak = Math.max(before.rss, ...sampling.samples);
    assert.ok(sampling.samples.length >= 3, `sampled ${sampling.samples.length} times`);
    assert.ok(peak < RSS_LIMIT, `peak sampled RSS ${mb(peak)} < ${mb(RSS_LIMIT)}`);
    assert.ok(after.hwm < RSS_LIMIT, `VmHWM ${mb(after.hwm)} < ${mb(RSS_LIMIT)}`);
    const seconds = attempt.duration_ms! / 1000;
    console.log(
      `output (${c.name}): 1 GiB in ${seconds.toFixed(2)} s (${
        (1024 / seconds).toFixed(0)
      } MiB/s); ` +
        `worker RSS ${mb(before.rss)} before, peak sampled ${mb(peak)} ` +
        `(${sampling.samples.length} samples), VmHWM ${mb(after.hwm)}; file ${size} bytes`,
    );

    const stop = await runCli(home, ["worker", "stop", "--wait"]);
    assert.equal(stop.code, 0, stop.stderr);
    assert.equal((await worker.status).code, 0);
    worker = null;
  } finally {
    sampling?.stop();
    if (worker) {
      try {
        worker.kill("SIGKILL");
      } catch { /* gone */ }
      await worker.status;
    }
    await cleanup(home);
  }
}

Deno.test("output: 1 GiB on stdout with the default limit keeps 10 MiB, worker memory flat", async () => {
  await flood({
    name: "default-limit",
    command: `head -c ${GIB} /dev/zero`,
    limit: null,
    limitBytes: 10 * MIB,
  });
});

Deno.test("output: 1 GiB on stdout and stderr at once with output-limit 1M", async () => {
  const half = GIB / 2;
  await flood({
    name: "both-pipes-1M",
    command: `yes | head -c ${half} & head -c ${half} /dev/zero >&2; wait`,
    limit: "1M",
    limitBytes: MIB,
  });
});
