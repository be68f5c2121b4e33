/**
 * File system checks for the SQLite store: refusing network and shared-folder file
 * systems, and naming the cause when the data directory cannot be written (disk full,
 * read-only mount).
 *
 * WAL keeps its index in a shared-memory file (`queue.db-shm`) that every connection maps,
 * and relies on POSIX advisory locks. On NFS, SMB/CIFS, 9p, virtiofs and FUSE file systems
 * neither is reliable (the mapping is not shared between hosts or with the VM/container on
 * the other side; locks may be ignored or emulated), so two processes can both believe they
 * own the write lock and corrupt the database. SQLite's documentation says WAL "does not
 * work over a network filesystem". We detect such a mount from the kernel's mount table
 * and refuse, unless `QUEUECTL_ALLOW_NETWORK_FS=1` says the user knows better (e.g. every
 * process runs on one machine).
 *
 * Reading the mount table costs an exec of `cat` (Deno refuses any /proc read without
 * `--allow-all`), a few milliseconds, so callers check only when the database file is
 * created and when a long-lived worker starts, not on every one-shot command.
 *
 * @module
 */

import { OperationalError } from "../errors.ts";

/** The environment variable that turns the check off. */
export const ALLOW_NETWORK_FS_ENV = "QUEUECTL_ALLOW_NETWORK_FS";

/** One mount from the mount table. */
export interface MountEntry {
  /** Mount id (mountinfo field 1); -1 when parsed from /proc/mounts. */
  id: number;
  /** Parent mount id; -1 when unknown. */
  parentId: number;
  /** Where it is mounted, unescaped (`\040` → space). */
  mountPoint: string;
  /** The file system type, e.g. `ext4`, `nfs4`, `fuse.sshfs`. */
  fsType: string;
  /** What is mounted, e.g. `/dev/vda1`, `server:/export`. */
  source: string;
}

/** Undoes the octal escapes the kernel applies to space, tab, newline and backslash. */
export function unescapeMountField(field: string): string {
  return field.replace(
    /\\([0-7]{3})/g,
    (_, octal: string) => String.fromCharCode(parseInt(octal, 8)),
  );
}

/**
 * Parses `/proc/<pid>/mountinfo`:
 * `36 35 98:0 /root /mnt/point rw,noatime master:1 - ext3 /dev/root rw,errors=continue`
 * (id, parent, dev, root, mount point, options, optional fields, `-`, type, source, super
 * options). Malformed lines are skipped.
 */
export function parseMountInfo(text: string): MountEntry[] {
  const mounts: MountEntry[] = [];
  for (const line of text.split("\n")) {
    const fields = line.trim().split(" ");
    const dash = fields.indexOf("-", 6);
    if (fields.length < 7 || dash === -1 || dash + 1 >= fields.length) continue;
    const id = Number(fields[0]);
    const parentId = Number(fields[1]);
    if (!Number.isInteger(id) || !Number.isInteger(parentId)) continue;
    mounts.push({
      id,
      parentId,
      mountPoint: unescapeMountField(fields[4]),
      fsType: unescapeMountField(fields[dash + 1]),
      source: unescapeMountField(fields[dash + 2] ?? ""),
    });
  }
  return mounts;
}

/** Parses `/proc/mounts` (`source mountpoint type options 0 0`), the fallback table. */
export function parseProcMounts(text: string): MountEntry[] {
  const mounts: MountEntry[] = [];
  for (const line of text.split("\n")) {
    const fields = line.trim().split(" ");
    if (fields.length < 3 || !fields[1].startsWith("/")) continue;
    mounts.push({
      id: -1,
      parentId: -1,
      mountPoint: unescapeMountField(fields[1]),
      fsType: unescapeMountField(fields[2]),
      source: unescapeMountField(fields[0]),
    });
  }
  return mounts;
}

/** Parses either format: mountinfo lines start with two numbers, /proc/mounts lines do not. */
export function parseMountTable(text: string): MountEntry[] {
  const first = text.split("\n").find((line) => line.trim() !== "") ?? "";
  return /^\s*\d+ \d+ /.test(first) ? parseMountInfo(text) : parseProcMounts(text);
}

/**
 * The mount that holds the absolute, symlink-free `path`: the longest mount point that is
 * `path` or one of its parent directories (whole components: `/data` does not hold
 * `/database`). Of several mounts on one point (over-mounting), the visible one is the
 * top of the stack: the one no other mount there has as its parent; with no ids to go by,
 * the last in the table.
 */
export function findMount(mounts: readonly MountEntry[], path: string): MountEntry | null {
  let best: MountEntry[] = [];
  let bestLength = -1;
  for (const m of mounts) {
    const point = m.mountPoint.length > 1 ? m.mountPoint.replace(/\/+$/, "") : m.mountPoint;
    const holds = point === "/" || path === point || path.startsWith(point + "/");
    if (!holds) continue;
    if (point.length > bestLength) {
      best = [m];
      bestLength = point.length;
    } else if (point.length === bestLength) {
      best.push(m);
    }
  }
  if (best.length === 0) return null;
  const parents = new Set(best.map((m) => m.parentId));
  const tops = best.filter((m) => m.id === -1 || !parents.has(m.id));
  return (tops.length ? tops : best).at(-1)!;
}

/**
 * Whether SQLite's WAL is unsafe on a file system type: NFS, SMB/CIFS, 9p, virtiofs and
 * every FUSE file system (`fuse`, `fuseblk`, `fuse.sshfs`, …), whose shared memory and
 * locks do not reliably reach every process using the file.
 */
export function isNetworkFsType(fsType: string): boolean {
  const t = fsType.toLowerCase();
  return /^(nfs\d*|cifs|smb\d*|smbfs|9p|virtiofs|fuse|fuseblk|fuse\..+|fuseblk\..+)$/.test(t);
}

/**
 * Why the database at `realPath` must not be used, given the mount table's text; null when
 * it is on a local file system (or the table names no mount for it).
 */
export function networkFsProblem(realPath: string, mountTable: string): string | null {
  const mount = findMount(parseMountTable(mountTable), realPath);
  if (!mount || !isNetworkFsType(mount.fsType)) return null;
  return `it is on a ${mount.fsType} file system, where SQLite's WAL is unsafe (shared memory and locks are not reliable); use a local disk (or set ${ALLOW_NETWORK_FS_ENV}=1 if every process using it runs on this one machine)`;
}

/** Options for {@link assertLocalFileSystem}; the defaults read the real system. */
export interface FsCheckOptions {
  /** The mount table's text, or null when it cannot be read. @default reads /proc through `cat` */
  readMountTable?: () => string | null;
  /** `QUEUECTL_ALLOW_NETWORK_FS`; `1` (or `true`, `yes`) skips the check. @default the environment variable */
  allow?: string | undefined;
}

/**
 * Throws when the database file `path` is on a network or shared-folder file system (see
 * the module doc). Symlinks are resolved first: it is the real location that counts.
 * Where the mount table cannot be read (no /proc, not Linux) it lets the open go ahead.
 *
 * @throws {OperationalError} `cannot open database PATH: it is on a nfs file system, …`
 */
export function assertLocalFileSystem(path: string, options: FsCheckOptions = {}): void {
  const allow = "allow" in options ? options.allow : envAllow();
  if (/^(1|true|yes)$/i.test(allow ?? "")) return;
  const real = realPath(path);
  if (real === null) return;
  const table = (options.readMountTable ?? readMountTable)();
  if (table === null) return;
  const problem = networkFsProblem(real, table);
  if (problem) throw new OperationalError(`cannot open database ${path}: ${problem}`);
}

function envAllow(): string | undefined {
  try {
    return Deno.env.get(ALLOW_NETWORK_FS_ENV);
  } catch {
    return undefined; // no --allow-env: check
  }
}

/** The file's real path, or its folder's real path plus its name if the file is missing. */
function realPath(path: string): string | null {
  try {
    return Deno.realPathSync(path);
  } catch { /* not there yet, or a dangling link: resolve the folder */ }
  const slash = path.lastIndexOf("/");
  const dir = slash === -1 ? "." : slash === 0 ? "/" : path.slice(0, slash);
  try {
    const realDir = Deno.realPathSync(dir);
    return `${realDir === "/" ? "" : realDir}/${path.slice(slash + 1)}`;
  } catch {
    return null; // SQLite will report the missing folder better than we can
  }
}

/**
 * The mount table through a child process: Deno refuses any /proc read without
 * `--allow-all`, even with `--allow-read`, but a child may read it. `cat` shares our mount
 * namespace, so its `/proc/self/mountinfo` is ours. `cat` is run directly, not through
 * `sh -c`: one exec instead of two. Null when there is none (not Linux) or no `cat`.
 */
function readMountTable(): string | null {
  for (const path of ["/proc/self/mountinfo", "/proc/mounts"]) {
    try {
      const out = new Deno.Command("cat", { args: [path], stdin: "null", stderr: "null" })
        .outputSync();
      const text = new TextDecoder().decode(out.stdout);
      if (out.success && text.trim() !== "") return text;
    } catch { /* no cat: try the next, then give up */ }
  }
  return null;
}

/**
 * Why files cannot be written in `dir`, found by trying: the operating system's words in
 * lower case, e.g. `no space left on device`, `read-only file system`, `permission denied`;
 * null when a probe write succeeds. SQLite reports these as "disk I/O error" or "unable to
 * open database file"; this names the cause. Called only after such an error.
 */
export function writeProblem(dir: string): string | null {
  const probe = `${dir}/.queuectl-probe-${Deno.pid}-${crypto.randomUUID().slice(0, 8)}`;
  let file: Deno.FsFile;
  try {
    file = Deno.openSync(probe, { write: true, createNew: true, mode: 0o600 });
  } catch (e) {
    return osReason(e);
  }
  try {
    // 32 KiB: what SQLite's shared-memory file needs first, so a nearly full disk fails too.
    const block = new Uint8Array(32 * 1024);
    for (let n = 0; n < block.length;) n += file.writeSync(block.subarray(n));
    file.syncSync();
    return null;
  } catch (e) {
    return osReason(e);
  } finally {
    file.close();
    try {
      Deno.removeSync(probe);
    } catch { /* nothing to clean */ }
  }
}

/** `No space left on device (os error 28): open '/x'` → `no space left on device`. */
function osReason(e: unknown): string {
  const text = ((e as Error)?.message ?? String(e)).replace(/ \(os error \d+\).*$/s, "").trim();
  return text.charAt(0).toLowerCase() + text.slice(1);
}
