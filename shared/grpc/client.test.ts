import * as grpc from "@grpc/grpc-js";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { expect, test } from "vitest";
import { Health } from "../../proto/gen/grpc/health/v1/health_pb.js";
import { writeDevCertificates } from "../../scripts/dev-security.js";
import { callUnary, tlsChannel } from "./client.js";
import { HealthState, healthService, ServingStatus } from "./health.js";
import { httpStatusFor, type OrderlyError } from "../errors/index.js";
import { InventoryService } from "../../proto/gen/orderly/inventory/v1/inventory_pb.js";
import type { TlsFiles } from "../security/config.js";
import { tempDir } from "../../test/helpers/temp-dir.js";

test("TLS to a server addressed by IP works on every Node line, and its certificate is still checked: against that IP, and up to the CA", async () => {
  // The dev certificates name localhost and 127.0.0.1. One server listens on 127.0.0.1 and 127.0.0.2
  // (Linux answers the whole of 127/8 on loopback); another, with a certificate of another CA, on 127.0.0.1.
  using temp = tempDir("orderly-tls-ip-");
  const dir = temp.path;
  const servers: grpc.Server[] = [];
  try {
    const certs = writeDevCertificates(join(dir, "ours"), ["server", "client"], "Test CA");
    const rogue = writeDevCertificates(join(dir, "other"), ["server"], "Another CA")["server"]!;
    const ca = readFileSync(join(dir, "ours", "ca.crt"));
    const serve = (files: TlsFiles) => {
      const server = new grpc.Server();
      servers.push(server);
      const health = healthService([], new HealthState({}));
      server.addService(health.definition, health.implementation);
      const credentials = grpc.ServerCredentials.createSsl(readFileSync(files.caFile), [{ private_key: readFileSync(files.keyFile), cert_chain: readFileSync(files.certFile) }], false);
      return (address: string) => new Promise<number>((resolve, reject) => server.bindAsync(address, credentials, (error, port) => (error ? reject(error) : resolve(port))));
    };
    const bindOurs = serve(certs.server!);
    const port = await bindOurs("127.0.0.1:0");
    await bindOurs(`127.0.0.2:${port}`);
    const roguePort = await serve(rogue)("127.0.0.1:0");

    /** SERVING, or why the connection was refused. */
    const check = async (address: string) => {
      const security = tlsChannel(address, ca, readFileSync(certs.client!.keyFile), readFileSync(certs.client!.certFile));
      const client = new grpc.Client(address, security.credentials, security.options);
      try {
        return ServingStatus[(await callUnary(client, Health.method.check, { service: "" }, { deadline: Date.now() + 5000 })).status];
      } catch (error) {
        return String(((error as OrderlyError).cause as Error | undefined)?.message);
      } finally {
        client.close();
      }
    };
    expect(await check(`127.0.0.1:${port}`)).toBe("SERVING");
    expect(await check(`ipv4:127.0.0.1:${port}`)).toBe("SERVING");
    expect(await check(`localhost:${port}`)).toBe("SERVING");
    // The same server, at an address its certificate does not name; a server whose certificate names the address but is not of our CA.
    expect(await check(`127.0.0.2:${port}`)).toMatch(/IP: 127\.0\.0\.2 is not in the cert's list/);
    expect(await check(`127.0.0.1:${roguePort}`)).toMatch(/self[- ]signed|unable to (get|verify)/i);
  } finally {
    for (const server of servers) server.forceShutdown();
  }
});

test("an RPC the server does not have (a service older than its caller's protos) is NOT_IMPLEMENTED, HTTP 501: not a 405 about the client's method", async () => {
  const server = new grpc.Server();
  const health = healthService([], new HealthState({}));
  server.addService(health.definition, health.implementation);
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync("127.0.0.1:0", grpc.ServerCredentials.createInsecure(), (error, bound) => (error ? reject(error) : resolve(bound))),
  );
  const client = new grpc.Client(`127.0.0.1:${port}`, grpc.credentials.createInsecure());
  try {
    const error = (await callUnary(client, InventoryService.method.getItem, { sku: "MUG-1" }, { deadline: Date.now() + 5000 }).catch((e: unknown) => e)) as OrderlyError;
    expect({ reason: error.reason, status: httpStatusFor(error.code, error.reason) }).toEqual({ reason: "NOT_IMPLEMENTED", status: 501 });
  } finally {
    client.close();
    server.forceShutdown();
  }
});
