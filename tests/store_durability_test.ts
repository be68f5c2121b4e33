/**
 * The `durability` option of the library (openQueue → openStore → Db): `full`, the
 * default, fsyncs the WAL at every commit (`PRAGMA synchronous = FULL`, 2); `normal` only at
 * checkpoints (NORMAL, 1). synchronous is per connection, so it is read back on the very
 * connection the queue writes through.
 */

import assert from "node:assert/strict";
import { cleanup, tempHome } from "./helpers.ts";
import { openQueue, type Queue } from "../src/queue.ts";
import type { SqliteStore } from "../src/store/sqlite/sqlite_store.ts";

function synchronous(queue: Queue): number {
  const raw = (queue.store as SqliteStore).db.raw;
  return Number((raw.prepare("PRAGMA synchronous").get() as { synchronous: number }).synchronous);
}

Deno.test("durability: openQueue commits with synchronous FULL by default and NORMAL with 'normal'", async () => {
  const home = await tempHome("queuectl-durability-");
  try {
    for (
      const [durability, expected] of [
        [undefined, 2],
        ["full", 2],
        ["normal", 1],
        [undefined, 2], // not stored in the file: each connection sets its own
      ] as const
    ) {
      const queue = await openQueue({ home, db: null, durability });
      try {
        assert.equal(queue.store.kind, "sqlite");
        assert.equal(synchronous(queue), expected, `durability ${durability ?? "(default)"}`);
        // The connection works as set: a commit goes through.
        const [id] = await queue.enqueue([{ command: "true" }]);
        assert.equal((await queue.store.getJob(id))?.state, "pending");
      } finally {
        queue.close();
      }
    }
  } finally {
    await cleanup(home);
  }
});
