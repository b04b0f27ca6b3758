import type { EventRuntime } from "../events/index.js";
import type { HealthState } from "../grpc/index.js";
import type { DependencyPolicy } from "../resilience/index.js";
import type { EventLoopLag } from "./event-loop-lag.js";
import { dependencyCounts, dependencyStatuses, eventStatuses, type ProcessStatus } from "./process-status.js";
import type { RequestWindow } from "./request-window.js";

/** What a process's status report is made of. */
export interface StatusSources {
  name: string;
  health: HealthState;
  requests: RequestWindow;
  lag: EventLoopLag;
  policies?: readonly DependencyPolicy[];
  events?: EventRuntime;
}

/** The function that reports a process's status (served at /status.json by its admin server). */
export function statusReporter(sources: StatusSources): () => Promise<ProcessStatus> {
  const started = Date.now();
  const policies = sources.policies ?? [];
  return async () => {
    const checks = sources.health.report();
    // The dependencies' calls are told over the span of the requests' figures.
    const counts = dependencyCounts(policies);
    const { before, ...requests } = await sources.requests.summarize(Date.now(), counts);
    return {
      name: sources.name,
      healthy: Object.values(checks).every(Boolean),
      checks,
      pid: process.pid,
      uptimeSeconds: Math.round((Date.now() - started) / 1000),
      rssBytes: residentSetSize(),
      eventLoopLagMs: Math.round(sources.lag.read() * 10) / 10,
      ...requests,
      dependencies: dependencyStatuses(policies, counts, before),
      ...(await eventStatuses(sources.events)),
    };
  };
}

/** The process's resident memory, or undefined when the OS will not say: a report without it is better than none (libuv reads it through a file, which a process out of descriptors cannot open). */
function residentSetSize(): number | undefined {
  try {
    return process.memoryUsage.rss();
  } catch {
    return undefined;
  }
}
