import { once } from "node:events";
import { createServer } from "node:http";
import { connect } from "node:net";
import { expect, test } from "vitest";
import { silentLogger } from "../logging/index.js";
import { listen } from "./listen.js";

test("a server's errors after it listens (an accept refused) are logged and it goes on; one before it (a port in use) rejects", async () => {
  const logged: string[] = [];
  const logger = silentLogger();
  logger.error = ((fields: { err: Error }) => void logged.push(fields.err.message)) as typeof logger.error;
  const server = createServer((_, res) => res.end("ok"));
  await listen(server, 0, "127.0.0.1", logger, "test");
  try {
    const port = (server.address() as { port: number }).port;
    // What Node emits when an accept fails (ENFILE, say): twice, as a machine out of files would.
    server.emit("error", Object.assign(new Error("accept ENFILE"), { code: "ENFILE" }));
    server.emit("error", Object.assign(new Error("accept ENFILE"), { code: "ENFILE" }));
    expect(logged).toEqual(["accept ENFILE", "accept ENFILE"]);
    expect(await (await fetch(`http://127.0.0.1:${port}/`)).text()).toBe("ok");
    await expect(listen(createServer(), port, "127.0.0.1", logger, "second")).rejects.toMatchObject({ code: "EADDRINUSE" });
  } finally {
    await new Promise((resolve) => server.close(resolve));
  }
});

test("a port held by an outgoing connection (it lies in the kernel's range for those) is refused with a line that says so and how to reserve it", async () => {
  const target = createServer();
  await listen(target, 0, "127.0.0.1", silentLogger(), "target");
  const client = connect({ host: "127.0.0.1", port: (target.address() as { port: number }).port });
  try {
    await once(client, "connect");
    // The client's own end: a port the kernel picked from its range for outgoing connections.
    const held = client.localPort!;
    const refusal = listen(createServer(), held, "127.0.0.1", silentLogger(), "second", "SOME_PORT");
    await expect(refusal).rejects.toThrow(
      new RegExp(`^SOME_PORT: cannot listen on 127\\.0\\.0\\.1:${held}: address already in use, by another Orderly still running or by an outgoing connection of any process: .*add ${held} to net\\.ipv4\\.ip_local_reserved_ports`),
    );
  } finally {
    client.destroy();
    await new Promise((resolve) => target.close(resolve));
  }
});
