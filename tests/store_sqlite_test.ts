import assert from "node:assert/strict";
import { DatabaseSync } from "node:sqlite";
import { join } from "node:path";
import { claimStatement, openSqliteStore } from "../src/store/sqlite/sqlite_store.ts";
import { openStore } from "../src/store/open.ts";
import { UsageError } from "../src/errors.ts";
import { storeConformance } from "./store_conformance.ts";
import { cleanup, tempHome } from "./helpers.ts";

storeConformance("sqlite", async () => {
  const dir = await tempHome();
  return { store: openSqliteStore(join(dir, "queue.db")), dispose: () => cleanup(dir) };
});

Deno.test("sqlite: WAL, busy timeout, full sync, private file", async () => {
  const dir = await tempHome();
  try {
    const path = join(dir, "queue.db");
    const store = openSqliteStore(path);
    const pragma = (name: string) =>
      Object.values(store.db.raw.prepare(`PRAGMA ${name}`).get() as object)[0];
    assert.equal(pragma("journal_mode"), "wal");
    assert.equal(pragma("busy_timeout"), 5000);
    assert.equal(pragma("synchronous"), 2, "FULL");
    assert.equal(pragma("foreign_keys"), 1);
    store.close();
    assert.equal(Deno.statSync(path).mode! & 0o777, 0o600);
  } finally {
    await cleanup(dir);
  }
});

Deno.test("sqlite: two processes migrating one new file at once both succeed", async () => {
  const dir = await tempHome();
  try {
    const path = join(dir, "queue.db");
    const code = `import { openSqliteStore } from ${
      JSON.stringify(new URL("../src/store/sqlite/sqlite_store.ts", import.meta.url).href)
    }; openSqliteStore(${JSON.stringify(path)}).close();`;
    const runs = Array.from({ length: 4 }, () =>
      new Deno.Command(Deno.execPath(), {
        args: ["eval", code],
        stdout: "null",
        stderr: "piped",
      }).output());
    for (const r of await Promise.all(runs)) {
      assert.equal(r.code, 0, new TextDecoder().decode(r.stderr));
    }
    const db = new DatabaseSync(path);
    const rows = db.prepare("SELECT version FROM schema_migrations ORDER BY version").all();
    db.close();
    const files = [...Deno.readDirSync(new URL("../src/store/migrations/sqlite/", import.meta.url))]
      .filter((e) => e.name.endsWith(".sql"));
    assert.ok(files.length >= 3);
    assert.deepEqual(
      rows.map((r) => r.version),
      files.map((_, i) => i + 1),
      "each migration applied once",
    );
  } finally {
    await cleanup(dir);
  }
});

Deno.test("sqlite: the state CHECK refuses unknown states", async () => {
  const dir = await tempHome();
  try {
    const store = openSqliteStore(join(dir, "queue.db"));
    assert.throws(() =>
      store.db.raw.exec(
        "INSERT INTO jobs (id, command, state, max_retries, run_at, created_at, updated_at) VALUES ('x', 'true', 'bogus', 0, 0, 0, 0)",
      ), /CHECK constraint failed/);
    store.close();
  } finally {
    await cleanup(dir);
  }
});

Deno.test("sqlite: the claim uses the partial ready index", async () => {
  const dir = await tempHome();
  try {
    const store = openSqliteStore(join(dir, "queue.db"));
    const plan = [0, 2].flatMap((queues) =>
      store.db.raw.prepare(`EXPLAIN QUERY PLAN ${claimStatement(queues)}`).all()
    ).map((r) => String((r as { detail: string }).detail)).join("\n");
    store.close();
    assert.match(plan, /jobs_ready/);
    assert.doesNotMatch(plan, /TEMP B-TREE/, "no sort step");
  } finally {
    await cleanup(dir);
  }
});

Deno.test("openStore: unknown scheme lists the valid ones", async () => {
  await assert.rejects(
    openStore({ url: "redis://localhost", home: "/nonexistent" }),
    (e: Error) => e instanceof UsageError && /unknown scheme "redis:".*sqlite:/.test(e.message),
  );
});
