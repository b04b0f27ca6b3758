import { readAtMost, type ProcessStatus } from "../shared/observability/index.js";

/** One process as the status page shows it. */
export interface ProcessEntry {
  name: string;
  /** Serving: its gRPC health is SERVING (the gateway: it answers) and its own checks hold. */
  healthy: boolean;
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
    const processes: ProcessEntry[] = [
      "status" in self
        ? { name: self.status.name, healthy: self.status.healthy, grpcHealth: "self", metricsUrl: deps.selfMetricsUrl(), status: self.status }
        : { name: "gateway", healthy: false, grpcHealth: "self", metricsUrl: deps.selfMetricsUrl(), status: undefined, error: self.error },
      ...deps.targets.map((target, i): ProcessEntry => {
        const report = reports[i]!;
        const grpcHealth = readiness.services[target.name] ?? "UNKNOWN";
        const status = "status" in report ? report.status : undefined;
        return {
          name: target.name,
          healthy: grpcHealth === "SERVING" && status?.healthy === true,
          grpcHealth,
          metricsUrl: `http://${target.address}/metrics`,
          status,
          ...("error" in report ? { error: report.error } : {}),
        };
      }),
    ];
    return { time: new Date().toISOString(), healthy: processes.every((p) => p.healthy), processes };
  });
}
