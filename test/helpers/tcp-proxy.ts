import { connect, createServer, type AddressInfo, type Socket } from "node:net";
import { performance } from "node:perf_hooks";

/**
 * A TCP proxy on 127.0.0.1 between two real processes, whose behaviour a
 * fault-injection test switches while traffic flows. A switch applies to
 * existing connections as well as new ones.
 */
export interface TcpProxy extends AsyncDisposable {
  /** The port it listens on (a free one). */
  readonly port: number;
  /** "127.0.0.1:<port>", ready for a gRPC client. */
  readonly address: string;
  /** Passes traffic through unchanged (the default); releases at once any bytes held by blackhole(). */
  pass(): void;
  /** Delays every chunk arriving from now on, in both directions, by ms (order kept per direction); held bytes go ms after the switch. */
  delay(ms: number): void;
  /** Resets (TCP RST) every open connection now, and every new one as soon as it is accepted. */
  reset(): void;
  /** Forwards nothing either way, like a hung peer: connections are accepted and bytes (and FINs) are held, not dropped, until pass() or delay(). */
  blackhole(): void;
  /** Connections accepted and still open, bytes forwarded to the target (up) and back to clients (down), and bytes read but not yet forwarded (held). */
  stats(): TcpProxyStats;
  /** Stops listening and destroys every connection and timer; safe to call twice. */
  close(): Promise<void>;
}

/** Counters of a TcpProxy. */
export interface TcpProxyStats {
  /** Connections accepted since the start, reset ones included. */
  accepted: number;
  /** Connections whose sockets are not both closed yet. */
  open: number;
  /** Bytes forwarded from clients to the target. */
  bytesUp: number;
  /** Bytes forwarded from the target to clients. */
  bytesDown: number;
  /** Bytes read but not forwarded yet (delayed or held by blackhole()). */
  bytesHeld: number;
}

type Mode = { kind: "pass" } | { kind: "delay"; ms: number } | { kind: "reset" } | { kind: "blackhole" };

/** A chunk waiting to be forwarded; `null` stands for the end of the stream (FIN). */
interface Pending {
  chunk: Buffer | null;
  dueAt: number;
}

/** One direction of a connection: chunks queue in order and each leaves at its due time (Infinity while held). */
interface Lane {
  /** Gives held chunks a due time afterMs from now. */
  release(afterMs: number): void;
  /** Drops the queue and its timer. */
  stop(): void;
  /** Bytes queued, not yet forwarded. */
  held(): number;
}

function lane(from: Socket, to: Socket, holdMs: () => number, count: (bytes: number) => void): Lane {
  const queue: Pending[] = [];
  let timer: NodeJS.Timeout | undefined;
  let waitingForDrain = false;
  let heldBytes = 0;

  const flush = () => {
    clearTimeout(timer);
    timer = undefined;
    while (queue.length > 0) {
      const head = queue[0]!;
      const wait = head.dueAt - performance.now();
      if (wait > 0) {
        if (Number.isFinite(wait)) timer = setTimeout(flush, Math.ceil(wait));
        return;
      }
      queue.shift();
      heldBytes -= head.chunk?.length ?? 0;
      if (to.destroyed) continue;
      if (head.chunk === null) {
        to.end();
        continue;
      }
      count(head.chunk.length);
      if (!to.write(head.chunk) && !waitingForDrain) {
        waitingForDrain = true;
        from.pause();
        to.once("drain", () => {
          waitingForDrain = false;
          from.resume();
        });
      }
    }
  };
  const push = (chunk: Buffer | null) => {
    queue.push({ chunk, dueAt: performance.now() + holdMs() });
    heldBytes += chunk?.length ?? 0;
    flush();
  };
  from.on("data", (chunk: Buffer) => push(chunk));
  from.on("end", () => push(null));
  return {
    release(afterMs) {
      const dueAt = performance.now() + afterMs;
      for (const pending of queue) if (pending.dueAt === Infinity) pending.dueAt = dueAt;
      flush();
    },
    stop() {
      clearTimeout(timer);
      timer = undefined;
      queue.length = 0;
      heldBytes = 0;
    },
    held: () => heldBytes,
  };
}

/** One accepted connection: the client's socket, the socket to the target, and the two lanes between them. */
interface Proxied {
  client: Socket;
  upstream: Socket | undefined;
  lanes: Lane[];
  /** Settles once both sockets have closed. */
  closed: Promise<void>;
}

/** Settles when the socket has closed (at once if it has). */
function closed(socket: Socket): Promise<void> {
  return new Promise((resolve) => (socket.closed ? resolve() : socket.once("close", () => resolve())));
}

/** Starts a proxy to target on a free port of 127.0.0.1, passing traffic through; `await using` closes it. */
export async function startTcpProxy(target: { host: string; port: number }): Promise<TcpProxy> {
  let mode: Mode = { kind: "pass" };
  const connections = new Set<Proxied>();
  const counters = { accepted: 0, bytesUp: 0, bytesDown: 0 };
  let closing: Promise<void> | undefined;

  const holdMs = () => (mode.kind === "delay" ? mode.ms : mode.kind === "blackhole" ? Infinity : 0);

  const track = (connection: Proxied) => {
    connections.add(connection);
    void connection.closed.then(() => {
      for (const l of connection.lanes) l.stop();
      connections.delete(connection);
    });
  };

  const destroy = (connection: Proxied, how: "reset" | "destroy") => {
    for (const l of connection.lanes) l.stop();
    if (how === "reset" && !connection.client.destroyed) connection.client.resetAndDestroy();
    else connection.client.destroy();
    connection.upstream?.destroy();
  };

  const server = createServer({ allowHalfOpen: true }, (client) => {
    counters.accepted += 1;
    if (mode.kind === "reset") {
      const connection: Proxied = { client, upstream: undefined, lanes: [], closed: closed(client) };
      client.on("error", () => destroy(connection, "destroy"));
      track(connection);
      destroy(connection, "reset");
      return;
    }
    const upstream = connect({ host: target.host, port: target.port, allowHalfOpen: true });
    const connection: Proxied = {
      client,
      upstream,
      lanes: [
        lane(client, upstream, holdMs, (bytes) => (counters.bytesUp += bytes)),
        lane(upstream, client, holdMs, (bytes) => (counters.bytesDown += bytes)),
      ],
      closed: Promise.all([closed(client), closed(upstream)]).then(() => undefined),
    };
    client.on("error", () => destroy(connection, "destroy"));
    // The target is down or hung up abruptly: drop the client too, so it sees the failure at once.
    upstream.on("error", () => destroy(connection, "destroy"));
    track(connection);
  });

  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      server.off("error", reject);
      resolve();
    });
  });
  const port = (server.address() as AddressInfo).port;

  const release = (afterMs: number) => {
    for (const connection of connections) for (const l of connection.lanes) l.release(afterMs);
  };

  const close = () => {
    closing ??= (async () => {
      const stopped = new Promise<void>((resolve) => server.close(() => resolve()));
      const all = [...connections];
      for (const connection of all) destroy(connection, "destroy");
      await Promise.all([stopped, ...all.map((connection) => connection.closed)]);
    })();
    return closing;
  };

  return {
    port,
    address: `127.0.0.1:${port}`,
    pass() {
      mode = { kind: "pass" };
      release(0);
    },
    delay(ms) {
      if (!Number.isFinite(ms) || ms < 0) throw new RangeError(`delay must be a finite number of ms >= 0, got ${ms}`);
      mode = { kind: "delay", ms };
      release(ms);
    },
    reset() {
      mode = { kind: "reset" };
      for (const connection of connections) destroy(connection, "reset");
    },
    blackhole() {
      mode = { kind: "blackhole" };
    },
    stats() {
      let bytesHeld = 0;
      for (const connection of connections) for (const l of connection.lanes) bytesHeld += l.held();
      return { ...counters, open: connections.size, bytesHeld };
    },
    close,
    [Symbol.asyncDispose]: close,
  };
}
