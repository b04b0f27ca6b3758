import * as grpc from "@grpc/grpc-js";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { expect, test } from "vitest";
import { Health } from "../../proto/gen/grpc/health/v1/health_pb.js";
import { writeDevCertificates } from "../../scripts/dev-security.js";
import { callUnary, tlsChannel } from "./client.js";
import { HealthState, healthService, ServingStatus } from "./health.js";

test("TLS to a server addressed by IP works on every Node line, and its certificate is still checked against that IP", async () => {
  // The dev certificates name localhost and 127.0.0.1. One server listens on 127.0.0.1 and 127.0.0.2.
  const dir = mkdtempSync(join(tmpdir(), "orderly-tls-ip-"));
  const server = new grpc.Server();
  try {
    const certs = writeDevCertificates(dir, ["server", "client"], "Test CA");
    const ca = readFileSync(join(dir, "ca.crt"));
    const health = healthService([], new HealthState({}));
    server.addService(health.definition, health.implementation);
    const credentials = grpc.ServerCredentials.createSsl(ca, [{ private_key: readFileSync(certs.server!.keyFile), cert_chain: readFileSync(certs.server!.certFile) }], true);
    const bind = (address: string) => new Promise<number>((resolve, reject) => server.bindAsync(address, credentials, (error, port) => (error ? reject(error) : resolve(port))));
    const port = await bind("127.0.0.1:0");
    await bind(`127.0.0.2:${port}`);

    const check = async (host: string) => {
      const address = `${host}:${port}`;
      const security = tlsChannel(address, ca, readFileSync(certs.client!.keyFile), readFileSync(certs.client!.certFile));
      const client = new grpc.Client(address, security.credentials, security.options);
      try {
        return ServingStatus[(await callUnary(client, Health.method.check, { service: "" }, { deadline: Date.now() + 5000 })).status];
      } catch (error) {
        return (error as Error).message;
      } finally {
        client.close();
      }
    };
    expect(await check("127.0.0.1")).toBe("SERVING");
    expect(await check("localhost")).toBe("SERVING");
    // The same server, at an address its certificate does not name: refused.
    expect(await check("127.0.0.2")).toMatch(/unavailable/);
  } finally {
    server.forceShutdown();
    rmSync(dir, { recursive: true, force: true });
  }
});
