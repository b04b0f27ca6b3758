import { expect, test } from "vitest";
import { processTable, readLocalRunConfig } from "./local-run.js";

/** What each process of a local run is told to reach the others at, and where the supervisor finds the gateway. */
function addressesUnder(env: Record<string, string>): { host: string; addresses: Record<string, string> } {
  const config = readLocalRunConfig(env, false);
  const ports = { nats: 4222, inventory: 50052, order: 50051, query: 50053, "order-admin": 9051, "inventory-admin": 9052, "query-admin": 9053 };
  const addresses: Record<string, string> = {};
  for (const spec of processTable(config)) {
    for (const [key, value] of Object.entries(spec.env?.(ports) ?? {})) if (/_ADDRESS$|^NATS_URL$/.test(key)) addresses[`${spec.name} ${key}`] = value;
  }
  return { host: config.host, addresses };
}

test("npm start reaches its processes where ORDERLY_BIND_HOST binds them (an IPv6 address in brackets), the loopback for a wildcard; its nats-server stays on the loopback", () => {
  const loopback = addressesUnder({});
  expect(loopback.host).toBe("127.0.0.1");
  expect(loopback.addresses["gateway ORDER_ADDRESS"]).toBe("127.0.0.1:50051");
  expect(addressesUnder({ ORDERLY_BIND_HOST: "0.0.0.0" }).host).toBe("127.0.0.1");
  expect(addressesUnder({ ORDERLY_BIND_HOST: "::" }).host).toBe("127.0.0.1");

  const { host, addresses } = addressesUnder({ ORDERLY_BIND_HOST: "::1" });
  expect(host).toBe("[::1]");
  expect(addresses).toMatchObject({
    "inventory ORDER_ADDRESS": "[::1]:50051",
    "order INVENTORY_ADDRESS": "[::1]:50052",
    "gateway QUERY_ADDRESS": "[::1]:50053",
    "gateway ORDER_ADMIN_ADDRESS": "[::1]:9051",
    "order NATS_URL": "nats://127.0.0.1:4222",
  });
  expect(addressesUnder({ ORDERLY_BIND_HOST: "192.168.1.20" }).addresses["gateway INVENTORY_ADDRESS"]).toBe("192.168.1.20:50052");
});
