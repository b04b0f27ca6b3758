/**
 * The gateway's request handler alone on read-cache hits: its own JavaScript
 * (token, rate limit, route, access rule, cache lookup, request id, metrics),
 * without Node's HTTP server, sockets or any other process. Plain objects
 * stand in for the request and response; routes, the token verifier (with
 * the dev admin's token), the cached reads, cache, metrics, load shedder and
 * rate limiter are the gateway's own. 2,000 misses go first (a canned service
 * answers them), as a gateway serves misses too, then hits are timed in
 * batches of 20,000: the best, the 25th percentile and the median batch, in
 * ns per hit.
 *
 *   node --import tsx scripts/bench/handler-hits.ts
 */
import { turnOffPretenuring } from "../../shared/process/index.js";
import { cannedGateway } from "./canned-gateway.js";

turnOffPretenuring();
const { handler, authorization, cache, close } = await cannedGateway();
const socket = { remoteAddress: "127.0.0.1", writableEnded: false };
let written = 0;
function fakeRes() {
  return {
    statusCode: 200, headersSent: false, writableFinished: false,
    writeHead(status: number, headers: Record<string, unknown>) { this.statusCode = status; this.headersSent = true; written += Object.keys(headers).length; return this; },
    setHeader() {}, end(body: string) { written += body.length; this.writableFinished = true; },
    once() { return this; }, on() { return this; }, off() { return this; }, destroy() {},
  };
}
function fakeReq(url: string, auth = authorization) {
  return { url, method: "GET", headers: { host: "127.0.0.1:8080", authorization: auth }, socket, on() { return this; }, once() { return this; }, off() { return this; }, resume() {} };
}
/** A new flat copy of a string, as Node's HTTP parser makes one per request (its hash is not computed yet). */
const fresh = (text: string) => Buffer.from(text, "latin1").toString("latin1");
const ids = Array.from({ length: 64 }, (_, i) => `0193f0a0-0000-7000-8000-${String(i).padStart(12, "0")}`);
// Misses: every id once (fills), and 2000 more ids never cached (as a gateway serving uncached reads too).
for (let i = 0; i < 2000; i++) {
  handler(fakeReq(`/v1/orders/${i < 64 ? ids[i] : `0193f0a0-0000-7000-9000-${String(i).padStart(12, "0")}`}`) as never, fakeRes() as never);
  if (i % 100 === 0) await new Promise((r) => setImmediate(r));
}
await new Promise((r) => setTimeout(r, 50));
const batches: number[] = [];
const N = 20000;
for (let b = 0; b < Number(process.env.BATCHES ?? 60); b++) {
  // Each request's target and Authorization header are new strings, made before the clock starts.
  const urls = Array.from({ length: N }, (_, i) => fresh(`/v1/orders/${ids[i & 63]}`));
  const auths = Array.from({ length: N }, () => fresh(authorization));
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < N; i++) handler(fakeReq(urls[i]!, auths[i]!) as never, fakeRes() as never);
  batches.push(Number(process.hrtime.bigint() - t0) / N);
  await new Promise((r) => setImmediate(r));
}
if (cache.stats.hits < Number(process.env.BATCHES ?? 60) * N) throw new Error(`only ${cache.stats.hits} of the timed requests were cache hits: the setup is wrong`);
batches.sort((a, b) => a - b);
console.log(`hit: best ${batches[0]!.toFixed(0)} ns, p25 ${batches[Math.floor(batches.length / 4)]!.toFixed(0)} ns, median ${batches[batches.length >> 1]!.toFixed(0)} ns; hits ${cache.stats.hits} (written ${written})`);
close();
