/**
 * End-to-end: the read commands (status, list, show, logs, dlq, config) through the real
 * cli.ts. Data is set up with the library and the store directly, so these tests do not
 * depend on `enqueue` or a worker.
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
  snapshot,
  spawnCli,
  tempHome,
  waitFor,
} from "./helpers.ts";
import { openQueue, type Queue } from "../src/queue.ts";
import type { Job, JobDetail } from "../src/job.ts";
import type { ClaimedJob } from "../src/store/store.ts";

/** Claims the one job of `queue` and records its start, with `output` as its output file. */
async function start(q: Queue, queue: string, output?: string): Promise<ClaimedJob> {
  const [c] = await q.store.claim({
    workerId: "w-test",
    host: "test-host",
    limit: 1,
    queues: [queue],
    nowMs: Date.now(),
    leaseMs: 60_000,
  });
  assert.ok(c, `a job to claim in ${queue}`);
  if (output !== undefined) {
    const path = join(q.home, `${c.job.id}.${c.attempt}.log`);
    Deno.writeTextFileSync(path, output, { mode: 0o600 });
    await q.store.recordStarted([{
      job_id: c.job.id,
      token: c.token,
      attempt: c.attempt,
      process: { host: "test/ns", pid: Deno.pid, start_ticks: null },
      output_path: path,
    }]);
  }
  return c;
}

/** Ends a claimed attempt; a failure is due for its retry at once. */
async function finish(q: Queue, c: ClaimedJob, ok: boolean): Promise<void> {
  const now = Date.now();
  const refused = await q.store.finish([{
    job_id: c.job.id,
    token: c.token,
    attempt: c.attempt,
    outcome: ok ? "succeeded" : "failed",
    exit_code: ok ? 0 : 1,
    signal: null,
    error: ok ? null : "exit code 1",
    ended_ms: now,
    duration_ms: 25,
    output_bytes: null,
    disposition: "retry",
    retry_at_ms: now,
  }]);
  assert.deepEqual(refused, []);
}

/**
 * A data directory with: `p1`, `p2` pending (queue default, other), `dead1` dead (its
 * one attempt printed "dead output"), `done1` completed on its second attempt (outputs
 * "first try", "second try").
 */
async function seeded(): Promise<string> {
  const home = await tempHome();
  const q = await openQueue({ home });
  try {
    await q.enqueue([
      { id: "p1", command: "echo one" },
      { id: "p2", command: "echo two", queue: "other" },
      { id: "dead1", command: "exit 3", max_retries: 0, queue: "qdead" },
      { id: "done1", command: "flaky", max_retries: 2, queue: "qdone" },
    ], { cwd: null });
    await finish(q, await start(q, "qdead", "dead output\n"), false);
    await finish(q, await start(q, "qdone", "first try\n"), false);
    await finish(q, await start(q, "qdone", "second try\n"), true);
  } finally {
    q.close();
  }
  return home;
}

async function withHome(fn: (home: string) => Promise<void>, seed = true): Promise<void> {
  const home = seed ? await seeded() : await tempHome();
  try {
    await fn(home);
  } finally {
    await cleanup(home);
  }
}

Deno.test("status --json: counts of every state, total, workers", () =>
  withHome(async (home) => {
    const r = await runCli(home, ["status", "--json"]);
    assert.equal(r.code, 0, r.stderr);
    const status = json<{ counts: Record<string, number>; total: number; workers: unknown[] }>(r);
    assert.deepEqual(status.counts, {
      pending: 2,
      processing: 0,
      completed: 1,
      failed: 0,
      dead: 1,
      cancelled: 0,
    });
    assert.equal(status.total, 4);
    assert.deepEqual(status.workers, []);
  }));

Deno.test("status: human output has the counts, the total and the workers", () =>
  withHome(async (home) => {
    const q = await openQueue({ home });
    await q.store.registerWorker(
      { id: "w-abc", host: "boxname/ns:1", pid: 4242, start_ticks: null, slots: 3, queues: null },
      Date.now(),
    );
    q.close();
    const r = await runCli(home, ["status"]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^pending\s+2$/m);
    assert.match(r.stdout, /^completed\s+1$/m);
    assert.match(r.stdout, /^dead\s+1$/m);
    assert.match(r.stdout, /^cancelled\s+0$/m);
    assert.match(r.stdout, /^total\s+4$/m);
    assert.match(r.stdout, /^w-abc\s+boxname\s+4242\s+3\s+0\s+(now|\d+s ago)\s+running$/m);
    assert.ok(!r.stdout.includes("\x1b["), "NO_COLOR and a pipe: no escape codes");
  }));

Deno.test("status: an empty queue says no workers are running", () =>
  withHome(async (home) => {
    const r = await runCli(home, ["status"]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^total\s+0$/m);
    assert.match(r.stdout, /no workers running/);
  }, false));

Deno.test("list --json: an array of jobs, newest first, with the job fields", () =>
  withHome(async (home) => {
    const r = await runCli(home, ["list", "--json"]);
    assert.equal(r.code, 0, r.stderr);
    const jobs = json<Job[]>(r);
    assert.equal(jobs.length, 4);
    assert.deepEqual(new Set(jobs.map((j) => j.id)), new Set(["p1", "p2", "dead1", "done1"]));
    for (const key of ["id", "command", "state", "attempts", "max_retries", "run_at", "queue"]) {
      assert.ok(key in jobs[0], key);
    }
    const done = jobs.find((j) => j.id === "done1")!;
    assert.equal(done.state, "completed");
    assert.equal(done.attempts, 2);
  }));

Deno.test("list --state: one state, a comma list, and --queue", () =>
  withHome(async (home) => {
    const ids = async (args: string[]) => {
      const r = await runCli(home, ["list", "--json", ...args]);
      assert.equal(r.code, 0, r.stderr);
      return json<Job[]>(r).map((j) => j.id).sort();
    };
    assert.deepEqual(await ids(["--state", "pending"]), ["p1", "p2"]);
    assert.deepEqual(await ids(["--state", "dead,completed"]), ["dead1", "done1"]);
    assert.deepEqual(await ids(["--state", "failed"]), []);
    assert.deepEqual(await ids(["--state", "pending", "--queue", "other"]), ["p2"]);
  }));

Deno.test("list: --limit cuts the page with a hint on stderr only; human table", () =>
  withHome(async (home) => {
    const r = await runCli(home, ["list", "--limit", "2", "--json"]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(json<Job[]>(r).length, 2);
    assert.match(r.stderr, /showing 2 newest; --limit 0 for all/);
    const all = await runCli(home, ["list", "--limit", "0"]);
    assert.equal(all.code, 0, all.stderr);
    assert.equal(all.stderr, "");
    const lines = all.stdout.trimEnd().split("\n");
    assert.match(lines[0], /^ID\s+STATE\s+ATTEMPTS\s+PRI\s+QUEUE\s+WHEN\s+COMMAND$/);
    assert.equal(lines.length, 5);
    assert.match(all.stdout, /^dead1\s+dead\s+1\/1\s+0\s+qdead\s+\S.*exit 3$/m);
    // Columns line up: every row has its STATE where the header has it.
    const col = lines[0].indexOf("STATE");
    for (const line of lines.slice(1)) assert.match(line.slice(col), /^(pending|dead|completed)/);
  }));

Deno.test("list: an unknown state exits 2 with one stderr line and changes nothing", () =>
  withHome(async (home) => {
    const before = snapshot(home);
    const r = await runCli(home, ["list", "--state", "pending,bogus"]);
    assert.equal(r.code, 2);
    assert.equal(r.stdout, "");
    assert.equal(r.stderr.trimEnd().split("\n").length, 1);
    assert.match(r.stderr, /^queuectl: cannot list jobs: unknown state "bogus" \(valid: pending,/);
    assert.equal(snapshot(home), before);
    const bad = await runCli(home, ["list", "--limit", "-1"]);
    assert.equal(bad.code, 2);
  }));

Deno.test("show --json: the job with its attempts_log; human output lists attempts", () =>
  withHome(async (home) => {
    const r = await runCli(home, ["show", "done1", "--json"]);
    assert.equal(r.code, 0, r.stderr);
    const job = json<JobDetail>(r);
    assert.equal(job.id, "done1");
    assert.equal(job.state, "completed");
    assert.deepEqual(job.attempts_log.map((a) => [a.attempt, a.outcome]), [
      [1, "failed"],
      [2, "succeeded"],
    ]);
    assert.ok(job.attempts_log[0].output_path?.endsWith("done1.1.log"));
    const human = await runCli(home, ["show", "done1"]);
    assert.equal(human.code, 0, human.stderr);
    assert.match(human.stdout, /^state\s+completed$/m);
    assert.match(human.stdout, /^command\s+flaky$/m);
    assert.match(
      human.stdout,
      /^#\s+WORKER\s+STARTED\s+DURATION\s+OUTCOME\s+EXIT\s+ERROR\s+OUTPUT$/m,
    );
    assert.match(
      human.stdout,
      /^1\s+w-test\s+.*25ms\s+failed\s+exit 1\s+exit code 1\s+\/\S+done1\.1\.log$/m,
    );
    assert.match(human.stdout, /^2\s+w-test\s+.*succeeded\s+exit 0\s+-\s+\S+done1\.2\.log$/m);
  }));

Deno.test("show: an unknown id exits 2 with one line", () =>
  withHome(async (home) => {
    const r = await runCli(home, ["show", "nope"]);
    assert.equal(r.code, 2);
    assert.equal(r.stdout, "");
    assert.equal(r.stderr, 'queuectl: cannot show job: no job with id "nope"\n');
    assert.equal((await runCli(home, ["show"])).code, 2);
  }));

Deno.test("logs: the latest attempt's output, --attempt N, and bad attempts", () =>
  withHome(async (home) => {
    const latest = await runCli(home, ["logs", "done1"]);
    assert.equal(latest.code, 0, latest.stderr);
    assert.equal(latest.stdout, "second try\n");
    const first = await runCli(home, ["logs", "done1", "--attempt", "1"]);
    assert.equal(first.code, 0, first.stderr);
    assert.equal(first.stdout, "first try\n");
    const missing = await runCli(home, ["logs", "done1", "--attempt", "3"]);
    assert.equal(missing.code, 2);
    assert.match(missing.stderr, /cannot show logs: job "done1" has no attempt 3/);
    const unknown = await runCli(home, ["logs", "nope"]);
    assert.equal(unknown.code, 2);
    assert.match(unknown.stderr, /no job with id "nope"/);
    const notStarted = await runCli(home, ["logs", "p1"]);
    assert.equal(notStarted.code, 0);
    assert.equal(notStarted.stdout, "");
    assert.match(notStarted.stderr, /has no output yet/);
  }));

Deno.test("logs: a large output file is copied whole, byte for byte", () =>
  withHome(async (home) => {
    const q = await openQueue({ home });
    let c: ClaimedJob;
    try {
      await q.enqueue([{ id: "big", command: "yes", queue: "qbig" }], { cwd: null });
      c = await start(q, "qbig", "");
    } finally {
      q.close();
    }
    const line = "0123456789abcdef".repeat(4) + "\n";
    const path = join(home, `big.${c.attempt}.log`);
    Deno.writeTextFileSync(path, line.repeat(50_000)); // 3.25 MB, many buffer lengths
    const r = await runCli(home, ["logs", "big"]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout.length, line.length * 50_000);
    assert.equal(r.stdout, line.repeat(50_000));
  }, false));

Deno.test("logs: a finished attempt whose file is gone is an error", () =>
  withHome(async (home) => {
    const q = await openQueue({ home });
    Deno.removeSync((await q.get("dead1")).attempts_log[0].output_path!);
    q.close();
    const r = await runCli(home, ["logs", "dead1"]);
    assert.equal(r.code, 1);
    assert.match(
      r.stderr,
      /^queuectl: cannot show logs: output file \S+ of attempt 1 is missing\n$/,
    );
  }));

Deno.test("logs --follow: waits for the start, streams growth, stops when the attempt ends", () =>
  withHome(async (home) => {
    const q = await openQueue({ home });
    try {
      await q.enqueue([{ id: "f1", command: "long", queue: "qf" }], { cwd: null });
      const child = spawnCli(home, ["logs", "f1", "--follow"], {
        stdout: "piped",
        stderr: "piped",
      });
      let out = "";
      let err = "";
      const pump = async (stream: ReadableStream<Uint8Array>, add: (t: string) => void) => {
        for await (const text of stream.pipeThrough(new TextDecoderStream())) add(text);
      };
      const reading = Promise.all([
        pump(child.stdout, (t) => out += t),
        pump(child.stderr, (t) => err += t),
      ]);
      // It says so once it found the job not started and went into its wait: only then
      // does the job start, so what follows is the waiting path, however slow the start.
      await waitFor(() => /^waiting for job "f1" to start$/m.test(err), { what: "the wait" });
      assert.equal(out, "", "nothing printed before the job started");
      const c = await start(q, "qf", "one\n");
      await waitFor(() => out.includes("one\n"), { what: "first output" });
      Deno.writeTextFileSync(join(home, `f1.${c.attempt}.log`), "two\n", { append: true });
      await waitFor(() => out.includes("two\n"), { what: "appended output" });
      Deno.writeTextFileSync(join(home, `f1.${c.attempt}.log`), "three\n", { append: true });
      await finish(q, c, true);
      const status = await child.status;
      await reading;
      assert.equal(status.code, 0, err);
      assert.equal(out, "one\ntwo\nthree\n");
      assert.match(err, /attempt 1 ended: succeeded, exit 0/);
    } finally {
      q.close();
    }
  }, false));

Deno.test("dlq list --json: only dead jobs; human table shows the last error", () =>
  withHome(async (home) => {
    const r = await runCli(home, ["dlq", "list", "--json"]);
    assert.equal(r.code, 0, r.stderr);
    const jobs = json<Job[]>(r);
    assert.deepEqual(jobs.map((j) => [j.id, j.state]), [["dead1", "dead"]]);
    const human = await runCli(home, ["dlq", "list"]);
    assert.equal(human.code, 0, human.stderr);
    assert.match(human.stdout, /^dead1\s+1\/1\s+qdead\s+\S+.*exit code 1\s+exit 3$/m);
  }));

Deno.test("dlq retry ID: a dead job goes back to pending with attempts 0", () =>
  withHome(async (home) => {
    const r = await runCli(home, ["dlq", "retry", "dead1"]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, "dead1\n");
    assert.match(r.stderr, /requeued 1 job\(s\)/);
    const job = json<JobDetail>(await runCli(home, ["show", "dead1", "--json"]));
    assert.equal(job.state, "pending");
    assert.equal(job.attempts, 0);
    assert.equal(job.last_error, null);
    assert.deepEqual(json(await runCli(home, ["dlq", "list", "--json"])), []);
  }));

Deno.test("dlq retry: a job that is not dead exits 2 and nothing moves", () =>
  withHome(async (home) => {
    const before = snapshot(home);
    const r = await runCli(home, ["dlq", "retry", "dead1", "p1"]);
    assert.equal(r.code, 2);
    assert.equal(r.stdout, "");
    assert.match(r.stderr, /^queuectl: cannot retry job "p1": it is pending, not dead\n$/);
    assert.equal(snapshot(home), before, "dead1 stays dead too: all or nothing");
    const unknown = await runCli(home, ["dlq", "retry", "nope"]);
    assert.equal(unknown.code, 2);
    assert.equal(snapshot(home), before);
  }));

Deno.test("dlq retry --all; ids with --all, or neither, is bad usage", () =>
  withHome(async (home) => {
    const q = await openQueue({ home });
    try {
      await q.enqueue([{ id: "dead2", command: "false", max_retries: 0, queue: "q2" }], {
        cwd: null,
      });
      await finish(q, await start(q, "q2"), false);
    } finally {
      q.close();
    }
    const before = snapshot(home);
    for (const args of [["dlq", "retry"], ["dlq", "retry", "dead1", "--all"]]) {
      const r = await runCli(home, args);
      assert.equal(r.code, 2, args.join(" "));
      assert.match(r.stderr, /^queuectl: cannot retry dead jobs: give job ids or --all/);
    }
    assert.equal(snapshot(home), before);
    const r = await runCli(home, ["dlq", "retry", "--all", "--json"]);
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(json<string[]>(r).sort(), ["dead1", "dead2"]);
    const status = json<{ counts: Record<string, number> }>(
      await runCli(home, ["status", "--json"]),
    );
    assert.equal(status.counts.dead, 0);
    assert.equal(status.counts.pending, 4);
    const again = await runCli(home, ["dlq", "retry", "--all"]);
    assert.equal(again.code, 0);
    assert.equal(again.stdout, "");
    assert.match(again.stderr, /no dead jobs/);
  }));

Deno.test("config: set, get and list round trip; config.json is 0600", () =>
  withHome(async (home) => {
    const set = await runCli(home, ["config", "set", "max-retries", "5"]);
    assert.equal(set.code, 0, set.stderr);
    assert.equal(set.stdout, "max-retries = 5\n");
    assert.equal(Deno.statSync(join(home, "config.json")).mode! & 0o777, 0o600);
    assert.equal((await runCli(home, ["config", "get", "max-retries"])).stdout, "5\n");
    assert.equal((await runCli(home, ["config", "get", "job-timeout"])).stdout, "none\n");
    const timeout = await runCli(home, ["config", "set", "job-timeout", "90"]);
    assert.equal(timeout.stdout, "job-timeout = 90\n");
    assert.equal((await runCli(home, ["config", "get", "job-timeout", "--json"])).stdout, "90\n");
    const list = await runCli(home, ["config", "list", "--json"]);
    assert.equal(list.code, 0, list.stderr);
    const values = json<Record<string, number | null>>(list);
    assert.equal(values["max-retries"], 5);
    assert.equal(values["job-timeout"], 90);
    assert.equal(values["backoff-base"], 2);
    assert.ok("output-limit" in values && "lease" in values);
    const human = await runCli(home, ["config", "list"]);
    assert.match(human.stdout, /^KEY\s+VALUE\s+DEFAULT\s+SOURCE\s+DESCRIPTION$/m);
    assert.match(human.stdout, /^max-retries\s+5\s+3\s+config\.json\s+retries after/m);
    assert.match(human.stdout, /^backoff-base\s+2\s+2\s+default\s+/m);
  }, false));

Deno.test("config: a bad value or an unknown key exits 2 and changes nothing", () =>
  withHome(async (home) => {
    await runCli(home, ["config", "set", "max-retries", "4"]);
    const before = Deno.readTextFileSync(join(home, "config.json"));
    const bad = await runCli(home, ["config", "set", "max-retries", "banana"]);
    assert.equal(bad.code, 2);
    assert.equal(
      bad.stderr,
      'queuectl: cannot set "max-retries": expected an integer from 0 to 1000, got "banana"\n',
    );
    for (const args of [["config", "set", "retries", "3"], ["config", "get", "retries"]]) {
      const r = await runCli(home, args);
      assert.equal(r.code, 2, args.join(" "));
      assert.equal(r.stdout, "");
      assert.match(r.stderr, /unknown key \(valid: max-retries, backoff-base, .*output-limit\)\n$/);
    }
    assert.equal(Deno.readTextFileSync(join(home, "config.json")), before);
  }, false));

Deno.test("--help of each read command prints its usage and exits 0", () =>
  withHome(async (home) => {
    for (const cmd of ["status", "list", "show", "logs", "dlq", "config"]) {
      const r = await runCli(home, [cmd, "--help"]);
      assert.equal(r.code, 0, cmd);
      assert.match(r.stdout, /Usage:/, cmd);
    }
  }, false));

/** Whether util-linux `script` can give a child a terminal here. */
const hasScript = (() => {
  try {
    return new Deno.Command("script", { args: ["--version"], stdout: "null", stderr: "null" })
      .outputSync().success;
  } catch {
    return false;
  }
})();

Deno.test({
  name: "colour: escape codes on a terminal, none with NO_COLOR set",
  ...needs(
    "util-linux script(1) (a terminal for the child)",
    hasScript,
    () =>
      withHome(async (home) => {
        const quote = (s: string) => `'${s.replaceAll("'", `'\\''`)}'`;
        const cli = [Deno.execPath(), "run", ...CLI_FLAGS, CLI, "--home", home, "list"];
        const onTty = async (env: string) => {
          const out = await new Deno.Command("script", {
            args: ["-qec", `env ${env} ${cli.map(quote).join(" ")}`, "/dev/null"],
            stdin: "null",
            stdout: "piped",
            stderr: "piped",
          }).output();
          return new TextDecoder().decode(out.stdout);
        };
        const colored = await onTty("-u NO_COLOR");
        assert.ok(colored.includes("\x1b[31mdead\x1b[0m"), JSON.stringify(colored));
        const plain = await onTty("NO_COLOR=");
        assert.match(plain, /dead1/);
        assert.ok(!plain.includes("\x1b["), JSON.stringify(plain));
      }),
  ),
});
