/**
 * HTTP/1.1 load over raw keep-alive sockets, in two modes:
 *
 * - closed loop (`runClosedLoop`): N connections, each sending its next
 *   request when the previous answer arrives, for a duration or an amount —
 *   the maximum throughput. At the end no new request is sent and the ones in
 *   flight are allowed to finish: the run never hangs up on a request.
 * - open loop (`runOpenLoop`): request i is due at start + i/rate whatever
 *   happened before it; its latency is measured from that due time (a stalled
 *   server is not hidden by requests never sent: no coordinated omission).
 *
 * Why not autocannon: it ends a run by destroying its connections with
 * requests in flight (clients hanging up), and Orderly's gateway counts
 * five of those in a row as a failing dependency and opens its breaker for
 * 5 s, so the run after a saturation run would measure 503s; and its
 * `overallRate` lets each connection send its per-second quota back to back
 * at the start of every second, so a "half load" run is a full-load burst
 * for half of every second.
 */
import { connect, type Socket } from "node:net";
import type { HttpRequest } from "./requests.js";

/** Latency percentiles (ms). */
export interface LatencySummary {
  p50: number;
  p90: number;
  p95: number;
  p97_5: number;
  p99: number;
  max: number;
  mean: number;
}

/** What a run measured. */
export interface LoadRunResult {
  /** Requests sent. */
  sent: number;
  /** Responses with a 2xx status. */
  ok: number;
  /** 2xx responses the gateway answered from its read cache (`x-cache: hit`). */
  cacheHits: number;
  non2xx: number;
  /** Connection errors and requests without an answer by the end. */
  errors: number;
  /** Status codes seen, with counts. */
  statuses: Record<string, number>;
  /** 2xx responses per second within the measured window. */
  rps: number;
  /** Length of the measured window (s). */
  durationS: number;
  /** Latency of 2xx responses (closed loop: from sending; open loop: from the due time). */
  latencyMs: LatencySummary;
  connectionsOpened: number;
  /** The first non-2xx response (status line, headers, start of the body), to tell why. */
  firstFailure?: string;
}

/** A closed-loop run. */
export interface ClosedLoopOptions {
  host: string;
  port: number;
  connections: number;
  /** Run this long (ms)… */
  durationMs?: number;
  /** …or send exactly this many requests. */
  amount?: number;
  /** A request still unanswered this long after the end counts as an error (ms). */
  timeoutMs: number;
  /** Sent as `authorization: Bearer <token>` on every request, when set. */
  token?: string;
  next: () => HttpRequest;
}

/** An open-loop run. */
export interface OpenLoopOptions {
  host: string;
  port: number;
  /** Requests per second. */
  rate: number;
  durationMs: number;
  /** Most connections open at once (requests queue beyond that, and their wait counts). */
  maxConnections: number;
  timeoutMs: number;
  /** Sent as `authorization: Bearer <token>` on every request, when set. */
  token?: string;
  next: () => HttpRequest;
}

/** An open-loop result: the closed-loop fields, plus the rate asked for and how many requests waited for a connection. */
export interface OpenLoopResult extends LoadRunResult {
  rate: number;
  due: number;
  maxQueued: number;
}

const HEADER_END = Buffer.from("\r\n\r\n");
const CHUNKED_END = Buffer.from("0\r\n\r\n");

type Done = (status: number, raw: Buffer, cacheHit: boolean) => void;

/** One keep-alive connection carrying one request at a time. */
class Connection {
  readonly socket: Socket;
  busy = false;
  alive = true;
  private buffer: Buffer = Buffer.alloc(0);
  private onDone: Done | undefined;

  constructor(host: string, port: number, onClose: (connection: Connection, inFlight: boolean) => void) {
    this.socket = connect({ host, port, noDelay: true });
    this.socket.on("data", (chunk: Buffer) => this.receive(chunk));
    this.socket.on("error", () => {
      // "close" follows and reports it.
    });
    this.socket.on("close", () => {
      const inFlight = this.busy;
      this.alive = false;
      this.busy = false;
      onClose(this, inFlight);
    });
  }

  send(request: Buffer, onDone: Done): void {
    this.busy = true;
    this.onDone = onDone;
    this.buffer = Buffer.alloc(0);
    this.socket.write(request);
  }

  private receive(chunk: Buffer): void {
    this.buffer = this.buffer.length === 0 ? chunk : Buffer.concat([this.buffer, chunk]);
    const headerEnd = this.buffer.indexOf(HEADER_END);
    if (headerEnd < 0) return;
    const head = this.buffer.subarray(0, headerEnd).toString("latin1");
    const bodyStart = headerEnd + 4;
    const length = /\r\ncontent-length:\s*(\d+)/i.exec(head);
    let complete: boolean;
    if (length) complete = this.buffer.length >= bodyStart + Number(length[1]);
    else if (/\r\ntransfer-encoding:\s*chunked/i.test(head)) complete = this.buffer.indexOf(CHUNKED_END, bodyStart) >= 0;
    else complete = true; // no body
    if (!complete) return;
    const done = this.onDone!;
    const raw = this.buffer;
    this.busy = false;
    this.onDone = undefined;
    this.buffer = Buffer.alloc(0);
    if (/\r\nconnection:\s*close/i.test(head)) {
      this.alive = false;
      this.socket.end();
    }
    done(Number(head.slice(9, 12)), raw, /\r\nx-cache:\s*hit/i.test(head));
  }

  close(): void {
    this.socket.destroy();
  }
}

/** The wire form of requests to host:port; the header lines every request shares (host, accept, authorization) are built once. */
function requestEncoder(host: string, port: number, token: string | undefined): (request: HttpRequest) => Buffer {
  const common = `host: ${host}:${port}\r\naccept: application/json\r\n` + (token === undefined ? "" : `authorization: Bearer ${token}\r\n`);
  return (request) => {
    const body = request.body === undefined ? undefined : Buffer.from(request.body);
    const head =
      `${request.method} ${request.path} HTTP/1.1\r\n${common}${request.headers ?? ""}` +
      (body ? `content-type: application/json\r\ncontent-length: ${body.length}\r\n` : "") +
      "\r\n";
    return body ? Buffer.concat([Buffer.from(head, "latin1"), body]) : Buffer.from(head, "latin1");
  };
}

/** Counts outcomes and latencies of one run. */
class Tally {
  readonly statuses: Record<string, number> = {};
  ok = 0;
  cacheHits = 0;
  non2xx = 0;
  errors = 0;
  firstFailure: string | undefined;
  private latencies: Float64Array;
  private count = 0;

  constructor(expected: number) {
    this.latencies = new Float64Array(Math.max(1024, expected));
  }

  response(status: number, latencyMs: number, raw: Buffer, cacheHit: boolean): void {
    this.statuses[status] = (this.statuses[status] ?? 0) + 1;
    if (status >= 200 && status < 300) {
      this.ok++;
      if (cacheHit) this.cacheHits++;
      if (this.count === this.latencies.length) {
        const grown = new Float64Array(this.latencies.length * 2);
        grown.set(this.latencies);
        this.latencies = grown;
      }
      this.latencies[this.count++] = latencyMs;
    } else {
      this.non2xx++;
      this.firstFailure ??= raw.subarray(0, 800).toString("latin1");
    }
  }

  latency(): LatencySummary {
    const sorted = this.latencies.subarray(0, this.count).sort();
    const at = (p: number) => (sorted.length ? sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))]! : NaN);
    let sum = 0;
    for (const v of sorted) sum += v;
    return { p50: at(50), p90: at(90), p95: at(95), p97_5: at(97.5), p99: at(99), max: at(100), mean: sorted.length ? sum / sorted.length : NaN };
  }
}

/** Runs a closed loop; resolves when the last request in flight answered (or timed out). */
export function runClosedLoop(options: ClosedLoopOptions): Promise<LoadRunResult> {
  if (options.durationMs === undefined && options.amount === undefined) throw new Error("a closed loop needs a duration or an amount");
  const tally = new Tally(options.amount ?? 100_000);
  const encode = requestEncoder(options.host, options.port, options.token);
  const all = new Set<Connection>();
  let sent = 0;
  let inFlight = 0;
  let okInWindow = 0;
  let opened = 0;
  let lastOkAt = 0;
  const start = performance.now();
  const end = options.durationMs === undefined ? Infinity : start + options.durationMs;
  const more = () => performance.now() < end && (options.amount === undefined || sent < options.amount);

  return new Promise<LoadRunResult>((resolve) => {
    let settled = false;
    const finish = () => {
      if (settled) return;
      settled = true;
      clearTimeout(watchdog);
      clearInterval(stopper);
      for (const c of all) c.close();
      tally.errors += inFlight;
      const windowMs = options.durationMs ?? Math.max(1, lastOkAt - start);
      resolve({
        sent,
        ok: tally.ok,
        cacheHits: tally.cacheHits,
        non2xx: tally.non2xx,
        errors: tally.errors,
        statuses: tally.statuses,
        rps: okInWindow / (windowMs / 1000),
        durationS: windowMs / 1000,
        latencyMs: tally.latency(),
        connectionsOpened: opened,
        ...(tally.firstFailure === undefined ? {} : { firstFailure: tally.firstFailure }),
      });
    };
    const settleIfDone = () => {
      if (inFlight === 0 && !more()) finish();
    };
    // Bounded: the run ends timeoutMs after its end (or after the amount's expected time) whatever happens.
    const watchdog = setTimeout(finish, (options.durationMs ?? 600_000) + options.timeoutMs);
    // Ends a run whose connections all died (nothing in flight to trigger the check).
    const stopper = setInterval(settleIfDone, 100);
    const sendOn = (c: Connection) => {
      if (!c.alive || !more()) return settleIfDone();
      sent++;
      inFlight++;
      const sentAt = performance.now();
      c.send(encode(options.next()), (status, raw, cacheHit) => {
        inFlight--;
        const now = performance.now();
        tally.response(status, now - sentAt, raw, cacheHit);
        if (status >= 200 && status < 300 && now <= end) {
          okInWindow++;
          lastOkAt = now;
        }
        sendOn(c);
      });
    };
    const open = () => {
      const c = new Connection(options.host, options.port, (closed, wasInFlight) => {
        all.delete(closed);
        if (wasInFlight) {
          inFlight--;
          tally.errors++;
        }
        if (!settled && more()) setTimeout(open, 10); // keep the concurrency
        else settleIfDone();
      });
      opened++;
      all.add(c);
      sendOn(c);
    };
    for (let i = 0; i < options.connections; i++) open();
  });
}

/** Sends `rate` requests per second for `durationMs`, open loop; resolves when every request answered or timed out. */
export function runOpenLoop(options: OpenLoopOptions): Promise<OpenLoopResult> {
  const due = Math.max(1, Math.round((options.rate * options.durationMs) / 1000));
  const intervalMs = 1000 / options.rate;
  const tally = new Tally(due);
  const encode = requestEncoder(options.host, options.port, options.token);
  let finished = 0;
  let sent = 0;
  let nextIndex = 0;
  let maxQueued = 0;
  let opened = 0;
  let lastResponseAt = 0;
  const queue: number[] = []; // due times of requests waiting for a connection
  let queueHead = 0;
  const idle: Connection[] = [];
  const all = new Set<Connection>();
  const start = performance.now() + 20;

  return new Promise<OpenLoopResult>((resolve) => {
    let timer: NodeJS.Timeout | undefined;
    let settled = false;
    const finish = () => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      clearTimeout(watchdog);
      for (const c of all) c.close();
      tally.errors += due - finished;
      const spanMs = Math.max(1, (lastResponseAt || performance.now()) - start);
      resolve({
        rate: options.rate,
        due,
        sent,
        ok: tally.ok,
        cacheHits: tally.cacheHits,
        non2xx: tally.non2xx,
        errors: tally.errors,
        statuses: tally.statuses,
        rps: tally.ok / (spanMs / 1000),
        durationS: spanMs / 1000,
        latencyMs: tally.latency(),
        connectionsOpened: opened,
        maxQueued,
        ...(tally.firstFailure === undefined ? {} : { firstFailure: tally.firstFailure }),
      });
    };
    // Bounded: the run ends timeoutMs after its last request was due, whatever happens.
    const watchdog = setTimeout(finish, options.durationMs + options.timeoutMs + 100);
    const onClose = (connection: Connection, inFlight: boolean) => {
      all.delete(connection);
      const at = idle.indexOf(connection);
      if (at >= 0) idle.splice(at, 1);
      if (inFlight && !settled) {
        tally.errors++;
        finished++;
        if (finished === due) finish();
      }
      dispatch();
    };
    const dispatch = () => {
      while (queueHead < queue.length) {
        let connection = idle.pop();
        if (connection === undefined) {
          if (all.size >= options.maxConnections) break;
          connection = new Connection(options.host, options.port, onClose);
          opened++;
          all.add(connection);
        }
        if (!connection.alive) continue;
        const dueAt = queue[queueHead++]!;
        const c = connection;
        sent++;
        c.send(encode(options.next()), (status, raw, cacheHit) => {
          const now = performance.now();
          lastResponseAt = now;
          finished++;
          tally.response(status, now - dueAt, raw, cacheHit);
          idle.push(c);
          if (finished === due) finish();
          else dispatch();
        });
      }
      if (queueHead > 4096 && queueHead * 2 > queue.length) {
        queue.splice(0, queueHead);
        queueHead = 0;
      }
    };
    const tick = () => {
      if (settled) return;
      const now = performance.now();
      while (nextIndex < due && start + nextIndex * intervalMs <= now) {
        queue.push(start + nextIndex * intervalMs);
        nextIndex++;
      }
      maxQueued = Math.max(maxQueued, queue.length - queueHead);
      dispatch();
      if (nextIndex < due) timer = setTimeout(tick, Math.max(0, start + nextIndex * intervalMs - performance.now()));
    };
    // Open a few connections ahead so the first requests do not pay for the handshake.
    for (let i = 0; i < Math.min(options.maxConnections, 8); i++) {
      const c = new Connection(options.host, options.port, onClose);
      opened++;
      all.add(c);
      idle.push(c);
    }
    timer = setTimeout(tick, 20);
  });
}
