import type { IncomingMessage, ServerResponse } from "node:http";
import type { Socket } from "node:net";
import type { Duplex } from "node:stream";

/**
 * Closing a connection the way nginx's lingering close does.
 *
 * The gateway can answer before it has read a request's body (a 413, a 401,
 * a bad header, headers over the limit), and the connection may close after
 * that answer (`connection: close`, from either side). Closing at once would
 * answer the bytes still arriving with a TCP reset, which can discard the
 * answer in the client's buffers before it reads it. Instead, once the answer
 * is written the sending side is shut (FIN), and what the client still sends
 * is read and dropped until it closes its side or LINGER_MS pass.
 */

/** How long a closing connection goes on reading and dropping what the client still sends. */
export const LINGER_MS = 2000;

/** Whether a request comes with a body (which the gateway may answer before it has read it). */
export function hasBody(req: IncomingMessage): boolean {
  const length = req.headers["content-length"];
  return req.headers["transfer-encoding"] !== undefined || (length !== undefined && length !== "0");
}

/**
 * Makes the last response of a connection close it lingering. Node's server
 * calls destroySoon after a connection's last response; this replaces it for
 * this one socket (the gateway's answer to a request whose body it has not
 * all read closes the connection, so it comes here).
 */
export function lingerOnClose(socket: Socket): void {
  socket.destroySoon = () => closeLingering(socket);
}

/** Shuts the sending side once what was written is sent, then drops what arrives until the client closes or LINGER_MS pass. */
export function closeLingering(socket: Duplex): void {
  socket.end();
  socket.resume();
  const timer = setTimeout(() => socket.destroy(), LINGER_MS).unref();
  socket.once("close", () => clearTimeout(timer));
}

/**
 * Calls `then` once the answers to the requests read from a connection
 * before `broken` are sent (Node's server runs pipelined requests at once
 * and sends their answers in order), or given up by a client that went
 * away. `broken` is the request whose own message failed to parse (a body
 * cut off, say), if any: its answer, which waits for a body that will not
 * come, is not waited for.
 */
export function afterAnswers(socket: Duplex, then: () => void, broken?: IncomingMessage): void {
  const inFlight = (socket as { _httpMessage?: ServerResponse | null })._httpMessage;
  if (inFlight == null || inFlight.req === broken) return then();
  // "close" comes after "finish" (and for an answer cut off too), once Node's server has given the socket to the next answer.
  inFlight.once("close", () => afterAnswers(socket, then, broken));
}

/** The request a connection's parser is in the middle of (headers read, not all of its body), if any. */
export function requestBeingRead(socket: Duplex): IncomingMessage | undefined {
  const incoming = (socket as { parser?: { incoming?: IncomingMessage | null } | null }).parser?.incoming;
  return incoming && !incoming.complete ? incoming : undefined;
}

/** Whether a connection is closing lingering (its sending side shut): a request still read from it gets no answer. */
export function isLingering(socket: Duplex): boolean {
  return socket.writableEnded;
}
