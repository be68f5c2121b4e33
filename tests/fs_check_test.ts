/**
 * The network file system check: parsing the mount table, finding the mount that holds a
 * path, the refusal and its override, and (where bindfs can make a real FUSE mount) the
 * CLI refusing to create a database there.
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import {
  assertLocalFileSystem,
  findMount,
  isNetworkFsType,
  type MountEntry,
  networkFsProblem,
  parseMountInfo,
  parseMountTable,
  parseProcMounts,
  unescapeMountField,
} from "../src/store/fs_check.ts";
import { OperationalError } from "../src/errors.ts";
import { cleanup, needs, runCli, tempHome } from "./helpers.ts";

/** A mountinfo of a machine with nested, escaped, bind, stacked and network mounts. */
const MOUNTINFO = [
  "22 1 254:1 / / rw,relatime shared:1 - ext4 /dev/vda1 rw",
  "23 22 0:21 / /proc rw,nosuid,nodev,noexec,relatime shared:2 - proc proc rw",
  "30 22 0:40 / /srv/nfs rw,relatime shared:10 - nfs4 fileserver:/export rw,vers=4.2",
  // a local disk mounted inside the NFS tree: deeper, so it wins for paths below it
  "31 30 254:2 / /srv/nfs/local rw,relatime shared:11 - xfs /dev/vdb1 rw",
  // a mount point with a space, a tab and a backslash, escaped as the kernel does
  "32 22 0:41 / /mnt/my\\040share\\011x\\134y rw,relatime - cifs //nas/share rw",
  // a bind mount of a folder of the NFS export: the type is the NFS one
  "33 22 0:40 /export/sub /data rw,relatime shared:10 - nfs4 fileserver:/export rw",
  // an optional-fields-free line and a multi-field one
  "34 22 0:42 / /media/sshfs rw,nosuid,nodev - fuse.sshfs me@host:/ rw,user_id=0",
  "35 22 0:43 / /home/u/.cache rw,relatime shared:20 master:3 propagation_from:4 - tmpfs tmpfs rw",
  // stacked: /stack first a 9p share, then a tmpfs mounted on top of it (parent 36)
  "36 22 0:44 / /stack rw,relatime - 9p hostshare rw,trans=virtio",
  "37 36 0:45 / /stack rw,relatime - tmpfs tmpfs rw",
  "38 22 0:46 / /mnt/vfs rw,relatime - virtiofs myfs rw",
  "",
].join("\n");

const mounts = parseMountInfo(MOUNTINFO);
const at = (path: string) => findMount(mounts, path)?.fsType ?? null;

Deno.test("fs check: mountinfo lines parse, escapes undone", () => {
  assert.equal(mounts.length, 11);
  assert.deepEqual(mounts[0], {
    id: 22,
    parentId: 1,
    mountPoint: "/",
    fsType: "ext4",
    source: "/dev/vda1",
  });
  assert.equal(mounts[4].mountPoint, "/mnt/my share\tx\\y");
  assert.equal(mounts[4].source, "//nas/share");
  assert.equal(mounts[7].fsType, "tmpfs", "several optional fields before the '-'");
  assert.equal(unescapeMountField("a\\040b\\012c"), "a b\nc");
  assert.deepEqual(parseMountInfo("garbage\n\n1 2 3\n"), [], "malformed lines are skipped");
});

Deno.test("fs check: the longest mount point that is a whole-component prefix wins", () => {
  assert.equal(at("/var/lib/queuectl/queue.db"), "ext4");
  assert.equal(at("/srv/nfs/q/queue.db"), "nfs4");
  assert.equal(at("/srv/nfs"), "nfs4", "the mount point itself");
  assert.equal(at("/srv/nfs/local/queue.db"), "xfs", "a local disk nested in NFS");
  assert.equal(at("/srv/nfsx/queue.db"), "ext4", "/srv/nfs does not hold /srv/nfsx");
  assert.equal(at("/srv/nfs/localx/queue.db"), "nfs4");
  assert.equal(at("/mnt/my share\tx\\y/queue.db"), "cifs", "escaped mount point");
  assert.equal(at("/mnt/my/queue.db"), "ext4");
  assert.equal(at("/data/queue.db"), "nfs4", "a bind mount keeps the source's type");
  assert.equal(at("/media/sshfs/q.db"), "fuse.sshfs");
  assert.equal(at("/stack/queue.db"), "tmpfs", "the top of a stack of mounts is visible");
  assert.equal(findMount([], "/x"), null);
});

Deno.test("fs check: stacked mounts without ids: the last one wins", () => {
  const table = "hostshare /stack 9p rw 0 0\ntmpfs /stack tmpfs rw 0 0\n";
  assert.equal(findMount(parseProcMounts(table), "/stack/q.db")?.fsType, "tmpfs");
  const reversed = "tmpfs /stack tmpfs rw 0 0\nhostshare /stack 9p rw 0 0\n";
  assert.equal(findMount(parseProcMounts(reversed), "/stack/q.db")?.fsType, "9p");
  // With ids the parent link decides, whatever the order.
  const swapped: MountEntry[] = [mounts[9], mounts[8]];
  assert.equal(findMount(swapped, "/stack/q.db")?.fsType, "tmpfs");
});

Deno.test("fs check: /proc/mounts parses too, and the format is told apart", () => {
  const procMounts = [
    "/dev/vda1 / ext4 rw,relatime 0 0",
    "server:/export /mnt/nfs\\040share nfs rw,vers=3 0 0",
    "",
  ].join("\n");
  const parsed = parseProcMounts(procMounts);
  assert.equal(parsed.length, 2);
  assert.equal(parsed[1].mountPoint, "/mnt/nfs share");
  assert.equal(parseMountTable(procMounts)[1].fsType, "nfs");
  assert.equal(parseMountTable(MOUNTINFO).length, 11);
  assert.equal(findMount(parseMountTable(procMounts), "/mnt/nfs share/q.db")?.fsType, "nfs");
});

Deno.test("fs check: network and shared-folder types are refused, local ones are not", () => {
  for (const t of ["nfs", "nfs4", "cifs", "smb3", "smbfs", "9p", "virtiofs", "fuse"]) {
    assert.ok(isNetworkFsType(t), t);
  }
  for (const t of ["fuseblk", "fuse.sshfs", "fuse.gcsfuse", "fuse.rclone", "NFS4"]) {
    assert.ok(isNetworkFsType(t), t);
  }
  for (const t of ["ext4", "xfs", "btrfs", "zfs", "tmpfs", "overlay", "f2fs", "fusectl", "nfsd"]) {
    assert.ok(!isNetworkFsType(t), t);
  }
});

Deno.test("fs check: the message names the type, the danger, the remedy and the override", () => {
  assert.equal(networkFsProblem("/home/u/q.db", MOUNTINFO), null);
  assert.equal(
    networkFsProblem("/srv/nfs/q/queue.db", MOUNTINFO),
    "it is on a nfs4 file system, where SQLite's WAL is unsafe (shared memory and locks are not reliable); use a local disk (or set QUEUECTL_ALLOW_NETWORK_FS=1 if every process using it runs on this one machine)",
  );
  const dir = Deno.realPathSync(Deno.makeTempDirSync({ prefix: "queuectl-fscheck-" }));
  try {
    const table = `1 0 0:1 / / rw - ext4 x rw\n2 1 0:2 / ${dir} rw - nfs s:/e rw\n`;
    assert.throws(
      () =>
        assertLocalFileSystem(`${dir}/queue.db`, { readMountTable: () => table, allow: undefined }),
      (e: unknown) =>
        e instanceof OperationalError &&
        e.message ===
          `cannot open database ${dir}/queue.db: it is on a nfs file system, where SQLite's WAL is unsafe (shared memory and locks are not reliable); use a local disk (or set QUEUECTL_ALLOW_NETWORK_FS=1 if every process using it runs on this one machine)`,
    );
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});

Deno.test("fs check: symlinks are resolved; the override and an unreadable table let it pass", async () => {
  const dir = await tempHome("queuectl-fscheck-");
  try {
    const real = Deno.realPathSync(dir);
    const link = join(real, "link");
    Deno.symlinkSync(join(real, "target"), link);
    Deno.mkdirSync(join(real, "target"));
    // The table says only the symlink's target folder is on NFS.
    const table = `1 0 0:1 / / rw - ext4 x rw\n2 1 0:2 / ${
      join(real, "target")
    } rw - nfs s:/e rw\n`;
    const check = (path: string, allow?: string) =>
      assertLocalFileSystem(path, { readMountTable: () => table, allow });
    assert.throws(() => check(join(link, "queue.db")), /nfs file system/, "missing file");
    Deno.writeTextFileSync(join(real, "target", "queue.db"), "");
    assert.throws(() => check(join(link, "queue.db")), /nfs file system/, "existing file");
    // A database file that is itself a symlink into the NFS folder.
    Deno.symlinkSync(join(real, "target", "queue.db"), join(real, "db-link"));
    assert.throws(() => check(join(real, "db-link")), /nfs file system/, "linked file");
    check(join(real, "queue.db"));
    for (const allow of ["1", "true", "YES"]) check(join(link, "queue.db"), allow);
    for (const allow of ["0", "", "no"]) assert.throws(() => check(join(link, "q.db"), allow));
    assertLocalFileSystem(join(link, "queue.db"), { readMountTable: () => null, allow: "" });
    // A folder that does not exist: nothing to say, SQLite reports it.
    assertLocalFileSystem("/nonexistent-dir/queue.db", { readMountTable: () => table });
  } finally {
    await cleanup(dir);
  }
});

Deno.test("fs check: the real mount table is read (through cat) and this temp dir passes", async () => {
  const dir = await tempHome("queuectl-fscheck-");
  try {
    assertLocalFileSystem(join(dir, "queue.db"), { allow: "" });
    // The real table parses and names a mount for it.
    const text = new TextDecoder().decode(
      new Deno.Command("sh", { args: ["-c", "cat /proc/self/mountinfo"] }).outputSync().stdout,
    );
    const mount = findMount(parseMountTable(text), Deno.realPathSync(dir));
    assert.ok(mount, "a mount holds the temp dir");
    assert.ok(!isNetworkFsType(mount.fsType), `the temp dir is on ${mount.fsType}`);
  } finally {
    await cleanup(dir);
  }
});

const BINDFS = (() => {
  try {
    return Deno.uid() === 0 &&
      new Deno.Command("sh", { args: ["-c", "command -v bindfs && test -c /dev/fuse"] })
          .outputSync().code === 0;
  } catch {
    return false;
  }
})();

Deno.test({
  name: "fs check e2e: the CLI refuses to create a database on a FUSE mount (bindfs)",
  // bindfs makes a real FUSE mount without a server; it needs root and /dev/fuse.
  ...needs("root, bindfs and /dev/fuse (a real FUSE mount)", BINDFS, async () => {
    const dir = await tempHome("queuectl-fuse-");
    const source = join(dir, "source");
    const mnt = join(dir, "mnt");
    Deno.mkdirSync(source);
    Deno.mkdirSync(mnt);
    const sh = (script: string) =>
      new Deno.Command("sh", { args: ["-c", script, "sh", source, mnt] }).outputSync();
    const mounted = sh('bindfs "$1" "$2"');
    assert.equal(mounted.code, 0, new TextDecoder().decode(mounted.stderr));
    try {
      const home = join(mnt, "home");
      const r = await runCli(home, ["enqueue", "--", "echo", "hi"]);
      assert.equal(r.code, 1, r.stderr);
      assert.equal(r.stdout, "");
      assert.equal(
        r.stderr,
        `queuectl: cannot open database ${home}/queue.db: it is on a fuse file system, where SQLite's WAL is unsafe (shared memory and locks are not reliable); use a local disk (or set QUEUECTL_ALLOW_NETWORK_FS=1 if every process using it runs on this one machine)\n`,
      );
      assert.ok(!Deno.statSync(home).isFile && ![...Deno.readDirSync(home)].length, "no file left");
      // Through a symlink from a local disk: the real path counts.
      const link = join(dir, "link");
      Deno.symlinkSync(home, link);
      const viaLink = await runCli(link, ["status"]);
      assert.equal(viaLink.code, 1);
      assert.match(viaLink.stderr, /fuse file system/);
      // The override lets it through; the database works.
      const env = { QUEUECTL_ALLOW_NETWORK_FS: "1" };
      const ok = await runCli(home, ["enqueue", "--id", "j1", "--", "echo", "hi"], { env });
      assert.equal(ok.code, 0, ok.stderr);
      assert.equal(ok.stdout, "j1\n");
    } finally {
      sh('fusermount -u "$2" 2>/dev/null || umount "$2" || umount -l "$2"');
      await cleanup(dir);
    }
  }),
});
