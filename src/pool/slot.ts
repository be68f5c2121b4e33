/**
 * The execution thread: one Web Worker that runs the attempts of all of a pool's slots,
 * each slot one attempt at a time.
 *
 * Why a separate thread: node:sqlite is synchronous, so while the pool's main thread
 * waits on a busy database it cannot pump pipes or fire timers. Here the jobs' output keeps
 * streaming to their files and their timeouts keep ticking whatever the store is doing.
 *
 * Why one thread for all slots, not one each: an attempt is asynchronous (spawn, pipes,
 * timers), so one event loop runs many at once, and every thread is a V8 isolate whose heap
 * grows with the garbage it makes. One isolate per slot cost ~8 MB each when idle and let a
 * 4-slot worker grow to ~200 MB over 20,000 jobs; one for all keeps a worker near its idle
 * size (docs/performance.md, memory).
 *
 * Protocol (main → thread): `{ type: "run", slot, spec }`, `{ type: "abort", slot, reason }`.
 * (thread → main): `{ type: "spawned", slot, pid, startTicks }`, `{ type: "done", slot, result }`.
 *
 * @module
 */

/// <reference lib="deno.worker" />

import { type AttemptResult, type AttemptSpec, notRun, runAttempt } from "./executor.ts";

/** A message from the pool to the execution thread. */
export type SlotRequest =
  | { type: "run"; slot: number; spec: AttemptSpec }
  | { type: "abort"; slot: number; reason: string };

/** A message from the execution thread to the pool. */
export type SlotReport =
  | { type: "spawned"; slot: number; pid: number; startTicks: number | null }
  | { type: "done"; slot: number; result: AttemptResult };

const running = new Map<number, AbortController>();

function report(message: SlotReport): void {
  self.postMessage(message);
}

self.onmessage = async (event: MessageEvent<SlotRequest>) => {
  const message = event.data;
  const { slot } = message;
  if (message.type === "abort") {
    running.get(slot)?.abort(message.reason);
    return;
  }
  const controller = new AbortController();
  running.set(slot, controller);
  try {
    const result = await runAttempt(message.spec, {
      signal: controller.signal,
      onSpawn: ({ pid, startTicks }) => report({ type: "spawned", slot, pid, startTicks }),
    });
    report({ type: "done", slot, result });
  } catch (e) {
    // runAttempt reports failures as outcomes; reaching here is a bug, still not a hang.
    const text = String((e as Error)?.message ?? e);
    report({ type: "done", slot, result: notRun(text, `internal error: ${text}`) });
  } finally {
    if (running.get(slot) === controller) running.delete(slot);
  }
};
