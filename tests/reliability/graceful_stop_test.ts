/**
 * Stopping under fire: a foreground worker with ten running jobs.
 *
 * (a) SIGTERM: it stops claiming, lets all ten finish, exits 0.
 * (b) A second SIGTERM meanwhile: the ten are killed and put back to pending (attempt
 *     outcome `aborted`), nothing lost (a new worker then runs every one), no process left.
 * (c) `worker stop --wait` reaches a worker in another PID namespace (`unshare --pid`),
 *     where its pid means nothing here: stop goes through the store, not through PIDs, and
 *     the worker's running job finishes first.
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import {
  cleanup,
  CLI,
  CLI_FLAGS,
  json,
  needs,
  runCli,
  spawnCli,
  tempHome,
  waitFor,
} from "../helpers.ts";
import type { Job, JobDetail } from "../../src/job.ts";

const show = async (home: string, id: string) =>
  json<JobDetail>(await runCli(home, ["show", id, "--json"]));

type Counts = Record<string, number>;
const counts = async (home: string) =>
  json<{ counts: Counts }>(await runCli(home, ["status", "--json"])).counts;

/** Accumulates a stream's text as it arrives. */
function collect(stream: ReadableStream<Uint8Array>): { text: string } {
  const sink = { text: "" };
  (async () => {
    for await (const chunk of stream.pipeThrough(new TextDecoderStream())) sink.text += chunk;
  })().catch(() => {});
  return sink;
}

/** A prefix unique to this run: job ids start with it, so /proc scans see only ours. */
function runMarker(prefix: string): string {
  const hex = [...crypto.getRandomValues(new Uint8Array(4))]
    .map((b) => b.toString(16).padStart(2, "0")).join("");
  return `${prefix}${hex}-`;
}

/**
 * Live processes (zombies excepted: PID 1 here reaps only every ~2 s) whose environment
 * has a `QUEUECTL_JOB_ID` starting with `marker`.
 */
function leftovers(marker: string): string[] {
  const found: string[] = [];
  const dec = new TextDecoder();
  for (const entry of Deno.readDirSync("/proc")) {
    if (!/^\d+$/.test(entry.name)) continue;
    try {
      const env = dec.decode(Deno.readFileSync(`/proc/${entry.name}/environ`)).split("\0");
      const jobId = env.find((v) => v.startsWith("QUEUECTL_JOB_ID="))?.slice(16);
      if (jobId === undefined || !jobId.startsWith(marker)) continue;
      const stat = Deno.readTextFileSync(`/proc/${entry.name}/stat`);
      const state = stat.slice(stat.lastIndexOf(")") + 2)[0];
      if (state === "Z" || state === "X") continue;
      const cmd = dec.decode(Deno.readFileSync(`/proc/${entry.name}/cmdline`));
      found.push(`${entry.name} ${state} ${jobId} ${cmd.replaceAll("\0", " ").trim()}`);
    } catch { /* it ended while we looked */ }
  }
  return found;
}

function killLeftovers(marker: string): void {
  for (const line of leftovers(marker)) {
    try {
      Deno.kill(Number(line.split(" ")[0]), "SIGKILL");
    } catch { /* gone */ }
  }
}

async function enqueueAll(home: string, jobs: object[]): Promise<void> {
  const r = await runCli(home, ["enqueue", "-"], {
    stdin: jobs.map((j) => JSON.stringify(j)).join("\n"),
  });
  assert.equal(r.code, 0, r.stderr);
}

/** Ends a worker the test started, if a failure left it running. */
async function reap(child: Deno.ChildProcess | null): Promise<void> {
  if (!child) return;
  try {
    child.kill("SIGKILL");
  } catch { /* already exited */ }
  await child.status;
}

const N = 10;

Deno.test({
  name: "graceful stop: SIGTERM lets 10 running jobs finish, claims nothing new, exits 0",
  sanitizeResources: false, // the stderr pump ends with the worker
  sanitizeOps: false,
  async fn() {
    const home = await tempHome("queuectl-stop-a-");
    const marker = runMarker("gsa");
    let worker: Deno.ChildProcess | null = null;
    try {
      // Each job says it started, waits at a gate, then takes 1–2 s: all ten are surely
      // running when the signal comes, however slow this machine is today.
      const gate = join(home, "gate");
      const startedDir = join(home, "started");
      Deno.mkdirSync(startedDir);
      const ids = Array.from({ length: N }, (_, i) => `${marker}${i}`);
      await enqueueAll(
        home,
        ids.map((id, i) => ({
          id,
          command: `touch ${startedDir}/${id}; while [ ! -e ${gate} ]; do sleep 0.05; done; ` +
            `sleep ${1 + i / 10}; echo done ${id}`,
        })),
      );
      worker = spawnCli(home, ["worker", "start", "--count", String(N)], { stderr: "piped" });
      const log = collect(worker.stderr);
      await waitFor(() => [...Deno.readDirSync(startedDir)].length === N, {
        timeoutMs: 60_000,
        what: "ten jobs running",
      });
      worker.kill("SIGTERM");
      await waitFor(() => /finishing running jobs/.test(log.text), { what: "SIGTERM handled" });
      // A job enqueued now must not be claimed by a stopping worker.
      await enqueueAll(home, [{ id: `${marker}late`, command: "true" }]);
      Deno.writeTextFileSync(gate, "");

      const status = await worker.status;
      worker = null;
      assert.equal(status.code, 0, log.text);
      for (const id of ids) {
        const job = await show(home, id);
        assert.equal(job.state, "completed", `${id}: ${job.last_error}`);
        assert.equal(job.attempts, 1);
        assert.equal(job.attempts_log.length, 1);
        assert.equal(job.attempts_log[0].outcome, "succeeded");
        assert.equal((await runCli(home, ["logs", id])).stdout, `done ${id}\n`);
      }
      const late = await show(home, `${marker}late`);
      assert.equal(late.state, "pending", "a stopping worker claims nothing");
      assert.equal(late.attempts, 0);
      assert.deepEqual(json<unknown[]>(await runCli(home, ["worker", "list", "--json"])), []);
      assert.deepEqual(leftovers(marker), []);
    } finally {
      await reap(worker);
      killLeftovers(marker);
      await cleanup(home);
    }
  },
});

/** The shutdown grace the second-signal test sets: far longer than any kill takes. */
const GRACE_S = 120;

Deno.test({
  name: "graceful stop: a second SIGTERM kills and requeues 10 running jobs, nothing lost",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    const home = await tempHome("queuectl-stop-b-");
    const marker = runMarker("gsb");
    let worker: Deno.ChildProcess | null = null;
    try {
      const r = await runCli(home, ["config", "set", "kill-grace", "0.5"]);
      assert.equal(r.code, 0, r.stderr);
      // A long shutdown grace: a worker that waited it out on the second signal would take
      // minutes, while killing 10 groups takes seconds even on a loaded machine.
      const grace = await runCli(home, ["config", "set", "shutdown-grace", String(GRACE_S)]);
      assert.equal(grace.code, 0, grace.stderr);
      // The first attempt hangs (with grandchildren); any later one finishes at once.
      const ids = Array.from({ length: N }, (_, i) => `${marker}${i}`);
      const command = '[ "$QUEUECTL_ATTEMPT" -gt 1 ] || { sleep 300 & sleep 300; }; echo ran';
      await enqueueAll(home, ids.map((id) => ({ id, command })));
      worker = spawnCli(home, ["worker", "start", "--count", String(N)], { stderr: "piped" });
      const log = collect(worker.stderr);
      await waitFor(async () => {
        const jobs = await Promise.all(ids.map((id) => show(home, id)));
        return jobs.every((j) => j.state === "processing" && j.attempts_log[0]?.pid);
      }, { timeoutMs: 60_000, intervalMs: 50, what: "ten jobs running" });
      assert.ok(leftovers(marker).length >= 2 * N, "each job runs sh and its sleeps");

      worker.kill("SIGTERM");
      await waitFor(() => /finishing running jobs/.test(log.text), { what: "first SIGTERM" });
      const killedAt = performance.now();
      worker.kill("SIGTERM");
      const status = await worker.status;
      const tookMs = performance.now() - killedAt;
      worker = null;
      assert.equal(status.code, 0, log.text);
      assert.match(log.text, /again: killing running jobs/);
      // The second signal did not wait for the shutdown grace.
      assert.ok(
        tookMs < GRACE_S * 1000,
        `exited ${Math.round(tookMs)} ms after the second SIGTERM (grace ${GRACE_S} s)`,
      );
      console.log(
        `graceful stop: second SIGTERM to exit ${Math.round(tookMs)} ms (kill-grace 0.5 s)`,
      );

      assert.deepEqual(leftovers(marker), [], "no job process outlived the worker");
      const all = json<Job[]>(await runCli(home, ["list", "--limit", "0", "--json"]));
      assert.deepEqual(all.map((j) => j.id).sort(), [...ids].sort(), "nothing lost");
      for (const id of ids) {
        const job = await show(home, id);
        assert.equal(job.state, "pending", `${id} released`);
        assert.equal(job.attempts_log.length, 1);
        assert.equal(job.attempts_log[0].outcome, "aborted");
        assert.match(job.attempts_log[0].error ?? "", /shutdown/);
      }

      // Nothing lost: a new worker runs every one of them to completion.
      worker = spawnCli(home, ["worker", "start", "--count", "4"]);
      await waitFor(async () => (await counts(home)).completed === N, {
        timeoutMs: 60_000,
        intervalMs: 100,
        what: "all ten completed by a new worker",
      });
      for (const id of ids) {
        const job = await show(home, id);
        assert.deepEqual(job.attempts_log.map((a) => a.outcome), ["aborted", "succeeded"]);
      }
      assert.equal((await runCli(home, ["worker", "stop", "--wait"])).code, 0);
      assert.equal((await worker.status).code, 0);
      worker = null;
    } finally {
      await reap(worker);
      killLeftovers(marker);
      await cleanup(home);
    }
  },
});

/** Whether `unshare --pid --fork --mount-proc` works here (it needs root or a userns). */
function unshareWorks(): boolean {
  try {
    const out = new Deno.Command("unshare", {
      args: ["--pid", "--fork", "--mount-proc", "--kill-child", "sh", "-c", "echo $$"],
      stdout: "piped",
      stderr: "null",
    }).outputSync();
    return out.success && new TextDecoder().decode(out.stdout).trim() === "1";
  } catch {
    return false;
  }
}

Deno.test({
  name: "graceful stop: 'worker stop --wait' reaches a worker in another PID namespace",
  sanitizeResources: false,
  sanitizeOps: false,
  ...needs(
    "unshare --pid --fork --mount-proc (root or a user namespace)",
    unshareWorks(),
    async () => {
      const home = await tempHome("queuectl-stop-c-");
      const marker = runMarker("gsc");
      let outer: Deno.ChildProcess | null = null;
      try {
        // The worker is PID 1 of a new PID namespace with its own /proc; --kill-child makes
        // it die with `unshare` should the test have to kill it.
        outer = new Deno.Command("unshare", {
          args: [
            "--pid",
            "--fork",
            "--mount-proc",
            "--kill-child",
            Deno.execPath(),
            "run",
            ...CLI_FLAGS,
            CLI,
            "--home",
            home,
            "worker",
            "start",
            "--count",
            "2",
          ],
          stdin: "null",
          stdout: "null",
          stderr: "piped",
          env: { NO_COLOR: "1" },
        }).spawn();
        const log = collect(outer.stderr);
        const workers = await waitFor(async () => {
          const ws = json<Array<{ id: string; pid: number; host: string }>>(
            await runCli(home, ["worker", "list", "--json"]),
          );
          return ws.length === 1 && ws;
        }, { what: "the namespaced worker registered" });
        // Its pid is its pid in its own namespace: 1, which here is this VM's init.
        assert.equal(
          workers[0].pid,
          1,
          `pid as the worker sees it (${JSON.stringify(workers[0])})`,
        );
        const ourNs = Deno.readLinkSync("/proc/self/ns/pid").match(/\d+/)![0];
        assert.ok(
          !workers[0].host.includes(`/${ourNs}/`),
          "its host identity names another namespace",
        );

        const id = `${marker}job`;
        await enqueueAll(home, [{ id, command: "sleep 2; echo finished" }]);
        await waitFor(async () => (await show(home, id)).attempts_log[0]?.pid, {
          timeoutMs: 30_000,
          what: "the job running",
        });
        const stop = await runCli(home, ["worker", "stop", "--wait"]);
        assert.equal(stop.code, 0, stop.stderr);
        assert.match(stop.stderr, /asked 1 worker\(s\) to stop/);
        assert.match(stop.stderr, /all stopped/);
        const status = await outer.status;
        outer = null;
        assert.equal(status.code, 0, log.text);
        assert.match(log.text, /stop requested through the store/);
        const job = await show(home, id);
        assert.equal(job.state, "completed", "the running job finished before the worker left");
        assert.equal(job.attempts_log[0].outcome, "succeeded");
        assert.equal((await runCli(home, ["logs", id])).stdout, "finished\n");
        assert.deepEqual(json<unknown[]>(await runCli(home, ["worker", "list", "--json"])), []);
        assert.deepEqual(leftovers(marker), []);
      } finally {
        await reap(outer);
        killLeftovers(marker);
        await cleanup(home);
      }
    },
  ),
});
