import { createServer } from "node:http";
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
