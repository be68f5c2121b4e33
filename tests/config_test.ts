import assert from "node:assert/strict";
import { join } from "node:path";
import {
  CONFIG_KEYS,
  DEFAULT_CONFIG,
  loadConfig,
  parseConfigValue,
  setConfigValue,
} from "../src/config.ts";
import { ConfigError, OperationalError } from "../src/errors.ts";
import { cleanup, tempHome } from "./helpers.ts";

Deno.test("config: values parse by kind", () => {
  assert.equal(parseConfigValue("max-retries", "5"), 5);
  assert.equal(parseConfigValue("backoff-base", "1.5"), 1.5);
  assert.equal(parseConfigValue("backoff-jitter", "0.25"), 0.25);
  assert.equal(parseConfigValue("job-timeout", "none"), null);
  assert.equal(parseConfigValue("job-timeout", "30"), 30);
  assert.equal(parseConfigValue("output-limit", "10M"), 10 * 1024 * 1024);
  assert.equal(parseConfigValue("output-limit", "512k"), 512 * 1024);
  assert.equal(parseConfigValue("output-limit", "1GiB"), 1024 ** 3);
  assert.equal(parseConfigValue("lease", 45), 45);
});

Deno.test("config: bad values and keys are refused with what is expected", () => {
  assert.throws(
    () => parseConfigValue("max-retries", "banana"),
    (e: Error) =>
      e instanceof ConfigError &&
      e.message === `cannot set "max-retries": expected an integer from 0 to 1000, got "banana"`,
  );
  for (
    const [key, value] of [
      ["max-retries", "-1"],
      ["max-retries", "1.5"],
      ["backoff-base", "0.5"],
      ["backoff-jitter", "2"],
      ["lease", "0"],
      ["poll-interval", ""],
      ["output-limit", "lots"],
      ["job-timeout", "-3"],
      ["max-retries", "1e400"],
    ]
  ) {
    assert.throws(() => parseConfigValue(key, value), ConfigError, `${key}=${value}`);
  }
  assert.throws(
    () => parseConfigValue("colour", "1"),
    (e: Error) =>
      e instanceof ConfigError && /unknown key \(valid: max-retries, backoff-base/.test(e.message),
  );
  assert.throws(() => parseConfigValue("__proto__", "1"), ConfigError);
});

Deno.test("config: set is persisted atomically, private, and read back", async () => {
  const home = await tempHome();
  try {
    assert.deepEqual(loadConfig(home), DEFAULT_CONFIG);
    setConfigValue(home, "max-retries", "7");
    setConfigValue(home, "job-timeout", "12.5");
    const config = loadConfig(home);
    assert.equal(config.maxRetries, 7);
    assert.equal(config.jobTimeoutS, 12.5);
    assert.equal(config.backoffBase, DEFAULT_CONFIG.backoffBase);
    assert.equal(Deno.statSync(join(home, "config.json")).mode! & 0o777, 0o600);
    const leftovers = [...Deno.readDirSync(home)].filter((e) => e.name.endsWith(".tmp"));
    assert.deepEqual(leftovers, []);
    assert.throws(() => setConfigValue(home, "max-retries", "x"), ConfigError);
    assert.equal(loadConfig(home).maxRetries, 7, "a refused value changes nothing");
  } finally {
    await cleanup(home);
  }
});

Deno.test("config: a corrupt config.json is an operational error naming the file", async () => {
  const home = await tempHome();
  try {
    Deno.writeTextFileSync(join(home, "config.json"), "{nope");
    assert.throws(
      () => loadConfig(home),
      (e: Error) => e instanceof OperationalError && /config.json/.test(e.message),
    );
    Deno.writeTextFileSync(join(home, "config.json"), `{"lease": -1}`);
    assert.throws(() => loadConfig(home), OperationalError);
  } finally {
    await cleanup(home);
  }
});

Deno.test("config: every key has a default", () => {
  for (const spec of Object.values(CONFIG_KEYS)) assert.ok(spec.field in DEFAULT_CONFIG);
});
