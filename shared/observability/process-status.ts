import type { EventRuntime } from "../events/index.js";
import type { BreakerState, DependencyPolicy } from "../resilience/index.js";
import type { RouteSummary } from "./request-window.js";

/** What befell the calls to a dependency, counted over the span a report covers (its `windowSeconds`). */
export interface DependencyCounts {
  /** Calls made. */
  calls: number;
  retries: number;
  /** Calls it answered with a refusal of the request (INSUFFICIENT_STOCK, NOT_FOUND, …). */
  refusals: number;
  /** Calls it answered with its own dependency's outage (the order service's "inventory is unavailable"). */
  relayed: number;
  /** Calls that failed: a timeout, the transport, or its own failure. */
  failures: number;
}

/** A dependency's resilience state now, and its calls over the report's span. */
export interface DependencyStatus extends DependencyCounts {
  name: string;
  breaker: BreakerState;
  inUse: number;
  queued: number;
}

/** A durable consumer's position and troubles. */
export interface ConsumerStatus {
  durable: string;
  /** Not yet delivered (undefined while JetStream cannot be asked). */
  pending: number | undefined;
  ackPending: number | undefined;
  redelivered: number | undefined;
  applied: number;
  /** Events its handler has nothing to do with, acked unrecorded. */
  ignored: number;
  deadLetters: number;
  /** Events of a payload type its code does not know, kept until an upgraded consumer applies them. */
  deferred: number;
}

/** What one process reports about itself at /status.json. */
export interface ProcessStatus {
  name: string;
  /** Every readiness check holds. */
  healthy: boolean;
  checks: Record<string, boolean>;
  pid: number;
  uptimeSeconds: number;
  /** Its resident memory; missing when the OS would not say (no file descriptor left to ask with, say). */
  rssBytes?: number;
  /** p99 event-loop delay (ms) since the last report. */
  eventLoopLagMs: number;
  /** The span `routes` covers (s; the first report's reaches back to the process's start). */
  windowSeconds: number;
  /** Per HTTP route (gateway) or per RPC (services). */
  routes: RouteSummary[];
  dependencies: DependencyStatus[];
  outbox: { backlog: number; oldestAgeMs: number; published: number } | undefined;
  consumers: ConsumerStatus[];
}

/** Each policy's counts since it was made. */
export function dependencyCounts(policies: readonly DependencyPolicy[]): Map<string, DependencyCounts> {
  return new Map(policies.map(({ name, stats: { calls, retries, refusals, relayed, failures } }) => [name, { calls, retries, refusals, relayed, failures }]));
}

/** The resilience state of each policy, with its counts (`dependencyCounts`) less those of `base`, an earlier reading (none: since it was made). */
export function dependencyStatuses(policies: readonly DependencyPolicy[], counts: Map<string, DependencyCounts>, base: Map<string, DependencyCounts> | undefined): DependencyStatus[] {
  return policies.map((p) => {
    const now = counts.get(p.name)!;
    const before = base?.get(p.name);
    const { inUse, queued } = p.bulkhead;
    return {
      name: p.name,
      breaker: p.breakerState,
      inUse,
      queued,
      calls: now.calls - (before?.calls ?? 0),
      retries: now.retries - (before?.retries ?? 0),
      refusals: now.refusals - (before?.refusals ?? 0),
      relayed: now.relayed - (before?.relayed ?? 0),
      failures: now.failures - (before?.failures ?? 0),
    };
  });
}

/** The outbox and consumers of an event runtime. */
export async function eventStatuses(events: EventRuntime | undefined): Promise<Pick<ProcessStatus, "outbox" | "consumers">> {
  const relay = events?.relay();
  const stats = relay?.stats();
  const consumers = await Promise.all(
    (events?.consumers() ?? []).map(async (c): Promise<ConsumerStatus> => {
      const lag = await c.lag().catch(() => undefined);
      return {
        durable: c.durable,
        pending: lag?.pending,
        ackPending: lag?.ackPending,
        redelivered: lag?.redelivered,
        applied: c.stats.applied,
        ignored: c.stats.ignored,
        deadLetters: c.deadLetterCount(),
        deferred: c.deferredCount(),
      };
    }),
  );
  return {
    outbox: stats && { backlog: stats.backlog, oldestAgeMs: stats.oldestUnpublishedAgeMs, published: stats.published },
    consumers,
  };
}
