import type { JsonValue } from "@bufbuild/protobuf";
import type { IncomingMessage, ServerResponse } from "node:http";
import { OrderlyError, type Reason } from "../shared/errors/index.js";
import { InexactNumber, inexactNumber, parsesExactly } from "./transcode.js";

/** The reasons a request's body can be refused with here (and so only a route that takes a body: the OpenAPI document lists them there). */
export const BODY_REASONS: ReadonlySet<Reason> = new Set(["MALFORMED_JSON", "PAYLOAD_TOO_LARGE", "UNSUPPORTED_CONTENT_ENCODING", "UNSUPPORTED_TRANSFER_ENCODING", "JSON_TOO_DEEP"]);

/** What a request body may be. */
export interface BodyLimits {
  /** Largest request body (bytes); larger bodies get 413. */
  maxBodyBytes: number;
  /** Deepest nesting of objects and arrays a JSON body may have; deeper bodies get 400 (JSON_TOO_DEEP). */
  maxJsonDepth: number;
}

/**
 * The request body, up to `maxBytes`: PAYLOAD_TOO_LARGE as soon as it is
 * declared or grows larger, REQUEST_TIMEOUT when it has not all come within
 * `withinMs` (the request's budget: a client that stops sending holds its
 * request no longer than that). The request is left flowing, so what the client
 * still sends is read and dropped (see lingerOnClose) rather than the
 * connection torn down under the answer.
 */
function readBody(req: IncomingMessage, res: ServerResponse, maxBytes: number, withinMs: number): Promise<Buffer> {
  const tooLarge = () =>
    new OrderlyError("PAYLOAD_TOO_LARGE", `the request body is larger than ${maxBytes} bytes`, { metadata: { limitBytes: String(maxBytes) } });
  if (declaredTooLarge(req, maxBytes)) return Promise.reject(tooLarge());
  const cancelled = () => new OrderlyError("CANCELLED", "the client closed the connection before its body was sent");
  // Gone while an unknown token was verified: no event will come.
  if (req.destroyed) return Promise.reject(cancelled());
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    let timer: NodeJS.Timeout | undefined;
    const settle = (error: Error | undefined) => {
      clearTimeout(timer);
      req.off("data", onData).off("end", onEnd).off("error", onError).off("close", onClose);
      res.off("socket", goAhead);
      if (error) reject(error);
      else resolve(Buffer.concat(chunks, size));
    };
    const onData = (chunk: Buffer) => {
      size += chunk.length;
      if (size > maxBytes) settle(tooLarge());
      else chunks.push(chunk);
    };
    const onEnd = () => settle(undefined);
    const onClose = () => settle(cancelled());
    // A connection that ends mid-body is an "aborted" error (ECONNRESET) before the close: the client left, not a fault here.
    const onError = (error: NodeJS.ErrnoException) => settle(error.code === "ECONNRESET" ? cancelled() : error);
    const startClock = () => {
      timer = setTimeout(() => settle(new OrderlyError("REQUEST_TIMEOUT", "the request body was not all received within the request's deadline")), withinMs);
    };
    // A client that sent Expect: 100-continue (the only expectation the server lets through) is told to go on now, once
    // its credentials, route and the body's declared size passed: not invited to send a body that would be refused.
    // (Never told, a client sends no body, and Node closes the connection after the answer.) Behind answers still due
    // on its connection (a write pipelined behind a slow read), the go-ahead waits for them, as Node holds it until
    // then (the response gets the socket): the body's time counts from the go-ahead, since the client waits for it.
    const goAhead = () => {
      res.writeContinue();
      startClock();
    };
    req.on("data", onData).once("end", onEnd).once("error", onError).once("close", onClose);
    if (!expectsContinue(req)) startClock();
    else if (res.socket !== null) goAhead();
    else res.once("socket", goAhead);
  });
}

/**
 * Whether a request waits for a go-ahead before it sends its body: `Expect: 100-continue` on HTTP/1.1, as Node reads it
 * (an HTTP/1.0 client's is ignored, RFC 9110 §10.1.1; another expectation on HTTP/1.1 was refused, 417, before this).
 */
function expectsContinue(req: IncomingMessage): boolean {
  return req.httpVersionMinor === 1 && req.headers.expect !== undefined && /(?:^|\W)100-continue(?:$|\W)/i.test(req.headers.expect);
}

/** Whether a request's Content-Length is over `maxBytes`. */
function declaredTooLarge(req: IncomingMessage, maxBytes: number): boolean {
  return Number(req.headers["content-length"] ?? 0) > maxBytes;
}

/** A JSON number where one starts (sticky; only what JSON allows, anything else is JSON.parse's to refuse). */
const NUMBER_TOKEN = /-?(?:0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?/y;

/**
 * Checks JSON text before it is parsed, in one pass: objects and arrays
 * nested no deeper than `maxDepth` (JSON_TOO_DEEP), and answers the first
 * number JSON.parse would turn into a whole number other than the one
 * written (see parsesExactly), if any, and where it starts: every number
 * field of the API is an integer, so such a number would be stored changed,
 * without a word.
 */
function checkJsonText(text: string, maxDepth: number): { token: string; at: number } | undefined {
  let inexact: { token: string; at: number } | undefined;
  let depth = 0;
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (inString) {
      if (c === 0x5c) i++; // backslash: skip the escaped character
      else if (c === 0x22) inString = false;
    } else if (c === 0x22) inString = true;
    else if (c === 0x7b || c === 0x5b) {
      if (++depth > maxDepth) {
        throw new OrderlyError("JSON_TOO_DEEP", `the JSON body nests deeper than ${maxDepth} levels`, { metadata: { maxDepth: String(maxDepth) } });
      }
    } else if (c === 0x7d || c === 0x5d) depth--;
    else if (c === 0x2d || (c >= 0x30 && c <= 0x39)) {
      NUMBER_TOKEN.lastIndex = i;
      const match = NUMBER_TOKEN.exec(text);
      if (match === null) continue;
      const [token, fraction, exponent] = match;
      // Up to 15 digits with no fraction or exponent, a number is read exactly.
      if (inexact === undefined && (fraction !== undefined || exponent !== undefined || token.length > 15) && !parsesExactly(token)) inexact = { token, at: i };
      i += token.length - 1;
    }
  }
  return inexact;
}

// A byte order mark is kept, so JSON.parse refuses it as before (RFC 8259: JSON text carries none).
const UTF8 = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });

/**
 * Reads the body as JSON whatever its Content-Type says (curl -d sends
 * form-urlencoded by default), but not in a content coding or a transfer
 * coding other than chunked: a compressed body is refused for what it is, not
 * read as broken JSON.
 */
export async function readJson(req: IncomingMessage, res: ServerResponse, limits: BodyLimits, withinMs: number): Promise<JsonValue | undefined> {
  const coding = req.headers["content-encoding"]?.trim().toLowerCase();
  if (coding !== undefined && coding !== "" && coding !== "identity") {
    throw new OrderlyError("UNSUPPORTED_CONTENT_ENCODING", `Content-Encoding ${JSON.stringify(coding.slice(0, 40))} is not accepted: send the JSON as it is`);
  }
  // Node's parser frames a body by its last transfer coding, which must be chunked, and passes any before it on as
  // they are ("gzip, chunked" gives gzip's bytes).
  const transfer = req.headers["transfer-encoding"]?.trim().toLowerCase();
  if (transfer !== undefined && transfer !== "chunked") {
    throw new OrderlyError("UNSUPPORTED_TRANSFER_ENCODING", `Transfer-Encoding ${JSON.stringify(transfer.slice(0, 40))} is not accepted: send the body chunked or with a Content-Length`);
  }
  const raw = await readBody(req, res, limits.maxBodyBytes, withinMs);
  if (raw.length === 0) return undefined;
  let text: string;
  try {
    // JSON is UTF-8 (RFC 8259): bytes that are not are refused, not stored as U+FFFD.
    text = UTF8.decode(raw);
  } catch {
    throw new OrderlyError("MALFORMED_JSON", "the request body is not valid UTF-8");
  }
  const inexact = checkJsonText(text, limits.maxJsonDepth);
  let json: JsonValue;
  try {
    json = JSON.parse(text) as JsonValue;
  } catch {
    throw new OrderlyError("MALFORMED_JSON", "the request body is not valid JSON");
  }
  return inexact === undefined ? json : withInexactNumber(json, text, inexact);
}

/**
 * `json` with the number that JSON.parse did not read as written put back
 * where it stood as an InexactNumber, for the request's check to refuse
 * naming the field it was given for.
 */
function withInexactNumber(json: JsonValue, text: string, inexact: { token: string; at: number }): JsonValue {
  const marker = new InexactNumber(inexact.token) as unknown as JsonValue;
  const path = jsonPathAt(text, inexact.at);
  const last = path.pop();
  if (last === undefined) return marker;
  let parent: unknown = json;
  for (const step of path) parent = parent !== null && typeof parent === "object" && Object.hasOwn(parent, step) ? (parent as Record<string | number, unknown>)[step] : undefined;
  // A key given twice, the number inside the value JSON.parse dropped (an object or array): no field holds it, and it is
  // named by the number alone. (Where the dropped value is the number itself, the key's kept value is refused in its place.)
  if (parent === null || typeof parent !== "object" || !Object.hasOwn(parent, last)) throw inexactNumber(inexact.token);
  (parent as Record<string | number, unknown>)[last] = marker;
  return json;
}

/** The keys and indices that lead to the value starting at `at` in JSON text JSON.parse has read. */
function jsonPathAt(text: string, at: number): (string | number)[] {
  const path: (string | number)[] = [];
  let keyNext = false;
  for (let i = 0; i < at; i++) {
    const c = text.charCodeAt(i);
    if (c === 0x22) {
      const start = i;
      for (i++; text.charCodeAt(i) !== 0x22; i++) if (text.charCodeAt(i) === 0x5c) i++;
      if (keyNext) path[path.length - 1] = JSON.parse(text.slice(start, i + 1)) as string;
      keyNext = false;
    } else if (c === 0x7b) {
      path.push("");
      keyNext = true;
    } else if (c === 0x5b) {
      path.push(0);
      keyNext = false;
    } else if (c === 0x7d || c === 0x5d) {
      path.pop();
      keyNext = false;
    } else if (c === 0x2c) {
      // After a comma, a key comes in an object, the next index in an array.
      const index = path.at(-1);
      if (typeof index === "number") path[path.length - 1] = index + 1;
      keyNext = typeof index === "string";
    }
  }
  return path;
}
