import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { startService, type ServiceProcess } from "./processes.js";

/** What an HTTP call through the gateway returned. */
export interface ApiResponse<T = any> {
  status: number;
  headers: Headers;
  body: T;
  text: string;
}

/** A running Orderly (inventory, order, gateway) on free ports with its own data directory. */
export interface System extends AsyncDisposable {
  readonly dataDir: string;
  readonly baseUrl: string;
  readonly inventory: ServiceProcess;
  readonly order: ServiceProcess;
  readonly gateway: ServiceProcess;
  /** Calls the gateway; a body object is sent as JSON. */
  api<T = any>(method: string, path: string, options?: { body?: unknown; rawBody?: string | Buffer; headers?: Record<string, string> }): Promise<ApiResponse<T>>;
}

/** Starts the whole system for a test; `await using` stops it and deletes its data. */
export async function startSystem(env: Record<string, string> = {}): Promise<System> {
  const dataDir = mkdtempSync(join(tmpdir(), "orderly-test-"));
  const common = { ORDERLY_DATA_DIR: dataDir, ...env };
  const started: ServiceProcess[] = [];
  try {
    const inventory = await startService("inventory", "services/inventory/main.ts", { ...common, INVENTORY_GRPC_PORT: "0" });
    started.push(inventory);
    const inventoryAddress = `127.0.0.1:${inventory.port}`;
    const order = await startService("order", "services/order/main.ts", { ...common, ORDER_GRPC_PORT: "0", INVENTORY_ADDRESS: inventoryAddress });
    started.push(order);
    const gateway = await startService("gateway", "gateway/main.ts", {
      ...common,
      GATEWAY_PORT: "0",
      ORDER_ADDRESS: `127.0.0.1:${order.port}`,
      INVENTORY_ADDRESS: inventoryAddress,
    });
    started.push(gateway);
    const baseUrl = `http://127.0.0.1:${gateway.port}`;
    return {
      dataDir,
      baseUrl,
      inventory,
      order,
      gateway,
      api: (method, path, options = {}) => api(baseUrl, method, path, options),
      async [Symbol.asyncDispose]() {
        await Promise.all(started.map((p) => p.stop()));
        rmSync(dataDir, { recursive: true, force: true });
      },
    };
  } catch (error) {
    await Promise.all(started.map((p) => p.stop()));
    rmSync(dataDir, { recursive: true, force: true });
    throw error;
  }
}

/** One HTTP call to a base URL, returning status, headers and parsed JSON body. */
export async function api<T = any>(
  baseUrl: string,
  method: string,
  path: string,
  options: { body?: unknown; rawBody?: string | Buffer; headers?: Record<string, string> } = {},
): Promise<ApiResponse<T>> {
  const body = options.rawBody ?? (options.body === undefined ? undefined : JSON.stringify(options.body));
  const response = await fetch(baseUrl + path, {
    method,
    headers: { ...(body === undefined ? {} : { "content-type": "application/json" }), ...options.headers },
    body,
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
