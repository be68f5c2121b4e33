/**
 * Job processes: identity across PID reuse and hosts, group liveness, group killing. An
 * attempt leads its own process group (pgid == pid), so `kill(-pid)` reaches all it started
 * except what deliberately left (`setsid`), which only cgroups could contain.
 *
 * Reading /proc: Deno 2 refuses every /proc path without `--allow-all`, even with
 * `--allow-read`, and the worker runs with scoped permissions. So /proc is read directly
 * where allowed, and otherwise by a tiny `sh` script (`--allow-run` is granted) on the rare
 * paths: identity at start-up, the rescuer, and killing a group. On the hot path (every
 * spawn) the start ticks are then estimated from the monotonic clock, calibrated once per
 * thread, and {@linkcode killOrphan} compares them with a tolerance.
 *
 * Zombies count as group members for kill(), and the grandchildren we kill are reparented
 * to PID 1, which may reap late (this sandbox's init: ~2 s) or never (a container whose
 * PID 1 is deno). So "alive" asks the kernel first (one syscall, enough when the group is
 * empty, the common case) and only when it says yes looks for a member that is no zombie.
 *
 * @module
 */

/** What `/proc/<pid>/stat` says about a process. */
interface ProcStat {
  state: string;
  pgrp: number;
  startTicks: number;
}

/** USER_HZ, the unit of /proc start times: 100 on every mainstream Linux. */
const TICKS_PER_S = 100;
/** How far recorded start ticks may be from /proc's (an estimate is within a few). */
const START_TOLERANCE_TICKS = TICKS_PER_S;
/** Poll intervals while waiting for a group to die: 10, 20, 40 … ms, capped here. */
const FIRST_POLL_MS = 10;
const MAX_POLL_MS = 100;
/** How long to wait for a SIGKILLed group to disappear before giving up on it. */
const AFTER_KILL_WAIT_MS = 1000;
/**
 * Prints the /proc/<pid>/stat line of each folder given (of every process when none). One
 * `cat` reads each file in one call; each stat line starts with its own pid. (A `read` loop
 * in sh read one byte per system call: 25,000 calls for 110 processes.)
 */
const STAT_SCRIPT = `[ $# -gt 0 ] || exec cat /proc/[0-9]*/stat 2>/dev/null
for d do set -- "$@" "$d/stat"; shift; done; exec cat -- "$@" 2>/dev/null`;

let access: "direct" | "subprocess" | "none" | undefined;
let cachedHost: string | null = null;
let bootMsAtZero: number | null = null; // CLOCK_BOOTTIME ms at performance.now() == 0
let calibratedAt = -Infinity;
/** Recalibrate this often: the monotonic clock stops during a suspend, boot time does not. */
const CALIBRATE_EVERY_MS = 5 * 60_000;

/** How this process can read /proc, found out once. */
function procAccess(): "direct" | "subprocess" | "none" {
  if (access === undefined) {
    try {
      Deno.readTextFileSync("/proc/self/stat");
      access = "direct";
    } catch (e) {
      access = e instanceof Deno.errors.NotCapable ? "subprocess" : "none";
    }
  }
  return access;
}

/** Runs `script` in `sh` and returns its stdout lines, or null if it could not run. */
function shLines(script: string, args: string[] = []): string[] | null {
  try {
    const out = new Deno.Command("sh", {
      args: ["-c", script, "sh", ...args],
      stdin: "null",
      stderr: "null",
    }).outputSync();
    return new TextDecoder().decode(out.stdout).split("\n").filter((line) => line !== "");
  } catch {
    return null;
  }
}

/** Reads one /proc text file (trimmed) directly or through `sh`; null when unreadable. */
function readProc(path: string): string | null {
  if (procAccess() === "direct") {
    try {
      return Deno.readTextFileSync(path).trim();
    } catch {
      return null;
    }
  }
  if (procAccess() === "none") return null;
  const line = shLines('read -r v < "$1" && echo "$v"', [path]);
  return line?.[0] ?? null;
}

/**
 * Where a process lives, as `hostname/pid-namespace-inode/boot-id`. Two processes can
 * signal each other's PIDs only when all three match: same machine, same boot (PIDs restart
 * at boot) and same PID namespace (containers). Unreadable parts become `unknown`, which
 * {@linkcode killOrphan} treats as unreachable. Cached for the life of the process.
 */
export function hostIdentity(): string {
  if (cachedHost !== null) return cachedHost;
  let hostname: string | null;
  try {
    hostname = Deno.hostname(); // needs --allow-sys=hostname
  } catch {
    hostname = readProc("/proc/sys/kernel/hostname");
  }
  let link: string | null = null;
  if (procAccess() === "direct") {
    try {
      link = Deno.readLinkSync("/proc/self/ns/pid");
    } catch { /* unknown */ }
  } else if (procAccess() === "subprocess") {
    link = shLines("readlink /proc/self/ns/pid")?.[0] ?? null; // a child shares our namespace
  }
  const pidNamespace = /\[(\d+)\]/.exec(link ?? "")?.[1];
  const bootId = readProc("/proc/sys/kernel/random/boot_id");
  cachedHost = `${hostname || "unknown"}/${pidNamespace ?? "unknown"}/${bootId || "unknown"}`;
  return cachedHost;
}

/**
 * The start time of `pid` in clock ticks since boot (field 22 of `/proc/<pid>/stat`), or
 * null when the process does not exist or /proc cannot be read. With the pid it
 * identifies a process even after the pid is reused.
 */
export function processStartTicks(pid: number): number | null {
  return readStats([pid]).get(pid)?.startTicks ?? null;
}

/**
 * The start ticks of process `pid`, spawned at `spawnedAt` (a `performance.now()` taken
 * just before the spawn), for recording: exact where /proc is directly readable, else
 * estimated from the monotonic clock without spawning anything. Null when neither works.
 */
export function spawnStartTicks(pid: number, spawnedAt: number): number | null {
  if (procAccess() === "direct") return processStartTicks(pid);
  calibrateStartTicks();
  if (bootMsAtZero === null) return null;
  return Math.round((bootMsAtZero + spawnedAt) * TICKS_PER_S / 1000);
}

/**
 * Prepares {@linkcode spawnStartTicks}' estimate: without direct /proc access, reads the
 * boot-time clock once per thread (and every few minutes) through `sh`. Call it before a
 * spawn, so that the report of a new process is not delayed by it.
 */
export function calibrateStartTicks(): void {
  if (procAccess() === "direct" || performance.now() - calibratedAt < CALIBRATE_EVERY_MS) return;
  const before = performance.now();
  const uptime = Number(readProc("/proc/uptime")?.split(" ")[0]); // CLOCK_BOOTTIME, 10 ms
  const after = performance.now();
  bootMsAtZero = Number.isFinite(uptime) ? uptime * 1000 - (before + after) / 2 : null;
  calibratedAt = after;
}

/**
 * Whether process group `pgid` has a member that is not a zombie.
 *
 * Deno has no signal 0, so the kernel is asked with SIGCONT: a no-op for running processes
 * (it interrupts nothing unless a process handles it, which batch jobs do not), and for a
 * stopped one what we want anyway before a SIGTERM (GNU timeout sends it for the same
 * reason). A success is then checked against /proc, because zombies count as members.
 * Without /proc the kernel's answer stands.
 *
 * @throws {RangeError} when `pgid` is not an integer > 1 (0 and 1 would mean "our own
 * group" and "every process").
 */
export function groupAlive(pgid: number): boolean {
  if (signalGroup(pgid, "SIGCONT") === "gone") return false;
  const members = groupMembers(pgid);
  return members === null || members.length > 0;
}

/**
 * The pids of group `pgid`'s members that are not zombies (a /proc scan, slow: for the
 * kill path and tests), or null when /proc cannot be read.
 */
export function groupMembers(pgid: number): number[] | null {
  const stats = readStats(null);
  if (stats === null) return null;
  return [...stats].filter(([, stat]) => isLive(stat, pgid)).map(([pid]) => pid);
}

/**
 * Terminates process group `pgid`: sends `signal`, waits up to `graceMs` for the group to
 * be gone (polling with backoff), then sends SIGKILL and waits briefly for it to vanish.
 * Resolves once the group is gone or that last wait ends.
 *
 * @throws {RangeError} when `pgid` is not an integer > 1.
 */
export async function killGroup(
  pgid: number,
  options: {
    graceMs: number;
    /** @default {"SIGTERM"} */
    signal?: Deno.Signal;
  },
): Promise<void> {
  const signal = options.signal ?? "SIGTERM";
  if (signalGroup(pgid, signal) === "gone") return;
  if (signal !== "SIGKILL") {
    // Wake stopped members: a stopped process only acts on SIGTERM once continued.
    signalGroup(pgid, "SIGCONT");
    if (await waitGone(pgid, options.graceMs)) return;
    if (signalGroup(pgid, "SIGKILL") === "gone") return;
  }
  await waitGone(pgid, AFTER_KILL_WAIT_MS);
}

/**
 * Kills the process group of an attempt whose worker died, as the rescuer finds it in the
 * store: `unreachable` when it lives on another host, boot or PID namespace (or ours is
 * unknown, or it belongs to another user), `gone` when its group no longer exists (or no
 * pid was recorded), `killed` after sending SIGKILL to the group.
 *
 * Why a pid is safe to use: the kernel does not hand out a pid while a process group with
 * that id exists, and the attempt's leader never leaves its group. So if `/proc/<pid>` is a
 * different process (start ticks further off than an estimate can be, or no group leader)
 * the original group is gone; if `/proc/<pid>` is missing, members may have outlived the
 * leader, and they keep the id reserved, so `kill(-pid)` reaches exactly them. The
 * remaining race: the group ends and a new group leader gets the pid between look and kill.
 */
export function killOrphan(
  place: { host: string; pid: number | null; start_ticks: number | null },
): "killed" | "gone" | "unreachable" {
  const here = hostIdentity();
  if (place.host !== here || here.split("/").includes("unknown")) return "unreachable";
  const pid = place.pid;
  // No pid: the worker died before it spawned (or recorded) the process.
  if (pid === null || !Number.isInteger(pid) || pid <= 1 || pid === Deno.pid) return "gone";
  const stat = readStats([pid]).get(pid);
  if (stat !== undefined) {
    const same = place.start_ticks !== null &&
      Math.abs(stat.startTicks - place.start_ticks) <= START_TOLERANCE_TICKS;
    if (place.start_ticks !== null && !same) return "gone";
    if (stat.pgrp !== pid) {
      // No group leader: with matching start ticks, the instant before setsid(1) ran, when
      // nothing is forked yet and the process is the whole job; else likely a reused pid.
      if (!same) return "gone";
      try {
        Deno.kill(pid, "SIGKILL");
        return "killed";
      } catch {
        return "gone";
      }
    }
  }
  if (!groupAlive(pid)) return "gone";
  const sent = signalGroup(pid, "SIGKILL");
  return sent === "sent" ? "killed" : sent === "gone" ? "gone" : "unreachable";
}

/**
 * For each process recorded as `place`, whether it has certainly ended: it lived on this
 * host (same machine, boot and PID namespace) and `/proc/<pid>` is now missing, a zombie,
 * or a process started at another time (the pid was reused). False when in doubt (another
 * host, /proc unreadable, no start ticks recorded and the pid alive), so callers fall back
 * to waiting for a heartbeat to go stale. /proc is read once for all of them.
 */
export function processesGone(
  places: { host: string; pid: number; start_ticks: number | null }[],
): boolean[] {
  const here = hostIdentity();
  const unknownHere = here.split("/").includes("unknown");
  const local = (p: { host: string; pid: number }) =>
    !unknownHere && p.host === here && Number.isInteger(p.pid) && p.pid > 1;
  if (!places.some(local)) return places.map(() => false);
  // Our own pid is read too: if it is missing, /proc could not be read at all.
  const stats = readStats([...places.filter(local).map((p) => p.pid), Deno.pid]);
  if (!stats.has(Deno.pid)) return places.map(() => false);
  return places.map((place) => {
    if (!local(place)) return false;
    const stat = stats.get(place.pid);
    if (stat === undefined || stat.state === "Z" || stat.state === "X") return true;
    return place.start_ticks !== null &&
      Math.abs(stat.startTicks - place.start_ticks) > START_TOLERANCE_TICKS;
  });
}

/** Sends `signal` to every member of group `pgid`; says whether any member existed. */
function signalGroup(pgid: number, signal: Deno.Signal): "sent" | "gone" | "denied" {
  if (!Number.isInteger(pgid) || pgid <= 1) {
    throw new RangeError(`cannot signal process group ${pgid}: not a job's group id`);
  }
  try {
    Deno.kill(-pgid, signal);
    return "sent";
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return "gone"; // ESRCH
    if (e instanceof Deno.errors.PermissionDenied) return "denied"; // EPERM: another user's
    throw e;
  }
}

/** Waits until group `pgid` has no live member or `ms` pass; says whether it is gone. */
async function waitGone(pgid: number, ms: number): Promise<boolean> {
  const deadline = performance.now() + ms;
  // Members seen alive by the last scan: re-reading them is cheaper than a scan. Only when
  // they are all dead do we scan again, to catch anything forked meanwhile.
  let known: number[] = [];
  let delay = FIRST_POLL_MS;
  while (true) {
    if (signalGroup(pgid, "SIGCONT") === "gone") return true;
    const stats = readStats(known);
    if (!known.some((pid) => isLive(stats.get(pid), pgid))) {
      const members = groupMembers(pgid);
      if (members !== null && members.length === 0) return true;
      known = members ?? [];
    }
    const left = deadline - performance.now();
    if (left <= 0) return false;
    await new Promise((resolve) => setTimeout(resolve, Math.min(delay, left)));
    delay = Math.min(delay * 2, MAX_POLL_MS);
  }
}

function isLive(stat: ProcStat | undefined, pgid: number): boolean {
  return stat !== undefined && stat.pgrp === pgid && stat.state !== "Z" && stat.state !== "X";
}

/** Stats of `pids` (of every process when null); null only for an unreadable full scan. */
function readStats(pids: number[]): Map<number, ProcStat>;
function readStats(pids: number[] | null): Map<number, ProcStat> | null;
function readStats(pids: number[] | null): Map<number, ProcStat> | null {
  const stats = new Map<number, ProcStat>();
  const add = (pid: number, text: string) => {
    const stat = parseStat(text);
    if (stat !== null) stats.set(pid, stat);
  };
  if (pids?.length === 0) return stats;
  if (procAccess() === "direct") {
    try {
      pids ??= [...Deno.readDirSync("/proc")].filter((e) => /^\d+$/.test(e.name))
        .map((e) => Number(e.name));
    } catch {
      return null;
    }
    for (const pid of pids) {
      try {
        add(pid, Deno.readTextFileSync(`/proc/${pid}/stat`));
      } catch { /* gone meanwhile */ }
    }
    return stats;
  }
  const lines = procAccess() === "none"
    ? null
    : shLines(STAT_SCRIPT, (pids ?? []).map((pid) => `/proc/${pid}`));
  if (lines === null) return pids === null ? null : stats;
  for (const line of lines) add(Number(line.slice(0, line.indexOf(" "))), line);
  return stats;
}

/** Parses `/proc/<pid>/stat`, whose command name (field 2) may hold spaces and ")". */
function parseStat(text: string): ProcStat | null {
  const fields = text.slice(text.lastIndexOf(")") + 2).split(" ");
  // fields[0] is field 3 (state), so field n is fields[n - 3].
  const pgrp = Number(fields[5 - 3]);
  const startTicks = Number(fields[22 - 3]);
  if (!Number.isInteger(pgrp) || !Number.isInteger(startTicks)) return null;
  return { state: fields[0], pgrp, startTicks };
}

/**
 * Kills, on this host, every process whose environment marks it as attempt `attempt` of
 * job `jobId` (`QUEUECTL_JOB_ID`/`QUEUECTL_ATTEMPT`, which every job process inherits).
 * The rescuer's second net: it finds an orphan whose pid was never recorded (its worker
 * died in the instant after the spawn) and processes that left the job's group. Scanning
 * /proc/PID/environ is slow, so it runs only when a lease expired. Returns how many it killed.
 */
export function killByAttemptMarker(jobId: string, attempt: number): number {
  // grep exits 2 when some /proc entry vanished mid-scan, matches or not: test the output.
  const script = `files=$(grep -lzxF -e "QUEUECTL_JOB_ID=$1" /proc/[0-9]*/environ 2>/dev/null)
[ -n "$files" ] && grep -lzxF -e "QUEUECTL_ATTEMPT=$2" $files 2>/dev/null; exit 0`;
  const lines = shLines(script, [jobId, String(attempt)]) ?? [];
  let killed = 0;
  for (const line of lines) {
    const pid = Number(/^\/proc\/(\d+)\/environ$/.exec(line)?.[1]);
    if (!Number.isInteger(pid) || pid <= 1 || pid === Deno.pid) continue;
    try {
      Deno.kill(pid, "SIGKILL");
      killed++;
    } catch { /* it ended meanwhile */ }
  }
  return killed;
}
