/**
 * One execution slot: a Web Worker that runs one attempt at a time.
 *
 * Why a separate thread: node:sqlite is synchronous, so while the pool's main thread
 * waits on a busy database it cannot pump pipes or fire timers. Here the job's output
 * keeps streaming to its file and its timeout keeps ticking whatever the store is doing.
 *
 * Protocol (main → slot): `{ type: "run", spec }`, `{ type: "abort", reason }`.
 * (slot → main): `{ type: "spawned", pid, startTicks }`, `{ type: "done", result }`.
 *
 * @module
 */

/// <reference lib="deno.worker" />

import { type AttemptSpec, notRun, runAttempt } from "./executor.ts";

/** A message from the pool to a slot. */
export type SlotRequest =
  | { type: "run"; spec: AttemptSpec }
  | { type: "abort"; reason: string };

let current: AbortController | null = null;

self.onmessage = async (event: MessageEvent<SlotRequest>) => {
  const message = event.data;
  if (message.type === "abort") {
    current?.abort(message.reason);
    return;
  }
  const controller = new AbortController();
  current = controller;
  try {
    const result = await runAttempt(message.spec, {
      signal: controller.signal,
      onSpawn: ({ pid, startTicks }) => self.postMessage({ type: "spawned", pid, startTicks }),
    });
    self.postMessage({ type: "done", result });
  } catch (e) {
    // runAttempt reports failures as outcomes; reaching here is a bug, still not a hang.
    const message = String((e as Error)?.message ?? e);
    self.postMessage({ type: "done", result: notRun(message, `internal error: ${message}`) });
  } finally {
    current = null;
  }
};
