import type { Socket } from "node:net";
// nats.js's Node transport and connection, as its own connect() puts them together (the package exports neither).
import { NatsConnectionImpl } from "nats/lib/nats-base-client/nats.js";
import { setTransportFactory } from "nats/lib/nats-base-client/transport.js";
import { NodeTransport, nodeResolveHost } from "nats/lib/src/node_transport.js";
import type { ConnectionOptions, NatsConnection } from "nats";

/**
 * nats.js's Node transport, except that a connection attempt nats.js gives
 * up (its handshake timed out: the server hangs) is ended for good. nats.js's
 * own leaves the socket open: once the server answers, the attempt completes
 * in the background, and when the server then closes it (no CONNECT within
 * its auth timeout) nats.js takes that for the end of the live connection,
 * drops it and reconnects, leaving its socket open and unread. After a hang,
 * each process dropped its live connection 2 s after the server resumed, once
 * per attempt given up meanwhile. The same leak is reported upstream for
 * nats.js 3 (nats-io/nats.js#64, "Timed out connections leak a socket");
 * nats 2.29.3, pinned here, has no fix, hence this subclass of its internals.
 */
class HandshakeBoundTransport extends NodeTransport {
  private givenUp = false;

  override async dial(hp: { hostname: string; port: number }): Promise<Socket> {
    const socket = await super.dial(hp);
    if (this.givenUp) {
      socket.destroy();
      throw new Error("connection attempt given up");
    }
    return socket;
  }

  override async connect(hp: { hostname: string; port: number; tlsName: string }, options: ConnectionOptions): Promise<void> {
    await super.connect(hp, options);
    // Given up in the turn the handshake ended: ended without a word (a close would report the connection lost).
    if (this.givenUp) {
      this.socket.removeAllListeners();
      this.socket.destroy();
      throw new Error("connection attempt given up");
    }
  }

  override close(err?: Error): Promise<void> {
    if (!this.connected) {
      // Before its handshake: nats.js's close ignores it. The socket goes now, and one still being opened once it is.
      this.givenUp = true;
      this.socket?.destroy();
    }
    return super.close(err);
  }
}

/**
 * nats.js's connect() with HandshakeBoundTransport. The transport factory is
 * nats.js's global: a plain connect() in the same process sets nats.js's own
 * again, for every connection's next attempt.
 */
export function connectBounded(options: ConnectionOptions): Promise<NatsConnection> {
  setTransportFactory({ factory: () => new HandshakeBoundTransport(), dnsResolveFn: nodeResolveHost });
  return NatsConnectionImpl.connect(options);
}
