/**
 * The data directory: where it is, and creating it private.
 *
 * @module
 */

import { joinPath as join } from "./paths.ts";
import { OperationalError } from "./errors.ts";

/**
 * The data directory: `flag`, else `$QUEUECTL_HOME`, else `$XDG_DATA_HOME/queuectl`, else
 * `~/.local/share/queuectl`.
 */
export function resolveHome(flag?: string): string {
  if (flag) return flag;
  const env = Deno.env.get("QUEUECTL_HOME");
  if (env) return env;
  const xdg = Deno.env.get("XDG_DATA_HOME");
  if (xdg) return join(xdg, "queuectl");
  const home = Deno.env.get("HOME");
  if (!home) {
    throw new OperationalError(
      "cannot find the data directory: set --home, QUEUECTL_HOME or HOME",
    );
  }
  return join(home, ".local", "share", "queuectl");
}

/** Creates the data directory (mode 0700) and its output folder if missing. */
export function ensureHome(home: string): void {
  try {
    Deno.mkdirSync(home, { recursive: true, mode: 0o700 });
  } catch (e) {
    if (!(e instanceof Deno.errors.AlreadyExists)) {
      throw new OperationalError(`cannot create data directory ${home}: ${(e as Error).message}`);
    }
  }
  try {
    // mkdir's mode passes through the umask and skips existing folders: set it outright,
    // but only where allowed (another user's folder is used as it is).
    const info = Deno.statSync(home);
    if (!info.isDirectory) {
      throw new OperationalError(`cannot use data directory ${home}: it is not a directory`);
    }
    if ((info.mode! & 0o777) !== 0o700) {
      try {
        Deno.chmodSync(home, 0o700);
      } catch (e) {
        // EPERM: another user's folder, which we use as it is.
        if (!(e instanceof Deno.errors.PermissionDenied)) throw e;
      }
    }
  } catch (e) {
    if (e instanceof OperationalError) throw e;
    throw new OperationalError(`cannot use data directory ${home}: ${(e as Error).message}`);
  }
}

/** The per-attempt output file, relative to the data directory. */
export function outputRelPath(jobId: string, attempt: number, startedMs: number): string {
  const day = new Date(startedMs).toISOString().slice(0, 10);
  return join("output", day, `${jobId}.${attempt}.log`);
}
