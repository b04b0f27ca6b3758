import { createServer, type Server } from "node:http";
import { isIP } from "node:net";
import { hostname } from "node:os";
import type { Registry } from "prom-client";
import type { HealthState } from "../grpc/index.js";
import { OrderlyError, httpStatusFor, toStatusJson } from "../errors/index.js";
import type { Logger } from "../logging/index.js";
import { listen } from "../process/listen.js";
import { shownPath } from "./shown-url.js";

/** What a process's admin HTTP server serves. */
export interface AdminServerOptions {
  host: string;
  /** 0 picks a free port (the port is in the returned object, and processes log it). */
  port: number;
  /** The variable that set the port (GATEWAY_ADMIN_PORT, say), for the message when it cannot be listened on. */
  portSetting?: string;
  registry: Registry;
  /** The report at /status.json: a service's own (ProcessStatus), the gateway's of the whole system. */
  status: () => Promise<unknown>;
  /** An HTML page served at /status (the gateway's status page, which draws /status.json). */
  statusPage?: string;
  health: HealthState;
  logger: Logger;
  /** Host names answered besides IP addresses, localhost and this machine's name ("*": any). */
  allowedHosts?: readonly string[];
}

/** A started admin server. */
export interface AdminServer {
  readonly port: number;
  close(): Promise<void>;
}

/**
 * A process's admin endpoints, apart from the port it serves clients on:
 * `/metrics` (Prometheus text), `/healthz` (200 while ready, "ok" or
 * "degraded", else 503 "not ready", with each check), `/status.json` (what the gateway's status page shows) and,
 * for the gateway, the status page itself at `/status`. What they show
 * (addresses, pids, internal errors) is for operators: the port binds to
 * ORDERLY_BIND_HOST and belongs on an internal network, and it answers only
 * requests whose Host an operator would use (see `adminHostAllowed`).
 */
export async function startAdminServer(options: AdminServerOptions): Promise<AdminServer> {
  const allowedHosts = new Set([hostname().toLowerCase(), ...(options.allowedHosts ?? [])]);
  const refusedHosts = new Set<string>();
  // Node's own refusal of an HTTP/1.1 request without Host is a 400 without a body: such a request is answered as one
  // without Host on HTTP/1.0 is (a browser, the only client a page could misuse, always sends one). A Host sent twice
  // reaches adminHostAllowed as both names joined, which no host is (Node would keep the first, and drop any Host after
  // 2,000 other headers: every header counts, within Node's 16 KiB of headers).
  const server: Server = createServer({ requireHostHeader: false, joinDuplicateHeaders: true }, (req, res) => {
    const path = (req.url ?? "/").split("?")[0] ?? "/";
    /** The path as logs and messages show it: its plain segments, no token a client put there by mistake (made only for those). */
    const shown = () => shownPath(path);
    const json = (status: number, body: unknown) => {
      const text = JSON.stringify(body);
      res.writeHead(status, { "content-type": "application/json; charset=utf-8", "cache-control": "no-store" });
      res.end(text);
    };
    /** A refusal as every other answer of Orderly's: a google.rpc.Status with its reason, and the status HTTP maps it to. */
    const refuse = (error: OrderlyError) => json(httpStatusFor(error.code, error.reason), toStatusJson(error));
    const answer = async () => {
      if (!adminHostAllowed(req.headers.host, allowedHosts)) {
        // Once per name (a page trying again and again would fill the log), for the operator whose scraper uses it.
        const host = String(req.headers.host).slice(0, 100);
        if (refusedHosts.size < 100 && !refusedHosts.has(host)) {
          refusedHosts.add(host);
          options.logger.warn({ host, path: shown() }, "admin request refused: its Host is not an address, localhost or in ORDERLY_ADMIN_HOSTS");
        }
        return refuse(new OrderlyError("HOST_NOT_ALLOWED", "host not allowed (ORDERLY_ADMIN_HOSTS lists the names this port answers)"));
      }
      // HEAD is GET without the body (RFC 9110; Node leaves the body out), as on the API's port.
      if (req.method !== "GET" && req.method !== "HEAD") {
        res.setHeader("allow", "GET, HEAD");
        return refuse(new OrderlyError("METHOD_NOT_ALLOWED", `${req.method} is not allowed on ${shown()}: GET and HEAD only`));
      }
      if (path === "/metrics") {
        const text = await options.registry.metrics();
        res.writeHead(200, { "content-type": options.registry.contentType });
        return res.end(text);
      }
      if (path === "/status.json") return json(200, await options.status());
      if (path === "/status" && options.statusPage !== undefined) {
        res.writeHead(200, { "content-type": "text/html; charset=utf-8", "cache-control": "no-store" });
        return res.end(options.statusPage);
      }
      if (path === "/healthz") {
        // One reading of the checks for both, so the verdict and the checks shown cannot disagree.
        const checks = options.health.report();
        const status = options.health.verdict(checks);
        return json(status === "not ready" ? 503 : 200, { status, checks });
      }
      const paths = ["/metrics", "/healthz", "/status.json", ...(options.statusPage === undefined ? [] : ["/status"])];
      return refuse(new OrderlyError("ROUTE_NOT_FOUND", `no admin endpoint at ${shown()}; there are ${paths.join(", ")}`));
    };
    answer().catch((error: unknown) => {
      options.logger.error({ err: error, path: shown() }, "admin request failed");
      if (!res.headersSent) refuse(new OrderlyError("INTERNAL", "internal error"));
      else res.destroy();
    });
  });
  server.maxHeadersCount = 0;
  await listen(server, options.port, options.host, options.logger, "admin", options.portSetting);
  const address = server.address();
  return {
    port: typeof address === "object" && address ? address.port : options.port,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

/**
 * Whether a request's Host is one an operator or scraper uses for an admin
 * port: an IP address, localhost (or a name under .localhost), or a name in
 * `allowed` ("*" allows any). A browser sends the name of the page's own
 * site, so a page whose name was made to point at this port (DNS rebinding)
 * cannot read /status.json. A request without Host (HTTP/1.0) comes from no
 * browser and is answered.
 */
export function adminHostAllowed(host: string | undefined, allowed: ReadonlySet<string>): boolean {
  if (host === undefined || allowed.has("*")) return true;
  // Two Hosts, joined: neither is believed.
  if (host.includes(",")) return false;
  const close = host.startsWith("[") ? host.indexOf("]") : -1;
  if (host.startsWith("[") && close < 0) return false;
  const name = (close > 0 ? host.slice(1, close) : host.replace(/:\d*$/, "")).toLowerCase().replace(/\.$/, "");
  return isIP(name) !== 0 || name === "localhost" || name.endsWith(".localhost") || allowed.has(name);
}
