/**
 * Ceiling 1: a bare node:http server answering a small JSON object — the
 * most a Node.js HTTP process on this machine serves, with nothing else in
 * the way. It gets the same request bytes as Orderly's gateway, Authorization
 * header included, and ignores them. Prints {"msg":"listening","port"}
 * (test/helpers/processes.ts reads it).
 */
import { createServer } from "node:http";

const payload = Buffer.from(JSON.stringify({ hello: "world", service: "bench-ceiling" }));
const server = createServer((req, res) => {
  // Drain any body, as any server must, then answer.
  req.resume();
  res.writeHead(200, { "content-type": "application/json; charset=utf-8", "content-length": payload.length });
  res.end(payload);
});
server.listen(0, "127.0.0.1", () => {
  const address = server.address();
  console.log(JSON.stringify({ msg: "listening", port: typeof address === "object" && address ? address.port : 0 }));
});
const stop = () => {
  server.close(() => process.exit(0));
  server.closeAllConnections();
};
process.on("SIGTERM", stop);
process.on("SIGINT", stop);
