import assert from "node:assert/strict";
import { nextRunAt, retryDelayMs } from "../src/backoff.ts";

const DEFAULTS = { base: 2, maxS: 3600, jitter: 0 };

Deno.test("backoff: base^attempt seconds with the default schedule", () => {
  assert.deepEqual([1, 2, 3, 4, 10, 11].map((n) => retryDelayMs(n, DEFAULTS)), [
    2000,
    4000,
    8000,
    16000,
    1024000,
    2048000,
  ]);
});

Deno.test("backoff: capped at maxS, also for huge attempts", () => {
  assert.equal(retryDelayMs(12, DEFAULTS), 3_600_000);
  assert.equal(retryDelayMs(5000, DEFAULTS), 3_600_000);
  assert.equal(retryDelayMs(3, { base: 10, maxS: 60, jitter: 0 }), 60_000);
});

Deno.test("backoff: jitter spreads by at most the fraction, using the injected random", () => {
  const opts = (r: number) => ({ ...DEFAULTS, jitter: 0.5, random: () => r });
  assert.equal(retryDelayMs(3, opts(0)), 4000); // 8 s - 50%
  assert.equal(retryDelayMs(3, opts(0.5)), 8000);
  assert.equal(retryDelayMs(3, opts(0.999999)), 12000);
});

Deno.test("nextRunAt: adds the delay to the injected now", () => {
  assert.equal(nextRunAt(1_000_000, 2, DEFAULTS), 1_004_000);
});
