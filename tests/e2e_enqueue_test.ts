/**
 * End-to-end: the real cli.ts, run with the deno.json task's permission flags, against a
 * temporary data directory. Enqueue forms, bad input, file modes.
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import { cleanup, CLI_FLAGS, json, runCli, snapshot, tempHome } from "./helpers.ts";
import { RUN_FLAGS } from "../src/self.ts";
import { main } from "../cli.ts";

Deno.test("e2e: the tests run the CLI with exactly the shipped runtime and permission flags", () => {
  assert.deepEqual(CLI_FLAGS, [...RUN_FLAGS]);
  const config = JSON.parse(Deno.readTextFileSync(new URL("../deno.json", import.meta.url)));
  for (const task of ["queuectl", "compile"]) {
    const flags = (config.tasks[task] as string).split(/\s+/).filter((w) =>
      w.startsWith("--allow") || w.startsWith("--v8-flags")
    );
    assert.deepEqual(flags, [...RUN_FLAGS], task);
    assert.doesNotMatch(config.tasks[task], /--allow-net|--allow-ffi|-A\b|--allow-all/);
  }
  // The Docker image's entrypoint is the same command.
  const dockerfile = Deno.readTextFileSync(new URL("../Dockerfile", import.meta.url));
  const entry = JSON.parse(/^ENTRYPOINT (\[.*\])$/m.exec(dockerfile)![1]) as string[];
  assert.deepEqual(entry, ["deno", "run", ...RUN_FLAGS, "cli.ts"]);
});

Deno.test("e2e: the canonical enqueue prints the id and stores the job", async () => {
  const home = await tempHome();
  try {
    const r = await runCli(home, ["enqueue", '{"id":"job1","command":"sleep 2"}']);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, "job1\n");
    assert.equal(r.stderr, "");
    const shown = json<{ id: string; state: string; max_retries: number; cwd: string }>(
      await runCli(home, ["show", "job1", "--json"]),
    );
    assert.equal(shown.state, "pending");
    assert.equal(shown.max_retries, 3);
    assert.equal(shown.cwd, Deno.cwd(), "cwd defaults to where enqueue ran");
  } finally {
    await cleanup(home);
  }
});

Deno.test("e2e: the '--' form quotes arguments; JSON Lines from --file and stdin", async () => {
  const home = await tempHome();
  try {
    const r = await runCli(home, [
      "enqueue",
      "--id",
      "cl",
      "--priority",
      "4",
      "--timeout",
      "9",
      "--",
      "echo",
      "it's a test",
    ]);
    assert.equal(r.code, 0, r.stderr);
    const cl = json<{ command: string; priority: number; timeout_s: number }>(
      await runCli(home, ["show", "cl", "--json"]),
    );
    assert.equal(cl.command, `echo 'it'\\''s a test'`);
    assert.equal(cl.priority, 4);
    assert.equal(cl.timeout_s, 9);

    const file = join(home, "jobs.jsonl");
    Deno.writeTextFileSync(file, '{"command":"true"}\n\n{"id":"f2","command":"false"}\n');
    const f = await runCli(home, ["enqueue", "--file", file]);
    assert.equal(f.code, 0, f.stderr);
    assert.equal(f.stdout.trim().split("\n").length, 2);
    assert.equal(f.stdout.trim().split("\n")[1], "f2");

    const s = await runCli(home, ["enqueue", "-"], { stdin: '{"id":"s1","command":"true"}\n' });
    assert.equal(s.code, 0, s.stderr);
    assert.equal(s.stdout, "s1\n");
    const all = json<unknown[]>(await runCli(home, ["list", "--json"]));
    assert.equal(all.length, 4);
  } finally {
    await cleanup(home);
  }
});

Deno.test("e2e: bad input exits 2 with one line on stderr and changes nothing", async () => {
  const home = await tempHome();
  try {
    assert.equal((await runCli(home, ["enqueue", '{"id":"keep","command":"true"}'])).code, 0);
    assert.equal((await runCli(home, ["config", "set", "max-retries", "4"])).code, 0);
    const before = snapshot(home);
    const configBefore = Deno.readTextFileSync(join(home, "config.json"));
    const bad: Array<[string[], RegExp, string?]> = [
      [["enqueue", "{not json"], /cannot enqueue: invalid JSON/],
      [["enqueue", '{"id":"x"}'], /cannot enqueue: "command" must be a non-empty string/],
      [["enqueue", '{"command":"true","max_retries":"3"}'], /"max_retries" must be an integer/],
      [["enqueue", '{"id":"keep","command":"true"}'], /already exists/],
      [["enqueue", "-"], /line 2: invalid JSON/, '{"command":"true"}\n{bad\n'],
      [["enqueue", "-"], /job 2: "command"/, '{"id":"n1","command":"true"}\n{"id":"n2"}\n'],
      [["enqueue", "-"], /already exists/, '{"id":"d","command":"a"}\n{"id":"d","command":"b"}\n'],
      [["enqueue"], /cannot enqueue: give a JSON job/],
      [["enqueue", "--bogus", "x"], /cannot enqueue: Unknown option '--bogus'/],
      [["list", "--state", "running"], /unknown state "running"/],
      [["show", "nope"], /no job with id "nope"/],
      [["dlq", "retry", "keep"], /it is pending, not dead/],
      [
        ["config", "set", "max-retries", "banana"],
        /expected an integer from 0 to 1000, got "banana"/,
      ],
      [["config", "set", "colour", "red"], /unknown key/],
      [["worker", "start", "--count", "0"], /--count must be a whole number from 1/],
      [["frobnicate"], /unknown command/],
    ];
    for (const [args, message, stdin] of bad) {
      const r = await runCli(home, args, { stdin });
      assert.equal(r.code, 2, `${args.join(" ")}: ${r.stderr}`);
      assert.equal(r.stdout, "", args.join(" "));
      const lines = r.stderr.trimEnd().split("\n");
      assert.equal(lines.length, 1, `one line: ${r.stderr}`);
      assert.match(lines[0], /^queuectl: cannot /);
      assert.match(lines[0], message);
      assert.doesNotMatch(r.stderr, /\bat .*\.ts:\d+/, "no stack trace");
    }
    assert.equal(snapshot(home), before);
    assert.equal(Deno.readTextFileSync(join(home, "config.json")), configBefore);
  } finally {
    await cleanup(home);
  }
});

Deno.test("e2e: --debug adds the stack trace", async () => {
  const home = await tempHome();
  try {
    const r = await runCli(home, ["show", "nope", "--debug"]);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /JobNotFoundError/);
    assert.match(r.stderr, /queuectl: cannot show job/);
  } finally {
    await cleanup(home);
  }
});

Deno.test("e2e: an existing data directory of mode 0755 is made 0700, with the shipped flags", async () => {
  const home = await tempHome();
  try {
    Deno.chmodSync(home, 0o755);
    const r = await runCli(home, ["enqueue", "--", "echo", "hi"]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(Deno.statSync(home).mode! & 0o777, 0o700);
  } finally {
    await cleanup(home);
  }
});

Deno.test("e2e: the data directory is 0700 and its files 0600", async () => {
  const parent = await tempHome();
  const home = join(parent, "data");
  try {
    assert.equal((await runCli(home, ["enqueue", "--", "echo", "hi"])).code, 0);
    assert.equal((await runCli(home, ["config", "set", "lease", "20"])).code, 0);
    assert.equal(Deno.statSync(home).mode! & 0o777, 0o700);
    for (const entry of Deno.readDirSync(home)) {
      if (entry.isFile) {
        assert.equal(Deno.statSync(join(home, entry.name)).mode! & 0o777, 0o600, entry.name);
      }
    }
    assert.ok(Deno.statSync(join(home, "queue.db")).isFile);
  } finally {
    await cleanup(parent);
  }
});

Deno.test("e2e: an error quoting half of an emoji prints the same line in process and as a process", async () => {
  // Found by the fuzzer (seed 131980117): V8's JSON.parse message quotes one UTF-16 unit of
  // "🚀", a lone surrogate; a process's UTF-8 stderr shows U+FFFD there, and so must main().
  const home = await tempHome();
  try {
    const args = ["enqueue", "🚀\x7f7"];
    let inProcess = "";
    const code = await main(["--home", home, ...args], {
      stdout: () => {},
      stderr: (text) => inProcess += text,
    });
    const r = await runCli(home, args);
    assert.equal(code, 2);
    assert.equal(r.code, 2);
    assert.equal(inProcess, r.stderr);
    assert.ok(inProcess.isWellFormed(), JSON.stringify(inProcess));
    assert.match(inProcess, /^queuectl: cannot enqueue: invalid JSON: .*\n$/);
  } finally {
    await cleanup(home);
  }
});
