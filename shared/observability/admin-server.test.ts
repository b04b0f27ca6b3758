import { request } from "node:http";
import { hostname } from "node:os";
import { Registry } from "prom-client";
import { expect, test } from "vitest";
import { rawExchange } from "../../test/helpers/raw-http.js";
import { reasonOf } from "../../test/helpers/system.js";
import { HealthState } from "../grpc/index.js";
import { createLogger, silentLogger } from "../logging/index.js";
import { adminHostAllowed, startAdminServer } from "./admin-server.js";
import { registerHealthMetric } from "./metrics.js";

test("the admin endpoints answer GET and HEAD (headers only), and any other method 405 with Allow", async () => {
  const admin = await startAdminServer({ host: "127.0.0.1", port: 0, registry: new Registry(), status: async () => ({ ok: true }), health: new HealthState({}), logger: silentLogger() });
  await using _admin = { [Symbol.asyncDispose]: () => admin.close() };
  const url = `http://127.0.0.1:${admin.port}`;
  for (const path of ["/metrics", "/healthz", "/status.json"]) {
    const get = await fetch(url + path);
    const head = await fetch(url + path, { method: "HEAD" });
    expect({ path, get: get.status, head: head.status, headBody: await head.text(), type: head.headers.get("content-type") }).toEqual({
      path,
      get: 200,
      head: 200,
      headBody: "",
      type: get.headers.get("content-type"),
    });
    await get.text();
  }
  // Refusals are google.rpc.Status bodies with a reason, as everywhere else.
  const post = await fetch(`${url}/metrics`, { method: "POST" });
  expect({ status: post.status, allow: post.headers.get("allow"), reason: reasonOf((await post.json()) as Parameters<typeof reasonOf>[0]) }).toEqual({ status: 405, allow: "GET, HEAD", reason: "METHOD_NOT_ALLOWED" });
  const unknown = await fetch(`${url}/nothing`);
  const body = (await unknown.json()) as { code: number; message: string; details: { reason?: string }[] };
  expect({ status: unknown.status, code: body.code, reason: reasonOf(body), message: body.message }).toEqual({
    status: 404,
    code: 5,
    reason: "ROUTE_NOT_FOUND",
    message: "no admin endpoint at /nothing; there are /metrics, /healthz, /status.json",
  });
});

/** GET with a Host header of our choosing (fetch sends the URL's). */
function getWithHost(port: number, path: string, host: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: "127.0.0.1", port, path, headers: { host } }, (res) => {
      let body = "";
      res.setEncoding("utf8").on("data", (chunk: string) => (body += chunk));
      res.on("end", () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on("error", reject).end();
  });
}

test("the admin port answers an address, localhost, this machine's name and ORDERLY_ADMIN_HOSTS, and refuses any other Host (DNS rebinding)", async () => {
  const admin = await startAdminServer({
    host: "127.0.0.1",
    port: 0,
    registry: new Registry(),
    status: async () => ({ secret: "pids and addresses" }),
    health: new HealthState({}),
    logger: silentLogger(),
    allowedHosts: ["order"],
  });
  await using _admin = { [Symbol.asyncDispose]: () => admin.close() };
  const answered = [`127.0.0.1:${admin.port}`, "127.0.0.1", `[::1]:${admin.port}`, `localhost:${admin.port}`, "LOCALHOST.", `app.localhost:${admin.port}`, `${hostname()}:${admin.port}`, `order:${admin.port}`, `10.1.2.3:9051`];
  for (const host of answered) expect({ host, ...(await getWithHost(admin.port, "/status.json", host)) }).toEqual({ host, status: 200, body: JSON.stringify({ secret: "pids and addresses" }) });
  for (const host of [`attacker.example:${admin.port}`, "127.0.0.1.nip.io", `orders:${admin.port}`, "localhost.attacker.example", "[::1"]) {
    for (const path of ["/status.json", "/metrics", "/healthz"]) {
      const answer = await getWithHost(admin.port, path, host);
      expect({ host, path, status: answer.status, reason: reasonOf(JSON.parse(answer.body)), leaked: answer.body.includes("pids") }).toEqual({ host, path, status: 403, reason: "HOST_NOT_ALLOWED", leaked: false });
    }
  }
});

test("a token pasted into an admin path is neither logged nor echoed: its messages and the refused Host's line show `…`", async () => {
  const lines: string[] = [];
  const logger = createLogger("order", "info", { write: (line: string) => void lines.push(line) });
  const admin = await startAdminServer({ host: "127.0.0.1", port: 0, registry: new Registry(), status: async () => ({ ok: true }), health: new HealthState({}), logger });
  await using _admin = { [Symbol.asyncDispose]: () => admin.close() };
  const url = `http://127.0.0.1:${admin.port}`;
  const secret = "SECRET.eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJvcGVyYXRvciJ9.c2lnbmF0dXJlLW9mLXRoZS10b2tlbg";
  const notFound = (await (await fetch(`${url}/metrics/${secret}`)).json()) as { message: string };
  const notAllowed = (await (await fetch(`${url}/metrics;token=${secret}`, { method: "POST" })).json()) as { message: string };
  const refused = await getWithHost(admin.port, `/status.json/${secret}`, "attacker.example");
  expect({ notFound: notFound.message, notAllowed: notAllowed.message, refused: refused.status }).toEqual({
    notFound: "no admin endpoint at /metrics/…; there are /metrics, /healthz, /status.json",
    notAllowed: "POST is not allowed on /…: GET and HEAD only",
    refused: 403,
  });
  expect(lines.map((line) => JSON.parse(line) as { path?: string }).map(({ path }) => path)).toEqual(["/status.json/…"]);
  expect(lines.join("\n")).not.toContain("SECRET");
});

test("the admin port believes neither of two Hosts, however many headers are between them, and answers a request without Host as HTTP/1.0's", async () => {
  const admin = await startAdminServer({ host: "127.0.0.1", port: 0, registry: new Registry(), status: async () => ({ ok: true }), health: new HealthState({}), logger: silentLogger() });
  await using _admin = { [Symbol.asyncDispose]: () => admin.close() };
  for (const between of ["", "x: 1\r\n".repeat(2100)]) {
    const answer = await rawExchange(admin.port, `GET /status.json HTTP/1.1\r\nhost: localhost\r\n${between}host: rebound.example\r\nconnection: close\r\n\r\n`);
    expect(answer).toMatch(/^HTTP\/1\.1 403 /);
    expect(answer).toContain('"reason":"HOST_NOT_ALLOWED"');
  }
  const without = await rawExchange(admin.port, "GET /status.json HTTP/1.1\r\nconnection: close\r\n\r\n");
  expect(without).toMatch(/^HTTP\/1\.1 200 /);
  expect(without).toContain('{"ok":true}');
});

test("ORDERLY_ADMIN_HOSTS=* answers any Host", () => {
  expect([adminHostAllowed("anything.example", new Set(["*"])), adminHostAllowed("anything.example", new Set()), adminHostAllowed(undefined, new Set())]).toEqual([true, false, true]);
  // An empty Host names nothing an operator uses.
  expect(adminHostAllowed("", new Set())).toBe(false);
});

test("/healthz is ok while every check holds, degraded (200) while only a degrading one fails, not ready (503) while a required one fails; orderly_ready follows readiness", async () => {
  const up = { database: true, nats: true };
  const health = new HealthState({ database: () => up.database, nats: () => up.nats }, { degrading: ["nats"] });
  const registry = new Registry();
  registerHealthMetric(registry, health);
  const admin = await startAdminServer({ host: "127.0.0.1", port: 0, registry, status: async () => ({ ok: true }), health, logger: silentLogger() });
  await using _admin = { [Symbol.asyncDispose]: () => admin.close() };
  const healthz = async () => {
    const answer = await fetch(`http://127.0.0.1:${admin.port}/healthz`);
    const ready = /^orderly_ready\{check="all"\} (\d)$/m.exec(await (await fetch(`http://127.0.0.1:${admin.port}/metrics`)).text())?.[1];
    return { status: answer.status, body: (await answer.json()) as unknown, serving: health.serving(), ready };
  };
  expect(await healthz()).toEqual({ status: 200, body: { status: "ok", checks: { database: true, nats: true } }, serving: true, ready: "1" });
  up.nats = false;
  expect(await healthz()).toEqual({ status: 200, body: { status: "degraded", checks: { database: true, nats: false } }, serving: true, ready: "1" });
  up.database = false;
  expect(await healthz()).toEqual({ status: 503, body: { status: "not ready", checks: { database: false, nats: false } }, serving: false, ready: "0" });
});
