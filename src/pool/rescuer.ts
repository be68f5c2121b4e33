/**
 * The rescuer: gives the jobs of dead workers back to the queue.
 *
 * A worker that dies (kill -9, OOM, a container gone) stops heartbeating, so its leases
 * expire. Any live worker, or the next one to start, finds those jobs, kills the orphaned
 * attempt's process group where it can reach it (same host and PID namespace), and only
 * then fails the attempt through the normal retry path, so the orphan never runs beside
 * its retry. The store's update is fenced by the old lease token and by the lease still
 * being expired: a worker that was only slow and heartbeated meanwhile keeps its job.
 *
 * On its own host a worker need not wait for the lease: {@link forgetDeadNeighbours} sees
 * that another worker's process is gone and ends its leases at once.
 *
 * @module
 */

import { nextRunAt } from "../backoff.ts";
import type { Config } from "../config.ts";
import type { Store, WorkerInfo } from "../store/store.ts";
import { hostIdentity, killByAttemptMarker, killOrphan, processesGone } from "./process.ts";

/** What one rescue pass did. */
export interface RescueReport {
  rescued: string[];
  orphansKilled: number;
  unreachable: number;
}

/** Rescues up to `batch` expired leases as of `now`. */
export async function rescueExpired(
  store: Store,
  config: Config,
  options: { now: number; batch?: number },
): Promise<RescueReport> {
  const expired = await store.expiredLeases(options.now, options.batch ?? 100);
  const report: RescueReport = { rescued: [], orphansKilled: 0, unreachable: 0 };
  if (expired.length === 0) return report;
  const backoff = {
    base: config.backoffBase,
    maxS: config.backoffMaxS,
    jitter: config.backoffJitter,
  };
  const rescues = expired.map((lease) => {
    let fate = "its process could not be found";
    if (lease.process) {
      let result = killOrphan(lease.process);
      // Second net on this host: processes marked with this attempt in their environment.
      if (lease.process.host === hostIdentity()) {
        if (killByAttemptMarker(lease.job_id, lease.attempt) > 0) result = "killed";
      }
      if (result === "killed") {
        report.orphansKilled++;
        fate = "its orphaned process group was killed";
      } else if (result === "unreachable") {
        report.unreachable++;
        fate = `its process on ${lease.process.host.split("/")[0]} could not be reached`;
      } else {
        fate = "its process was already gone";
      }
    }
    return {
      ...lease,
      retry_at_ms: nextRunAt(options.now, lease.attempts, backoff),
      error: `worker ${lease.worker_id ?? "?"} lost its lease (died or stalled); ${fate}`,
    };
  });
  report.rescued = await store.rescue(rescues, options.now);
  return report;
}

/**
 * Workers registered from this host (`host`: same machine, boot and PID namespace) whose
 * process is gone (a kill -9, an OOM kill) have their leases ended and their registry row
 * removed, so the next {@link rescueExpired} takes their jobs now rather than when the
 * leases run out. Workers elsewhere still go by their leases. Returns what it forgot.
 */
export async function forgetDeadNeighbours(
  store: Store,
  self: { workerId: string; host: string; nowMs: number; leaseMs: number },
): Promise<{ worker: WorkerInfo; ended: number }[]> {
  const others = (await store.listWorkers(self.nowMs, self.leaseMs))
    .filter((w) => w.id !== self.workerId && w.host === self.host);
  if (others.length === 0) return [];
  const gone = processesGone(others);
  const forgotten = [];
  for (const [i, worker] of others.entries()) {
    if (gone[i]) {
      forgotten.push({ worker, ended: await store.forgetDeadWorker(worker.id, self.nowMs) });
    }
  }
  return forgotten;
}
