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
 * this one socket (a connection kept alive never calls it, and reads the rest
 * of a body as it always does: see lingerIfBodyStillComing).
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

/** Marks a connection whose last request has its answer while its body is still coming (see lingerIfBodyStillComing). */
const ANSWERED_BODY_COMING = Symbol("answered while its body is still coming");

type MarkedSocket = Socket & { [ANSWERED_BODY_COMING]?: boolean };

/**
 * After an answer given before its request's body was all read (a refusal):
 * Node's server reads and drops the rest of the body, and the connection
 * carries the next request. A body still coming LINGER_MS later (one that
 * never ends) is cut off with a lingering close, rather than holding the
 * connection until the server's request timeout and drawing a second
 * answer (its 408).
 */
export function lingerIfBodyStillComing(req: IncomingMessage): void {
  if (req.complete) return;
  const socket: MarkedSocket = req.socket;
  socket[ANSWERED_BODY_COMING] = true;
  const timer = setTimeout(() => {
    if (!req.complete && !socket.destroyed && !isLingering(socket)) closeLingering(socket);
  }, LINGER_MS).unref();
  req.once("end", () => {
    clearTimeout(timer);
    socket[ANSWERED_BODY_COMING] = false;
  });
}

/**
 * Calls `then` once the answers to the requests read from a connection
 * before what failed to parse are sent (Node's server runs pipelined
 * requests at once and sends their answers in order), or given up by a
 * client that went away; `then` is told whether what failed is the body of
 * a request that already has its answer (which must get no second one).
 * The answer to a request whose own body failed (the last request read,
 * not complete) is not waited for: it waits for a body that will not come.
 */
export function afterAnswers(socket: Duplex, then: (bodyOfAnswered: boolean) => void): void {
  const inFlight = (socket as { _httpMessage?: ServerResponse | null })._httpMessage;
  if (inFlight == null) return then((socket as MarkedSocket)[ANSWERED_BODY_COMING] === true);
  if (!inFlight.req.complete) return then(inFlight.headersSent);
  // "close" comes after "finish" (and for an answer cut off too), once Node's server has given the socket to the next answer.
  inFlight.once("close", () => afterAnswers(socket, then));
}

/** Whether a connection is closing lingering (its sending side shut): a request still read from it gets no answer. */
export function isLingering(socket: Duplex): boolean {
  return socket.writableEnded;
}
