import assert from "node:assert/strict";
import { join } from "node:path";
import { dirPath, joinPath } from "../src/paths.ts";

Deno.test("joinPath matches node:path for the joins queuectl makes", () => {
  const cases = [
    ["/home/u/.local/share", "queuectl"],
    ["/data/", "queue.db"],
    ["rel", "output", "2026-11-28", "a.1.log"],
    ["/x", "/abs"],
    ["/", "wake"],
  ];
  for (const c of cases) assert.equal(joinPath(...c), join(...c), c.join(" + "));
});

Deno.test("dirPath", () => {
  assert.equal(dirPath("/a/b/c.log"), "/a/b");
  assert.equal(dirPath("/c.log"), "/");
  assert.equal(dirPath("c.log"), ".");
});
