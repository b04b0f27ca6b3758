import { connect } from "node:net";

/**
 * Sends `bytes` as they are on a new connection to 127.0.0.1:`port` and returns all the server answers until it closes
 * the connection (send `connection: close`). The client's side stays open: a server may take a client's FIN for its going away.
 */
export function rawExchange(port: number, bytes: string): Promise<string> {
  return new Promise((resolve) => {
    let received = "";
    const socket = connect({ port, host: "127.0.0.1" });
    socket.on("data", (chunk) => (received += chunk.toString("latin1")));
    socket.on("error", () => undefined);
    socket.once("close", () => resolve(received));
    socket.write(bytes);
  });
}
