import { connect, createServer, type AddressInfo, type Socket } from "node:net";

/**
 * A proxy in front of a nats-server that passes everything through except the client's
 * publishes `drop` says to drop (given their subject and payload): they reach no one, and the client hears
 * nothing of it (no error, no "no responders"), as when the server's subscriber for that
 * subject is lost. Parses only what the client sends (its protocol is line-based: a
 * PUB or HPUB line names the subject and the size of the payload that follows).
 */
export interface NatsPublishFilter extends AsyncDisposable {
  /** "nats://127.0.0.1:<port>". */
  readonly url: string;
}

const CRLF = Buffer.from("\r\n");

/** Starts a NatsPublishFilter on a free port in front of `target`. */
export async function startNatsPublishFilter(target: { host: string; port: number }, drop: (subject: string, payload: string) => boolean): Promise<NatsPublishFilter> {
  const sockets = new Set<Socket>();
  const server = createServer((client) => {
    const upstream = connect(target.port, target.host);
    for (const socket of [client, upstream]) {
      sockets.add(socket);
      socket.on("close", () => sockets.delete(socket));
      socket.on("error", () => {
        client.destroy();
        upstream.destroy();
      });
    }
    upstream.pipe(client);
    let pending = Buffer.alloc(0);
    client.on("data", (chunk: Buffer) => {
      pending = Buffer.concat([pending, chunk]);
      for (;;) {
        const lineEnd = pending.indexOf(CRLF);
        if (lineEnd < 0) return;
        const [verb = "", subject = "", ...rest] = pending.subarray(0, lineEnd).toString("latin1").split(" ");
        const publishes = /^h?pub$/i.test(verb);
        // PUB <subject> [reply] <size>, HPUB <subject> [reply] <header size> <total size>: the payload and its CRLF follow the line.
        const size = publishes ? Number(rest[rest.length - 1]) : 0;
        if (!Number.isSafeInteger(size) || size < 0) return void client.destroy();
        const end = publishes ? lineEnd + 2 + size + 2 : lineEnd + 2;
        if (pending.length < end) return;
        if (!(publishes && drop(subject, pending.subarray(lineEnd + 2, end - 2).toString("latin1")))) upstream.write(pending.subarray(0, end));
        pending = pending.subarray(end);
      }
    });
    client.on("end", () => upstream.end());
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `nats://127.0.0.1:${port}`,
    async [Symbol.asyncDispose]() {
      for (const socket of sockets) socket.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
