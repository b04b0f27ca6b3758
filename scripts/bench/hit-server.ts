/**
 * An HTTP server for counting what one request costs (instructions.ts):
 * `MODE=hello` answers a small JSON object like the bench's bare ceiling;
 * `MODE=gateway` runs the gateway's handler with a canned query service
 * (canned-gateway.ts), so a repeated GET of one order is a read-cache hit.
 * It prints `PORT=` and `AUTHORIZATION=`: the header every request sends (the
 * gateway needs it; the hello gets a header of the same form and ignores it,
 * as the bench's ceiling does), and answers `GET /__served` with the number of
 * requests served so far (that one not counted).
 */
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { turnOffPretenuring } from "../../shared/process/index.js";
import { cannedGateway, devAdminCredentials } from "./canned-gateway.js";

const mode = process.env.MODE ?? "hello";
let handler: (req: IncomingMessage, res: ServerResponse) => void;
if (mode === "gateway") {
  turnOffPretenuring(); // as the gateway's main does; the hello, like the bench's bare server, keeps V8's defaults
  const gateway = await cannedGateway();
  handler = gateway.handler;
  console.log(`AUTHORIZATION=${gateway.authorization}`);
} else if (mode === "hello") {
  console.log(`AUTHORIZATION=${(await devAdminCredentials()).authorization}`);
  handler = (_req, res) => {
    res.writeHead(200, { "content-type": "application/json" });
    res.end('{"hello":"world"}');
  };
} else {
  throw new Error(`MODE must be hello or gateway, not ${mode}`);
}
let served = 0;
const server = createServer((req, res) => {
  if (req.url === "/__served") return void res.end(String(served));
  served++;
  handler(req, res);
});
server.listen(0, "127.0.0.1", () => console.log(`PORT=${(server.address() as AddressInfo).port}`));
for (const signal of ["SIGTERM", "SIGINT"] as const) process.on(signal, () => server.close(() => process.exit(0)).closeAllConnections());
