import { Registry } from "prom-client";
import { expect, test } from "vitest";
import { HealthState } from "../grpc/index.js";
import { silentLogger } from "../logging/index.js";
import { startAdminServer } from "./admin-server.js";

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
  const post = await fetch(`${url}/metrics`, { method: "POST" });
  expect({ status: post.status, allow: post.headers.get("allow") }).toEqual({ status: 405, allow: "GET, HEAD" });
  await post.text();
});
