/**
 * Path joining for the CLI's hot path. `node:path` would do, but the first `node:` module
 * other than `node:sqlite` costs about 12 ms of start-up (measured: docs/performance.md), a
 * sixth of a bare `deno run`, on every one-shot command. queuectl runs on POSIX systems only.
 *
 * @module
 */

/** Joins POSIX path segments with single slashes (no normalisation of `.` or `..`). */
export function joinPath(...parts: string[]): string {
  let out = "";
  for (const part of parts) {
    if (part === "") continue;
    if (out === "") out = part;
    else out = `${out.replace(/\/+$/, "")}/${part.replace(/^\/+/, "")}`;
  }
  return out;
}

/** The folder part of a path (`/a/b/c.log` → `/a/b`). */
export function dirPath(path: string): string {
  const i = path.lastIndexOf("/");
  return i <= 0 ? (i === 0 ? "/" : ".") : path.slice(0, i);
}
