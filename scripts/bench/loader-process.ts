/**
 * The load-generator process: the bench forks it once and sends it jobs over
 * IPC, so load is never generated in the process that measures, nor in any
 * server under test. Saturation runs are closed loops (fixed connections);
 * half-load runs are open loops at a fixed rate (scripts/bench/http-load.ts).
 */
import { runClosedLoop, runOpenLoop, type LoadRunResult, type OpenLoopResult } from "./http-load.js";
import { requestGenerator, type CyclePositions, type RequestSpec } from "./requests.js";

/** A job for the load generator. */
export type LoadJob =
  | {
      kind: "saturate";
      host: string;
      port: number;
      request: RequestSpec;
      /** The bearer token every request carries. */
      token: string;
      connections: number;
      /** Seconds; ignored when `amount` is set. */
      durationS: number;
      /** Send exactly this many requests instead of running for a duration. */
      amount?: number;
    }
  | { kind: "rate"; host: string; port: number; request: RequestSpec; token: string; rate: number; durationS: number; maxConnections: number };

/** A result, with the load generator's own CPU use (a loader near 100% of a CPU may itself be the limit). */
export type LoadResult = (({ kind: "saturate" } & LoadRunResult) | ({ kind: "rate" } & OpenLoopResult)) & { loaderCpuPct: number };

const TIMEOUT_MS = 10_000;

/** Where this process's request cycles stopped, so each run of a target goes on from its last. */
const positions: CyclePositions = new Map();

async function run(job: LoadJob): Promise<LoadResult> {
  const cpu = process.cpuUsage();
  const started = performance.now();
  const next = requestGenerator(job.request, positions);
  const measured =
    job.kind === "saturate"
      ? {
          kind: "saturate" as const,
          ...(await runClosedLoop({
            host: job.host,
            port: job.port,
            connections: job.connections,
            ...(job.amount ? { amount: job.amount } : { durationMs: job.durationS * 1000 }),
            timeoutMs: TIMEOUT_MS,
            token: job.token,
            next,
          })),
        }
      : {
          kind: "rate" as const,
          ...(await runOpenLoop({
            host: job.host,
            port: job.port,
            rate: job.rate,
            durationMs: job.durationS * 1000,
            maxConnections: job.maxConnections,
            timeoutMs: TIMEOUT_MS,
            token: job.token,
            next,
          })),
        };
  const used = process.cpuUsage(cpu);
  const wallUs = (performance.now() - started) * 1000;
  return { ...measured, loaderCpuPct: Math.round(((used.user + used.system) / wallUs) * 100) };
}

// One job at a time, in the order received.
let queue = Promise.resolve();
process.on("message", (message: { id: number; job: LoadJob }) => {
  queue = queue.then(async () => {
    try {
      process.send!({ id: message.id, result: await run(message.job) });
    } catch (error) {
      process.send!({ id: message.id, error: error instanceof Error ? (error.stack ?? error.message) : String(error) });
    }
  });
});
// The bench going away (even killed) closes the IPC channel: end with it.
process.on("disconnect", () => process.exit(0));
process.send!({ ready: true });
