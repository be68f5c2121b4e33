import assert from "node:assert/strict";
import { parseArgs } from "node:util";
import { parseArgv } from "../src/commands/argv.ts";

const OPTIONS = {
  home: { type: "string" },
  json: { type: "boolean" },
  count: { type: "string", short: "c" },
  detach: { type: "boolean", short: "d" },
} as const;

Deno.test("parseArgv agrees with node:util parseArgs where both accept", () => {
  const cases = [
    [],
    ["start"],
    ["start", "--count", "3", "--detach"],
    ["--count=4", "-d", "x", "y"],
    ["-c", "2", "--json", "--home", "/tmp/a b"],
    ["-c5"],
    ["a", "--", "--json", "-d"],
    ["--home="],
    ["-"],
  ];
  for (const args of cases) {
    const node = parseArgs({ args, options: OPTIONS, allowPositionals: true, strict: true });
    const ours = parseArgv(args, { options: OPTIONS, allowPositionals: true });
    assert.deepEqual(
      { values: { ...ours.values }, positionals: ours.positionals },
      { values: { ...node.values }, positionals: node.positionals },
      args.join(" "),
    );
  }
});

Deno.test("parseArgv refuses what parseArgs refuses", () => {
  const cases = [
    ["--bogus"],
    ["-x"],
    ["--count"],
    ["--json=yes"],
    ["--count", "--json"],
  ];
  for (const args of cases) {
    assert.throws(() =>
      parseArgs({ args, options: OPTIONS, allowPositionals: true, strict: true })
    );
    assert.throws(
      () => parseArgv(args, { options: OPTIONS, allowPositionals: true }),
      args.join(" "),
    );
  }
  assert.throws(
    () => parseArgv(["pos"], { options: OPTIONS, allowPositionals: false }),
    /Unexpected/,
  );
  assert.throws(
    () => parseArgv(["--bogus"], { options: OPTIONS, allowPositionals: true }),
    /Unknown option '--bogus'/,
  );
});

Deno.test("parseArgv takes negative numbers as values", () => {
  const { values } = parseArgv(["--count", "-3"], { options: OPTIONS, allowPositionals: true });
  assert.equal(values.count, "-3");
});
