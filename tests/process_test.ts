/**
 * Process identity and group killing against real processes: start ticks from /proc, the
 * host identity, and the rescuer's orphan killing with its pid-reuse safeguards.
 */

import assert from "node:assert/strict";
import {
  groupAlive,
  groupMembers,
  hostIdentity,
  killByAttemptMarker,
  killGroup,
  killOrphan,
  processStartTicks,
  spawnStartTicks,
} from "../src/pool/process.ts";
import { waitFor } from "./helpers.ts";

/**
 * Reads a /proc file through `cat`: Deno refuses /proc without --allow-all, and reading it
 * a different way than the code under test makes the check independent.
 */
function procText(path: string): string {
  const out = new Deno.Command("cat", { args: [path], stderr: "null" }).outputSync();
  return new TextDecoder().decode(out.stdout);
}

/** Live members of `pgid` (the /proc scan works with or without --allow-all). */
const members = (pgid: number): number => groupMembers(pgid)?.length ?? -1;

/** Starts `script` as its own session and process group, as a worker would, and forgets it. */
async function startGroup(script: string, count: number): Promise<Deno.ChildProcess> {
  const child = new Deno.Command("sh", {
    args: ["-c", script],
    stdin: "null",
    stdout: "null",
    stderr: "null",
    detached: true,
  }).spawn();
  await waitFor(() => members(child.pid) >= count, {
    timeoutMs: 5000,
    what: `${count} members in group ${child.pid}`,
  });
  return child;
}

async function waitGroupGone(pgid: number): Promise<void> {
  await waitFor(() => members(pgid) === 0, {
    timeoutMs: 5000,
    what: `process group ${pgid} to be gone`,
  });
}

Deno.test("processStartTicks reads field 22 of /proc/<pid>/stat", () => {
  const stat = procText(`/proc/${Deno.pid}/stat`);
  // Independent parse: 20 fields after the ")" that closes the command name.
  const expected = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[19]);
  assert.ok(expected > 0);
  assert.equal(processStartTicks(Deno.pid), expected);
  assert.equal(processStartTicks(2 ** 22 + 1), null); // above pid_max: cannot exist
});

Deno.test("processStartTicks parses a command name holding spaces and parentheses", async () => {
  const dir = await Deno.makeTempDir({ prefix: "queuectl-proc-" });
  const odd = `${dir}/a) b (c`;
  await Deno.symlink("/bin/sleep", odd);
  const child = new Deno.Command(odd, { args: ["100"], stdout: "null", stderr: "null" }).spawn();
  try {
    await waitFor(() => procText(`/proc/${child.pid}/stat`).includes("(a) b (c)"), {
      timeoutMs: 5000,
      what: "the odd command name",
    });
    const ticks = processStartTicks(child.pid);
    assert.ok(ticks !== null && ticks >= processStartTicks(Deno.pid)!, `got ${ticks}`);
  } finally {
    child.kill("SIGKILL");
    await child.status;
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("hostIdentity is stable: hostname, PID namespace and boot id", () => {
  const id = hostIdentity();
  assert.equal(hostIdentity(), id);
  const [host, pidNamespace, bootId] = id.split("/");
  assert.equal(host, Deno.hostname());
  const link = new Deno.Command("readlink", { args: [`/proc/${Deno.pid}/ns/pid`] }).outputSync();
  assert.equal(`pid:[${pidNamespace}]`, new TextDecoder().decode(link.stdout).trim());
  assert.equal(bootId, procText("/proc/sys/kernel/random/boot_id").trim());
});

Deno.test("spawnStartTicks is within a few ticks of /proc's", async () => {
  const spawnedAt = performance.now();
  const child = await startGroup("sleep 100", 1);
  try {
    const estimate = spawnStartTicks(child.pid, spawnedAt);
    const actual = processStartTicks(child.pid);
    assert.ok(estimate !== null && actual !== null);
    assert.ok(Math.abs(estimate - actual) <= 5, `estimate ${estimate}, /proc ${actual}`);
  } finally {
    await killGroup(child.pid, { graceMs: 1000 });
    await child.status;
  }
});

Deno.test("killOrphan kills a forgotten group with all its members", async () => {
  const spawnedAt = performance.now();
  const child = await startGroup("sleep 100 & sleep 100", 2);
  // What a worker records: an estimate without --allow-all, exact with it.
  const start_ticks = spawnStartTicks(child.pid, spawnedAt);
  const place = { host: hostIdentity(), pid: child.pid, start_ticks };
  assert.equal(killOrphan(place), "killed");
  assert.equal((await child.status).signal, "SIGKILL");
  await waitGroupGone(child.pid);
  assert.equal(killOrphan(place), "gone");
});

Deno.test("killOrphan kills members that outlived their leader", async () => {
  const child = await startGroup("sleep 100 & sleep 100 & exit 0", 2);
  const place = { host: hostIdentity(), pid: child.pid, start_ticks: processStartTicks(child.pid) };
  assert.equal((await child.status).code, 0); // the leader is gone (and reaped) ...
  assert.ok(groupAlive(child.pid)); // ... its children are not
  assert.equal(killOrphan(place), "killed");
  await waitGroupGone(child.pid);
});

Deno.test("killOrphan does not touch a process on another host", async () => {
  const child = await startGroup("sleep 100", 1);
  try {
    const place = { host: "elsewhere/1/x", pid: child.pid, start_ticks: null };
    assert.equal(killOrphan(place), "unreachable");
    assert.ok(groupAlive(child.pid));
  } finally {
    await killGroup(child.pid, { graceMs: 1000 });
    await child.status;
  }
});

Deno.test("killOrphan treats other start ticks as a reused pid and leaves it alone", async () => {
  const child = await startGroup("sleep 100", 1);
  try {
    const ticks = processStartTicks(child.pid)!;
    const place = { host: hostIdentity(), pid: child.pid, start_ticks: ticks + 10 * 100 };
    assert.equal(killOrphan(place), "gone");
    assert.ok(groupAlive(child.pid));
    assert.ok(members(child.pid) >= 1);
  } finally {
    await killGroup(child.pid, { graceMs: 1000 });
    assert.equal((await child.status).signal, "SIGTERM");
  }
  assert.equal(groupAlive(child.pid), false);
});

Deno.test("killGroup escalates to SIGKILL when SIGTERM is ignored", async () => {
  const child = await startGroup('trap "" TERM; sleep 100 & sleep 100', 2);
  const started = performance.now();
  await killGroup(child.pid, { graceMs: 200 });
  assert.ok(performance.now() - started >= 200);
  assert.equal((await child.status).signal, "SIGKILL");
  await waitGroupGone(child.pid);
});

Deno.test("group ids 0, 1 and negatives are refused", async () => {
  for (const pgid of [0, 1, -5, 1.5]) {
    assert.throws(() => groupAlive(pgid), RangeError);
    await assert.rejects(killGroup(pgid, { graceMs: 0 }), RangeError);
  }
  assert.equal(killOrphan({ host: hostIdentity(), pid: 1, start_ticks: null }), "gone");
  assert.equal(killOrphan({ host: hostIdentity(), pid: null, start_ticks: null }), "gone");
});

Deno.test("killByAttemptMarker finds an unrecorded orphan by its environment", async () => {
  const jobId = `marker-${crypto.randomUUID().slice(0, 8)}`;
  const child = new Deno.Command("sh", {
    args: ["-c", "sleep 100 & sleep 100"],
    env: { QUEUECTL_JOB_ID: jobId, QUEUECTL_ATTEMPT: "3" },
    stdin: "null",
    stdout: "null",
    stderr: "null",
  }).spawn();
  const other = new Deno.Command("sh", {
    args: ["-c", "sleep 100"],
    env: { QUEUECTL_JOB_ID: jobId, QUEUECTL_ATTEMPT: "4" },
    stdin: "null",
  }).spawn();
  try {
    // Both sleeps and their sh are marked; wait until both children exist.
    const children = `/proc/${child.pid}/task/${child.pid}/children`;
    await waitFor(() => Deno.readTextFileSync(children).trim().split(" ").length === 2);
    assert.ok(killByAttemptMarker(jobId, 3) >= 3);
    const status = await child.status;
    assert.equal(status.signal, "SIGKILL");
    assert.equal(killByAttemptMarker(jobId, 3), 0, "nothing left");
    assert.equal(killByAttemptMarker("no-such-job", 1), 0);
  } finally {
    other.kill("SIGKILL");
    await other.status;
  }
});
