/**
 * Choosing a store from a URL or a path.
 *
 * @module
 */

import { joinPath as join } from "../paths.ts";
import { UsageError } from "../errors.ts";
import type { Store } from "./store.ts";
import type { Durability } from "./sqlite/db.ts";

/** The schemes `--db` accepts. */
export const STORE_SCHEMES = ["sqlite:", "file:"] as const;

/** Options for {@link openStore}. */
export interface StoreOptions {
  /** A URL or path (`--db` / `$QUEUECTL_DB`); null means the data directory's SQLite file. */
  url: string | null;
  home: string;
  durability?: Durability;
}

/** The default database file of a data directory. */
export function defaultDbPath(home: string): string {
  return join(home, "queue.db");
}

/**
 * Opens the store named by `url`. Backends load with a dynamic `import()` so a user of
 * one never pays start-up time for another's client.
 */
export async function openStore(options: StoreOptions): Promise<Store> {
  const { url, home } = options;
  let path: string;
  if (url === null || url === "") {
    path = defaultDbPath(home);
  } else if (/^[a-z][a-z0-9+.-]*:\/\//i.test(url) || /^[a-z][a-z0-9+.-]+:/i.test(url)) {
    const scheme = url.slice(0, url.indexOf(":") + 1).toLowerCase();
    if (scheme !== "sqlite:" && scheme !== "file:") {
      throw new UsageError(
        `cannot open store ${JSON.stringify(url)}: unknown scheme ${
          JSON.stringify(scheme)
        } (valid: ${STORE_SCHEMES.join(", ")} or a file path; postgres: is planned)`,
      );
    }
    path = decodeURIComponent(url.slice(scheme.length).replace(/^\/\//, ""));
    if (path === "") throw new UsageError(`cannot open store ${JSON.stringify(url)}: no path`);
  } else {
    path = url;
  }
  const { openSqliteStore } = await import("./sqlite/sqlite_store.ts");
  return openSqliteStore(path, { durability: options.durability });
}
