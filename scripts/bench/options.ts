import { join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";

/** The repository's root: `npm start`'s data directory is relative to it. */
const ROOT = fileURLToPath(new URL("../../", import.meta.url));

/** The phases of a run. */
export const PHASES = ["reads", "writes", "relay"] as const;
/** One phase of a run. */
export type Phase = (typeof PHASES)[number];

/** How a bench run is set up (`npm run bench -- --help`). */
export interface BenchOptions {
  /** Interleaved rounds per phase. */
  rounds: number;
  /** Seconds of each saturation run and of each half-load run. */
  durationS: number;
  /** Seconds of the unrecorded saturation run each target gets before round 1. */
  warmupS: number;
  /** Connections of saturation runs (closed loop). */
  connections: number;
  /** Orders stored for the main figures and the small side of the growth check (with --gateway: orders the bench creates for the reads). */
  smallOrders: number;
  /** Orders stored on the large side of the growth check. */
  largeOrders: number;
  /** Orders created while NATS is down, per relay round. */
  relayOrders: number;
  /** Messages per JetStream ceiling run. */
  publishCount: number;
  phases: Phase[];
  /** Write V8 CPU profiles of the Orderly services and summarise them in the report. */
  profile: boolean;
  /** Extra environment for every Orderly process (experiments: GATEWAY_CACHE_TTL_MS=0, …). */
  stackEnv: Record<string, string>;
  outDir: string;
  /** A running Orderly to measure instead of stacks the bench starts (--gateway). */
  running?: RunningOptions;
}

/** Where a running Orderly is and how the bench calls it. */
export interface RunningOptions {
  /** Its HTTP gateway's origin, e.g. http://127.0.0.1:8080. */
  gatewayUrl: string;
  /** The gateway's host (an IPv6 address without brackets) and port, for the load generator's sockets. */
  host: string;
  port: number;
  /** An admin's bearer token (--token); never written to the results (see publicOptions). */
  token?: string;
  /** Where to find one without --token: the dev-tokens.json `npm start` writes in $ORDERLY_DATA_DIR (./.data). */
  tokenFile: string;
  /** Its gateway's admin server (/status.json names each service's pid), e.g. http://127.0.0.1:9050. */
  adminUrl?: string;
}

/** The options as the results record them: a running Orderly's token left out. */
export function publicOptions(options: BenchOptions): BenchOptions {
  if (options.running === undefined) return options;
  const { token: _token, ...running } = options.running;
  return { ...options, running };
}

/** The help text. */
export const USAGE = `npm run bench [-- options]

Measures Orderly against this machine's own ceilings in one run, interleaving
rounds (A B A B …) so that drift on a shared machine hits both sides.

  --rounds N          interleaved rounds per phase (default 3)
  --duration S        seconds per saturation run and per half-load run (default 5)
  --warmup S          unrecorded warm-up seconds per target (default 2; 0 also skips the relay's warm-up drain)
  --connections N     connections of saturation runs (default 64)
  --small N           orders stored for the main figures (default 10000)
  --large N           orders stored on the large side of the growth check (default 100000)
  --growth            the large side holds 1,000,000 orders (seeding takes ~40-100 s; the run ~8.5 minutes)
  --relay-orders N    orders created while NATS is down, per relay round (default 10000: 20,000 events, as many as a ceiling run publishes; 1500 with --quick)
  --publish-count N   messages per JetStream ceiling run (default 20000; 3000 with --quick)
  --only LIST         phases to run, comma-separated: reads,writes,relay (default all)
  --profile           CPU-profile the Orderly services (inspector, written at exit) and report the top functions
  --env KEY=VALUE     extra environment for every Orderly process, e.g. --env GATEWAY_CACHE_TTL_MS=0 (repeatable)
  --quick             a smoke run: 1 round of 2 s, 20000 large orders, 1500 relay orders
  --out DIR           where results go (default bench-results)

A running Orderly instead (npm start, say) — the ceilings still run here:
  --gateway URL       its HTTP gateway, e.g. http://127.0.0.1:8080; phases reads and writes only (the
                      growth check seeds databases and the relay rounds stop NATS: both need stacks the
                      bench starts). The bench restocks 32 BENCH-SKU-* items and, for the reads, creates
                      --small orders (default 10000) through the API, in that system, before it measures;
                      the POST runs leave their orders there too. Start it with
                      RATE_LIMIT_PER_SECOND=1000000 RATE_LIMIT_BURST=1000000, or its rate limit answers 429.
  --token TOKEN       an admin's bearer token (default: the admin of $ORDERLY_DATA_DIR/dev-tokens.json, ./.data)
  --admin URL         its gateway's admin server at a loopback address, e.g. http://127.0.0.1:9050: the
                      services' pids in its /status.json give CPU per request (a pid counts when the
                      process that has it here started when the service did)
`;

/** Parses the command line (throws with the usage on a bad value); `env` gives ORDERLY_DATA_DIR. */
export function parseOptions(argv: string[], env: NodeJS.ProcessEnv = process.env): BenchOptions | "help" {
  const { values } = parseArgs({
    args: argv,
    options: {
      rounds: { type: "string" },
      duration: { type: "string" },
      warmup: { type: "string" },
      connections: { type: "string" },
      small: { type: "string" },
      large: { type: "string" },
      growth: { type: "boolean", default: false },
      "relay-orders": { type: "string" },
      "publish-count": { type: "string" },
      only: { type: "string" },
      profile: { type: "boolean", default: false },
      env: { type: "string", multiple: true, default: [] },
      quick: { type: "boolean", default: false },
      out: { type: "string", default: "bench-results" },
      help: { type: "boolean", short: "h", default: false },
      gateway: { type: "string" },
      token: { type: "string" },
      admin: { type: "string" },
    },
  });
  if (values.help) return "help";
  const int = (name: string, raw: string | undefined, fallback: number, min: number): number => {
    if (raw === undefined) return fallback;
    const value = Number(raw);
    if (!Number.isSafeInteger(value) || value < min) throw new Error(`--${name} must be an integer >= ${min}\n\n${USAGE}`);
    return value;
  };
  const quick = values.quick;
  const running = values.gateway === undefined ? undefined : runningOptions(values.gateway, values.token, values.admin, env);
  if (running === undefined && (values.token !== undefined || values.admin !== undefined)) throw new Error(`--token and --admin go with --gateway\n\n${USAGE}`);
  const phases = (values.only ?? (running ? "reads,writes" : PHASES.join(","))).split(",").map((p) => p.trim());
  for (const p of phases) if (!(PHASES as readonly string[]).includes(p)) throw new Error(`--only: unknown phase "${p}"\n\n${USAGE}`);
  if (running) {
    const needStacks = [
      ...(phases.includes("relay") ? ["the relay phase (it stops NATS and the services)"] : []),
      ...(values.growth || values.large !== undefined ? ["the growth check (it seeds databases)"] : []),
      ...(values.profile || values.env?.length ? ["--profile and --env (they start services)"] : []),
    ];
    if (needStacks.length) throw new Error(`with --gateway, drop ${needStacks.join(", ")}: they need stacks the bench starts\n\n${USAGE}`);
  }
  const stackEnv: Record<string, string> = {};
  for (const pair of values.env ?? []) {
    const at = pair.indexOf("=");
    if (at < 1) throw new Error(`--env must be KEY=VALUE, got "${pair}"\n\n${USAGE}`);
    stackEnv[pair.slice(0, at)] = pair.slice(at + 1);
  }
  return {
    rounds: int("rounds", values.rounds, quick ? 1 : 3, 1),
    durationS: int("duration", values.duration, quick ? 2 : 5, 1),
    warmupS: int("warmup", values.warmup, quick ? 1 : 2, 0),
    connections: int("connections", values.connections, 64, 1),
    smallOrders: int("small", values.small, 10_000, 100),
    largeOrders: values.growth ? 1_000_000 : int("large", values.large, quick ? 20_000 : 100_000, 100),
    relayOrders: int("relay-orders", values["relay-orders"], quick ? 1500 : 10_000, 100),
    publishCount: int("publish-count", values["publish-count"], quick ? 3000 : 20_000, 1000),
    phases: phases as Phase[],
    profile: values.profile,
    stackEnv,
    outDir: values.out,
    ...(running ? { running } : {}),
  };
}

/** --gateway, --token and --admin, checked. */
function runningOptions(gateway: string, token: string | undefined, admin: string | undefined, env: NodeJS.ProcessEnv): RunningOptions {
  const url = (name: string, raw: string) => {
    let parsed: URL | undefined;
    try {
      parsed = new URL(raw);
    } catch {
      parsed = undefined;
    }
    if (parsed?.protocol !== "http:" || parsed.pathname !== "/" || parsed.search !== "" || parsed.hash !== "" || parsed.username !== "" || parsed.password !== "") {
      throw new Error(`--${name} must be an http:// origin (scheme, host and port only), got "${raw}"\n\n${USAGE}`);
    }
    return parsed;
  };
  const gatewayUrl = url("gateway", gateway);
  return {
    gatewayUrl: gatewayUrl.origin,
    host: hostOf(gatewayUrl.origin),
    port: Number(gatewayUrl.port || 80),
    ...(token === undefined ? {} : { token }),
    tokenFile: join(resolve(ROOT, env.ORDERLY_DATA_DIR || ".data"), "dev-tokens.json"),
    ...(admin === undefined ? {} : { adminUrl: url("admin", admin).origin }),
  };
}

/** The host of an http:// origin as a socket takes it (an IPv6 address without its brackets). */
export function hostOf(origin: string): string {
  return new URL(origin).hostname.replace(/^\[(.*)\]$/, "$1");
}

/** Whether a host is this machine's loopback. */
export function isLoopback(host: string): boolean {
  return host === "localhost" || host === "::1" || /^127\./.test(host);
}
