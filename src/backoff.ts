/**
 * Retry scheduling, as a pure function of the clock it is given.
 *
 * @module
 */

/** What shapes the retry delay. */
export interface BackoffOptions {
  /** @default 2 */
  base: number;
  /** Cap on one delay, seconds. @default 3600 */
  maxS: number;
  /** Fraction of the delay to add or take away at random, 0..1. @default 0 */
  jitter: number;
  /** A number in [0, 1); injected so tests are exact. @default Math.random */
  random?: () => number;
}

/**
 * The delay after failed attempt `attempt` (1, 2, …): `base ^ attempt` seconds, capped at
 * `maxS`, then moved by up to ±`jitter` of itself.
 *
 * Worked schedule with the defaults (base 2, cap 3600 s, no jitter): attempt 1 waits 2 s,
 * 2 waits 4 s, 3 waits 8 s, … 11 waits 2048 s, 12 and later wait 3600 s.
 */
export function retryDelayMs(attempt: number, options: BackoffOptions): number {
  const exponent = Math.max(1, attempt);
  const raw = Math.min(options.base ** exponent, options.maxS);
  const capped = Number.isFinite(raw) ? raw : options.maxS;
  const spread = options.jitter > 0
    ? (2 * (options.random ?? Math.random)() - 1) * options.jitter
    : 0;
  return Math.max(0, Math.round(capped * (1 + spread) * 1000));
}

/** When a job whose attempt `attempt` failed at `now` (ms) may run again (ms). */
export function nextRunAt(now: number, attempt: number, options: BackoffOptions): number {
  return now + retryDelayMs(attempt, options);
}
