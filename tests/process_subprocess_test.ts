/**
 * src/pool/process.ts as shipped workers run it: without --allow-all Deno refuses /proc, so
 * process.ts reads it through `sh` and `cat` and estimates an attempt's start ticks from
 * the monotonic clock. tests/process_test.ts runs under `deno test -A`, where the direct
 * path is taken; here a probe (tests/fixtures/proc_probe.ts) runs under the CLI's own
 * permission flags and this test, with -A, checks what it saw against /proc read directly.
 */

import assert from "node:assert/strict";
import { CLI_FLAGS, groupMembers } from "./helpers.ts";
import { hostIdentity } from "../src/pool/process.ts";

const PROBE = new URL("./fixtures/proc_probe.ts", import.meta.url).pathname;
/** USER_HZ: /proc's start times are in 10 ms ticks. */
const TICK_MS = 10;

interface Probe {
  direct: boolean;
  host: string;
  sleeper: {
    pid: number;
    estimate: number | null;
    exact: number | null;
    spawnedAt: number;
    spawnMs: number;
    calibrateMs: number;
  };
  group: {
    pid: number;
    members: number[] | null;
    goneBefore: boolean[];
    killReused: string;
    aliveAfterReused: boolean;
    killElsewhere: string;
    killPlace: string;
    signal: string | null;
    killAgain: string;
    goneAfter: boolean[];
  };
}

/** Field 22 of /proc/<pid>/stat, read directly (this test has --allow-all). */
function startTicks(pid: number): number {
  const stat = Deno.readTextFileSync(`/proc/${pid}/stat`);
  return Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[19]);
}

async function runProbe(): Promise<Probe> {
  assert.ok(!CLI_FLAGS.includes("-A") && !CLI_FLAGS.includes("--allow-all"));
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", ...CLI_FLAGS, PROBE],
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).output();
  const text = new TextDecoder().decode(out.stdout);
  assert.equal(out.code, 0, new TextDecoder().decode(out.stderr));
  return JSON.parse(text) as Probe;
}

Deno.test("process (shipped permissions): start ticks, host identity and orphan killing via sh", async () => {
  const probe = await runProbe();
  const { sleeper, group } = probe;
  try {
    assert.equal(probe.direct, false, "the probe could read /proc itself: not the shipped path");

    // Exact ticks through sh+cat equal /proc's.
    const actual = startTicks(sleeper.pid);
    assert.equal(sleeper.exact, actual, "processStartTicks through sh+cat");
    // The estimate: the process started between spawnedAt and spawnedAt + spawnMs, the
    // calibration is off by at most half of its own duration plus /proc/uptime's 10 ms
    // resolution, and rounding to ticks adds one.
    assert.ok(sleeper.estimate !== null, "an estimate without /proc access");
    const boundTicks = Math.ceil((sleeper.spawnMs + sleeper.calibrateMs / 2 + TICK_MS) / TICK_MS) +
      1;
    const off = sleeper.estimate - actual;
    console.log(
      `estimate off by ${off} tick(s); bound ${boundTicks} (spawn ${
        sleeper.spawnMs.toFixed(1)
      } ms, calibration ${sleeper.calibrateMs.toFixed(1)} ms)`,
    );
    assert.ok(Math.abs(off) <= boundTicks, `estimate ${sleeper.estimate}, /proc ${actual}`);

    // The host identity through sh (readlink, read) is the one read directly.
    assert.equal(probe.host, hostIdentity());
    assert.ok(!probe.host.includes("unknown"), probe.host);

    // The orphan group: told apart from a reused pid and from another host, then killed.
    assert.ok((group.members?.length ?? 0) >= 2, "the group's members, found through sh+cat");
    assert.deepEqual(group.goneBefore, [false, true, false], "live / pid reused / elsewhere");
    assert.equal(group.killReused, "gone", "other start ticks: a reused pid, left alone");
    assert.equal(group.aliveAfterReused, true);
    assert.equal(group.killElsewhere, "unreachable");
    assert.equal(group.killPlace, "killed");
    assert.equal(group.signal, "SIGKILL");
    assert.equal(group.killAgain, "gone");
    assert.deepEqual(group.goneAfter, [true]);
    assert.deepEqual(groupMembers(group.pid), [], "no member of the group is left");
  } finally {
    for (const pgid of [sleeper.pid, group.pid]) {
      try {
        Deno.kill(-pgid, "SIGKILL"); // each leads its own group
      } catch { /* gone */ }
    }
  }
});
