import { readAtMost, type ProcessStatus } from "../shared/observability/index.js";

/** One process as the status page shows it. */
export interface ProcessEntry {
  name: string;
  /** Serving, with nothing in `problems`: its gRPC health is SERVING (the gateway: it answers), its own checks hold and its breakers are closed. */
  healthy: boolean;
  /** Why it is not healthy, in an operator's words: its failing checks (`nats`), else its gRPC health; each breaker not closed (`breaker for inventory open`); why it could not be asked. */
  problems: string[];
  /** grpc.health.v1 as the gateway sees it (SERVING, NOT_SERVING, UNREACHABLE); "self" for the gateway. */
  grpcHealth: string;
  /** Where its Prometheus metrics are. */
  metricsUrl: string;
  /** What it reported at /status.json; undefined when it could not be reached. */
  status: ProcessStatus | undefined;
  error?: string;
}

/** The whole system, served at /status.json and drawn by /status. */
export interface SystemStatus {
  time: string;
  healthy: boolean;
  processes: ProcessEntry[];
}

/** Where to find a service's admin server. */
export interface AdminTarget {
  name: string;
  /** host:port of its admin server. */
  address: string;
}

/** A service that answered, but not with its report: it is running, so not "unreachable". */
class NoReport extends Error {}

async function fetchStatus(address: string, timeoutMs: number): Promise<ProcessStatus> {
  const response = await fetch(`http://${address}/status.json`, { signal: AbortSignal.timeout(timeoutMs) });
  if (!response.ok) throw new NoReport(`its /status.json answered HTTP ${response.status}`);
  return (await response.json()) as ProcessStatus;
}

/** The socket errors a stopped process gives, in words (others say themselves well enough: `getaddrinfo ENOTFOUND inventory`). */
const SOCKET_ERRORS: Record<string, string> = {
  ECONNREFUSED: "connection refused",
  ECONNRESET: "connection reset",
};

/**
 * Why a service's report could not be had, in an operator's words: `unreachable: no answer within 1000 ms` (a process
 * paused or stuck), `unreachable: connection refused` (none listening), or the socket error's message, not fetch's own
 * `fetch failed`; `its /status.json answered HTTP 500` for a process that answered without its report.
 */
function missingReport(error: unknown, timeoutMs: number): string {
  if (error instanceof NoReport) return error.message;
  return `unreachable: ${unreachableReason(error, timeoutMs)}`;
}

function unreachableReason(error: unknown, timeoutMs: number): string {
  if (!(error instanceof Error)) return String(error);
  if (error.name === "TimeoutError") return `no answer within ${timeoutMs} ms`;
  if (!(error.cause instanceof Error)) return error.message;
  const code: unknown = (error.cause as { code?: unknown }).code;
  // An AggregateError (each address of a name tried) has an empty message: its code then says what happened.
  return (typeof code === "string" ? SOCKET_ERRORS[code] : undefined) ?? (error.cause.message || (typeof code === "string" ? code : error.message));
}

/** Why a process that reported is not healthy: its failing checks, else a gRPC health other than SERVING; its breakers not closed. */
function problemsOf(status: ProcessStatus, grpcHealth: string): string[] {
  const failing = Object.keys(status.checks).filter((check) => !status.checks[check]);
  const serving = grpcHealth === "SERVING" || grpcHealth === "self";
  const health = failing.length > 0 ? failing : serving ? [] : [`gRPC health ${grpcHealth}`];
  return [...health, ...status.dependencies.filter((d) => d.breaker !== "closed").map((d) => `breaker for ${d.name} ${d.breaker}`)];
}

/**
 * The system's status: the gateway's own report, and each service's —
 * its grpc.health.v1 answer together with what its admin server reports
 * (rates, p99, breakers, outbox, consumers). A service that does not
 * answer is listed as down, with the reason.
 */
export function systemStatus(deps: {
  self: () => Promise<ProcessStatus>;
  selfMetricsUrl: () => string;
  readiness: () => Promise<{ ready: boolean; services: Record<string, string> }>;
  targets: readonly AdminTarget[];
  timeoutMs?: number;
}): () => Promise<SystemStatus> {
  const timeoutMs = deps.timeoutMs ?? 1000;
  // /status.json (on the admin port, without a token) asks every service: one report a second answers every caller.
  return readAtMost(1000, async () => {
    const [self, readiness, reports] = await Promise.all([
      // The gateway's own report failing (out of file descriptors, say) leaves the services' to show.
      deps.self().then((status) => ({ status }), (error: unknown) => ({ error: `its own report failed: ${error instanceof Error ? error.message : String(error)}` })),
      deps.readiness(),
      Promise.all(deps.targets.map((t) => fetchStatus(t.address, timeoutMs).then((status) => ({ status }), (error: unknown) => ({ error: missingReport(error, timeoutMs) })))),
    ]);
    const entry = (name: string, grpcHealth: string, metricsUrl: string, report: { status: ProcessStatus } | { error: string }): ProcessEntry => {
      if ("error" in report) return { name, healthy: false, problems: [report.error], grpcHealth, metricsUrl, status: undefined, error: report.error };
      const problems = problemsOf(report.status, grpcHealth);
      return { name, healthy: problems.length === 0, problems, grpcHealth, metricsUrl, status: report.status };
    };
    const processes: ProcessEntry[] = [
      entry("status" in self ? self.status.name : "gateway", "self", deps.selfMetricsUrl(), self),
      ...deps.targets.map((target, i) => entry(target.name, readiness.services[target.name] ?? "UNKNOWN", `http://${target.address}/metrics`, reports[i]!)),
    ];
    return { time: new Date().toISOString(), healthy: processes.every((p) => p.healthy), processes };
  });
}
