import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as delay } from "node:timers/promises";
import { readQueryConsumerName } from "../../shared/config/index.js";
import { tlsEnv, writeDevCertificates, writeDevCredentials, writeNatsSecurity, type DevTokens } from "../../scripts/dev-security.js";
import { freePort, startNats, startNatsCluster, type NatsCluster, type NatsServer } from "./nats.js";
import { startService, startWhilePortTaken, type ServiceProcess } from "./processes.js";
import { startTcpProxy, type TcpProxy } from "./tcp-proxy.js";

/** What an HTTP call through the gateway returned. */
export interface ApiResponse<T = any> {
  status: number;
  headers: Headers;
  body: T;
  text: string;
}

/** A gateway started beside a system's first one (see System.startGateway). */
export interface Gateway extends AsyncDisposable {
  readonly process: ServiceProcess;
  readonly baseUrl: string;
  /** Its admin server: /metrics, /healthz, /status and /status.json. */
  readonly adminUrl: string;
  /** Calls this gateway, like System.api. */
  api<T = any>(method: string, path: string, options?: ApiOptions): Promise<ApiResponse<T>>;
}

/** Who a test calls the gateway as: "admin", a dev customer's id, `{ token }`, or null for no credentials. */
export type Caller = string | { token: string } | null;

/** Options of one call through the gateway. */
export interface ApiOptions {
  body?: unknown;
  rawBody?: string | Buffer;
  headers?: Record<string, string>;
  /** Who calls (default: the admin). */
  as?: Caller;
  /** Aborts the request (fetch rejects). */
  signal?: AbortSignal;
}

/**
 * A running Orderly (nats-server, inventory, order, query, gateway) on free
 * ports with its own data directory, secured as `npm start` secures it: dev
 * credentials (tokens for an admin and customers "alice" and "bob"), NATS
 * users with per-service permissions, and mTLS on gRPC links when asked.
 */
export interface System extends AsyncDisposable {
  readonly dataDir: string;
  /** The dev bearer tokens (also in $dataDir/dev-tokens.json). */
  readonly tokens: DevTokens;
  readonly baseUrl: string;
  /** The gateway's admin server: /metrics, /healthz, /status and /status.json. */
  readonly adminUrl: string;
  /** Its nats-server (the first of its cluster's, when started with `natsCluster`). */
  readonly nats: NatsServer;
  /** Its nats-servers, when started as a JetStream cluster (`natsCluster`); the services are given all of them in NATS_URL. */
  readonly natsCluster: NatsCluster | undefined;
  readonly inventory: ServiceProcess;
  readonly order: ServiceProcess;
  readonly query: ServiceProcess;
  readonly gateway: ServiceProcess;
  /** The proxy between the order service and inventory, when started with `inventoryProxy`. */
  readonly inventoryProxy: TcpProxy | undefined;
  /** The environment the services were started with (to restart one the same way). */
  readonly env: {
    common: Record<string, string>;
    inventory: Record<string, string>;
    order: Record<string, string>;
    query: Record<string, string>;
    gateway: Record<string, string>;
  };
  /** Starts a stopped process again with its original environment and port (plus `extraEnv`), replacing it in the system. */
  restart(name: "inventory" | "order" | "query" | "gateway", extraEnv?: Record<string, string>): Promise<ServiceProcess>;
  /**
   * Starts one more gateway with the first one's environment (plus `extraEnv`) on free ports of its own, as a second
   * instance behind a load balancer would run; stopped with the system unless stopped before.
   */
  startGateway(extraEnv?: Record<string, string>): Promise<Gateway>;
  /** Calls the gateway (as the admin unless `as` says otherwise); a body object is sent as JSON. */
  api<T = any>(method: string, path: string, options?: ApiOptions): Promise<ApiResponse<T>>;
}

/** The Authorization header for a caller. */
export function authorization(tokens: DevTokens, caller: Caller): Record<string, string> {
  if (caller === null) return {};
  const token = typeof caller === "object" ? caller.token : caller === "admin" ? tokens.admin : tokens.customers[caller];
  if (token === undefined) throw new Error(`no dev token for ${String(caller)}`);
  return { authorization: `Bearer ${token}` };
}

/**
 * Starts the whole system for a test; `await using` stops it and deletes its
 * data. The rate limit is lifted unless `env` sets one (tests of other
 * concerns send many requests as one admin).
 */
export async function startSystem(
  env: Record<string, string> = {},
  options: { inventoryProxy?: boolean; mtls?: boolean; natsCluster?: number } = {},
): Promise<System> {
  const dataDir = mkdtempSync(join(tmpdir(), "orderly-test-"));
  const tokens = await writeDevCredentials(dataDir);
  const natsSecurity = writeNatsSecurity(dataDir, readQueryConsumerName(env));
  const natsOptions = { configFile: natsSecurity.configFile, operator: natsSecurity.credentials("operator") };
  const natsCluster = options.natsCluster === undefined ? undefined : await startNatsCluster(options.natsCluster, natsOptions);
  const nats = natsCluster?.servers[0] ?? (await startNats(natsOptions));
  const certificates = options.mtls ? writeDevCertificates(join(dataDir, "secrets", "tls")) : undefined;
  const processEnv = (name: "inventory" | "order" | "query" | "gateway") => ({
    ...natsSecurity.envFor(name),
    ...(certificates ? tlsEnv(certificates[name]!) : {}),
  });
  const common = {
    ORDERLY_DATA_DIR: dataDir,
    NATS_URL: natsCluster?.url ?? nats.url,
    CONSUMER_RETRY_DELAY_MS: "50",
    RATE_LIMIT_PER_SECOND: "1000000",
    RATE_LIMIT_BURST: "1000000",
    ...env,
  };
  const started = new Map<string, ServiceProcess>();
  let proxy: TcpProxy | undefined;
  const stopAll = async () => {
    await Promise.all([...started.values()].map((p) => p.stop()));
    await proxy?.close();
    await (natsCluster ?? nats)[Symbol.asyncDispose]();
    rmSync(dataDir, { recursive: true, force: true });
  };
  let queryStarting: Promise<ServiceProcess> | undefined;
  try {
    // Started processes are tracked as each comes up, so a failed start leaves none of them behind.
    const track = (name: string, starting: Promise<ServiceProcess>) => starting.then((p) => (started.set(name, p), p));
    const queryEnv = { ...common, ...processEnv("query"), QUERY_GRPC_PORT: "0", QUERY_ADMIN_PORT: "0" };
    queryStarting = track("query", startService("query", "services/query/main.ts", queryEnv));
    // Awaited below; until then, a failed start must not count as an unhandled rejection.
    queryStarting.catch(() => undefined);
    // Inventory asks the order service about old reservations and starts first, so the order service's port is picked before
    // either starts. Another process can take that port meanwhile: then inventory starts again, told a new one.
    let inventoryEnv: Record<string, string> = {};
    let orderEnv: Record<string, string> = {};
    const startPair = async () => {
      const orderPort = await freePort();
      inventoryEnv = { ...common, ...processEnv("inventory"), INVENTORY_GRPC_PORT: "0", INVENTORY_ADMIN_PORT: "0", ORDER_ADDRESS: `127.0.0.1:${orderPort}` };
      const { port: inventoryPort } = await track("inventory", startService("inventory", "services/inventory/main.ts", inventoryEnv));
      if (options.inventoryProxy) proxy = await startTcpProxy({ host: "127.0.0.1", port: inventoryPort });
      orderEnv = { ...common, ...processEnv("order"), ORDER_GRPC_PORT: String(orderPort), ORDER_ADMIN_PORT: "0", INVENTORY_ADDRESS: proxy?.address ?? `127.0.0.1:${inventoryPort}` };
      return track("order", startService("order", "services/order/main.ts", orderEnv));
    };
    const order = await startWhilePortTaken(5, startPair, async () => {
      await started.get("inventory")!.stop();
      started.delete("inventory");
      await proxy?.close();
      proxy = undefined;
    });
    const query = await queryStarting;
    const inventoryAddress = `127.0.0.1:${started.get("inventory")!.port}`;
    // Restarted services come back on their first ports, so the gateway keeps finding them.
    const inventory = started.get("inventory")!;
    const envs = {
      common,
      inventory: { ...inventoryEnv, INVENTORY_GRPC_PORT: String(inventory.port), INVENTORY_ADMIN_PORT: String(inventory.adminPort) },
      order: { ...orderEnv, ORDER_GRPC_PORT: String(order.port), ORDER_ADMIN_PORT: String(order.adminPort) },
      query: { ...queryEnv, QUERY_GRPC_PORT: String(query.port), QUERY_ADMIN_PORT: String(query.adminPort) },
    };
    const gatewayEnv = {
      ...common,
      ...processEnv("gateway"),
      GATEWAY_PORT: "0",
      GATEWAY_ADMIN_PORT: "0",
      ORDER_ADDRESS: `127.0.0.1:${order.port}`,
      INVENTORY_ADDRESS: inventoryAddress,
      QUERY_ADDRESS: `127.0.0.1:${query.port}`,
      ORDER_ADMIN_ADDRESS: `127.0.0.1:${order.adminPort}`,
      INVENTORY_ADMIN_ADDRESS: `127.0.0.1:${inventory.adminPort}`,
      QUERY_ADMIN_ADDRESS: `127.0.0.1:${query.adminPort}`,
    };
    const gateway = await startService("gateway", "gateway/main.ts", gatewayEnv);
    started.set("gateway", gateway);
    const env = { ...envs, gateway: { ...gatewayEnv, GATEWAY_PORT: String(gateway.port), GATEWAY_ADMIN_PORT: String(gateway.adminPort) } };
    const baseUrl = `http://127.0.0.1:${gateway.port}`;
    const caller = (url: string) => (method: string, path: string, { as = "admin", ...options }: ApiOptions = {}) =>
      api(url, method, path, { ...options, headers: { ...authorization(tokens, as), ...options.headers } });
    let gateways = 1;
    const entries = { inventory: "services/inventory/main.ts", order: "services/order/main.ts", query: "services/query/main.ts", gateway: "gateway/main.ts" };
    const system: System = {
      dataDir,
      tokens,
      baseUrl,
      adminUrl: `http://127.0.0.1:${gateway.adminPort}`,
      nats,
      natsCluster,
      get inventory() {
        return started.get("inventory")!;
      },
      get order() {
        return started.get("order")!;
      },
      get query() {
        return started.get("query")!;
      },
      get gateway() {
        return started.get("gateway")!;
      },
      inventoryProxy: proxy,
      env,
      async restart(name, extraEnv = {}) {
        await started.get(name)?.stop();
        // On its first ports, which the others know: a short-lived taker (an outgoing connection's local port, say) is waited out.
        return startWhilePortTaken(20, () => track(name, startService(name, entries[name], { ...env[name], ...extraEnv })), () => delay(250));
      },
      async startGateway(extraEnv = {}) {
        const name = `gateway-${++gateways}`;
        const extra = await track(name, startService("gateway", entries.gateway, { ...gatewayEnv, ...extraEnv }));
        const url = `http://127.0.0.1:${extra.port}`;
        return { process: extra, baseUrl: url, adminUrl: `http://127.0.0.1:${extra.adminPort}`, api: caller(url), [Symbol.asyncDispose]: async () => void (await extra.stop()) };
      },
      api: caller(baseUrl),
      [Symbol.asyncDispose]: stopAll,
    };
    return system;
  } catch (error) {
    await queryStarting?.catch(() => undefined);
    await stopAll();
    throw error;
  }
}

/** One HTTP call to a base URL, returning status, headers and parsed JSON body. */
export async function api<T = any>(
  baseUrl: string,
  method: string,
  path: string,
  options: Omit<ApiOptions, "as"> = {},
): Promise<ApiResponse<T>> {
  const body = options.rawBody ?? (options.body === undefined ? undefined : JSON.stringify(options.body));
  const response = await fetch(baseUrl + path, {
    method,
    headers: { ...(body === undefined ? {} : { "content-type": "application/json" }), ...options.headers },
    body,
    signal: options.signal,
  });
  const text = await response.text();
  let parsed: unknown;
  try {
    parsed = text === "" ? undefined : JSON.parse(text);
  } catch {
    parsed = undefined;
  }
  return { status: response.status, headers: response.headers, body: parsed as T, text };
}

/** The ErrorInfo reason of an error body, if any. */
export function reasonOf(body: { details?: { reason?: string }[] } | undefined): string | undefined {
  return body?.details?.find((d) => d.reason !== undefined)?.reason;
}
