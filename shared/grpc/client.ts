import "../wire/utf8.js";
import * as grpc from "@grpc/grpc-js";
import { create, fromBinary, toBinary, type DescMessage, type DescMethodUnary, type DescService, type MessageInitShape, type MessageShape } from "@bufbuild/protobuf";
import { SpanKind, context, trace } from "@opentelemetry/api";
import { Code, OrderlyError, abortReason, fromStatus } from "../errors/index.js";
import { readFileSync } from "node:fs";
import { isIP } from "node:net";
import { checkServerIdentity } from "node:tls";
import type { TlsFiles } from "../security/config.js";
import { tracer } from "../observability/tracing.js";
import { endSpanWithError, traceparentOf } from "../observability/trace-context.js";
import { metadataKeys } from "./metadata-keys.js";
import type { CallOptions, Client } from "./types.js";

/** A connection (channel) to one gRPC server, shared by all calls to it. */
export type Connection = grpc.Client;

/** How a connection is opened. */
export interface ConnectOptions {
  maxMessageBytes?: number;
  /** Certificate files: the connection speaks TLS, checks the server against the CA and presents its own certificate (mTLS). */
  tls?: TlsFiles;
  /** Metadata added to every call on the connection (e.g. the caller's signed principal), computed per call. */
  callMetadata?: () => Readonly<Record<string, string>>;
}

/** How a channel to one address is secured: its credentials and the channel options they need. */
export interface ChannelSecurity {
  credentials: grpc.ChannelCredentials;
  options: grpc.ChannelOptions;
}

/** The TLS server name sent to a server addressed by IP (see tlsChannel); a reserved name (RFC 2606). */
const IP_TARGET_SERVER_NAME = "ip-address.invalid";

/** The host of a gRPC target such as `127.0.0.1:50051`, `[::1]:50051` or `dns:///order:50051`. */
function targetHost(address: string): string {
  // ipv4:/ipv6: targets may list several addresses; grpc-js names the channel after the first.
  const authority = address.replace(/^(dns:(\/\/[^/]*\/)?|ipv4:|ipv6:)/, "").split(",")[0]!;
  return grpc.experimental.splitHostPort(authority)?.host ?? authority;
}

/**
 * TLS to `address`, checking the server against `rootCerts`, and presenting `privateKey` and
 * `certChain` when given (mTLS). grpc-js sends the target's host as the TLS server name (SNI); Node 26
 * refuses an IP address there (RFC 6066 allows only names; Node warned with DEP0123 before). So for
 * a server addressed by IP a reserved name is sent instead, and its certificate is checked against
 * the IP address itself, as it is for a name. The result is for `address` only.
 */
export function tlsChannel(address: string, rootCerts: Buffer, privateKey?: Buffer, certChain?: Buffer): ChannelSecurity {
  const host = targetHost(address);
  if (isIP(host) === 0) return { credentials: grpc.credentials.createSsl(rootCerts, privateKey, certChain), options: {} };
  return {
    credentials: grpc.credentials.createSsl(rootCerts, privateKey, certChain, { checkServerIdentity: (_name, certificate) => checkServerIdentity(host, certificate) }),
    options: { "grpc.ssl_target_name_override": IP_TARGET_SERVER_NAME },
  };
}

/** The channel security for certificate files (mTLS), or plaintext without them. */
export function channelSecurity(address: string, tls: TlsFiles | undefined): ChannelSecurity {
  if (tls === undefined) return { credentials: grpc.credentials.createInsecure(), options: {} };
  return tlsChannel(address, readFileSync(tls.caFile), readFileSync(tls.keyFile), readFileSync(tls.certFile));
}

/** A client interceptor adding metadata to every call (unless the call already sets that key). */
function metadataInterceptor(callMetadata: () => Readonly<Record<string, string>>): grpc.Interceptor {
  return (options, nextCall) =>
    new grpc.InterceptingCall(nextCall(options), {
      start(metadata, listener, next) {
        for (const [key, value] of Object.entries(callMetadata())) if (metadata.get(key).length === 0) metadata.set(key, value);
        next(metadata, listener);
      },
    });
}

/** Opens a connection to host:port. Connections are lazy; close them with `connection.close()`. */
export function connect(address: string, options: ConnectOptions = {}): Connection {
  const maxBytes = options.maxMessageBytes ?? 4 * 1024 * 1024;
  const security = channelSecurity(address, options.tls);
  return new grpc.Client(address, security.credentials, {
    ...security.options,
    ...(options.callMetadata ? { interceptors: [metadataInterceptor(options.callMetadata)] } : {}),
    "grpc.max_receive_message_length": maxBytes,
    "grpc.max_send_message_length": maxBytes,
    "grpc.keepalive_time_ms": 30_000,
    "grpc.initial_reconnect_backoff_ms": 100,
    "grpc.max_reconnect_backoff_ms": 2000,
  });
}

/**
 * Calls `listener` each time the connection becomes ready after it was not.
 * grpc-js tries again by itself, with its reconnect back-off, while it fails
 * to connect; but a connection that was ready and is lost (the server gone)
 * leaves the channel idle until a call comes. While `keepTrying` says so (an
 * open breaker, whose callers send no call), an idle channel is told to
 * connect, so the dependency is found back as soon as it is; otherwise it is
 * left idle, and the next call connects afresh (a channel kept trying would
 * fail a call made during its back-off at once, the server back or not).
 * Ends with the connection's close; it holds no timer, so it keeps no
 * process alive.
 */
export function onReady(connection: Connection, listener: () => void, keepTrying: () => boolean = () => false): void {
  const channel = connection.getChannel();
  const watch = (from: grpc.connectivityState) =>
    channel.watchConnectivityState(from, Infinity, () => {
      let now = channel.getConnectivityState(false);
      if (now === grpc.connectivityState.SHUTDOWN) return;
      if (now === grpc.connectivityState.READY) listener();
      if (now === grpc.connectivityState.IDLE && keepTrying()) now = channel.getConnectivityState(true);
      watch(now);
    });
  watch(channel.getConnectivityState(false));
}

/** Turns a grpc-js error into an OrderlyError, using the google.rpc.Status in its trailers when present. */
export function fromServiceError(error: grpc.ServiceError): OrderlyError {
  const details = error.metadata?.get(metadataKeys.statusDetails)[0];
  const code = (error.code as number as Code) ?? Code.UNKNOWN;
  return fromStatus(code, error.details, details instanceof Buffer ? details : undefined);
}

/**
 * Runs `fn` with Error stack capture off. grpc-js captures its caller's stack
 * (a new Error) for every call, only to append it to a failed call's error;
 * fromServiceError builds an OrderlyError without it, so the capture (~60k
 * instructions a call) is skipped. `fn` runs synchronously.
 */
function withoutStackCapture<T>(fn: () => T): T {
  const limit = Error.stackTraceLimit;
  Error.stackTraceLimit = 0;
  try {
    return fn();
  } catch (error) {
    // What `fn` throws (a closed channel, say) gets the stack it would have had.
    Error.stackTraceLimit = limit;
    if (error instanceof Error) Error.captureStackTrace(error, withoutStackCapture);
    throw error;
  } finally {
    Error.stackTraceLimit = limit;
  }
}

/** Makes one unary call; rejects with an OrderlyError. */
export function callUnary<I extends DescMessage, O extends DescMessage>(
  connection: Connection,
  method: DescMethodUnary<I, O>,
  request: MessageInitShape<I>,
  options: CallOptions = {},
): Promise<MessageShape<O>> {
  return new Promise((resolve, reject) => {
    if (options.signal?.aborted) {
      reject(abortReason(options.signal, "the call was cancelled before it started"));
      return;
    }
    const metadata = new grpc.Metadata();
    for (const [key, value] of Object.entries(options.metadata ?? {})) metadata.set(key, value);
    if (options.requestId) metadata.set(metadataKeys.requestId, options.requestId);
    const path = `/${method.parent.typeName}/${method.name}`;
    // A CLIENT span for calls made inside a trace (not for a probe outside any), passed on as traceparent.
    const parent = options.traceContext ?? context.active();
    const span = trace.getSpan(parent) === undefined ? undefined : tracer().startSpan(path.slice(1), { kind: SpanKind.CLIENT }, parent);
    if (span) {
      metadata.set(metadataKeys.traceparent, traceparentOf(span.spanContext()));
      if (span.isRecording()) span.setAttributes({ "rpc.system": "grpc", "rpc.service": method.parent.typeName, "rpc.method": method.name });
    }
    const onAbort = () => call.cancel();
    const input = create(method.input, request);
    const call = withoutStackCapture(() =>
      connection.makeUnaryRequest<MessageShape<I>, MessageShape<O>>(
        path,
        (message) => Buffer.from(toBinary(method.input, message)),
        (bytes) => fromBinary(method.output, bytes),
        input,
        metadata,
        { deadline: options.deadline ?? Infinity },
        (error, response) => {
          options.signal?.removeEventListener("abort", onAbort);
          if (error) {
            // Cancelled by the caller's signal: the error its reason names (CANCELLED, or the server shutting down). An answer
            // the service sent before the cancel reached it is kept.
            const cancelled = error.code === grpc.status.CANCELLED && options.signal?.aborted === true;
            const err = cancelled ? abortReason(options.signal!) : fromServiceError(error);
            if (span) endSpanWithError(span, err, { "rpc.grpc.status_code": err.code });
            reject(err);
          } else {
            span?.end();
            resolve(response!);
          }
        },
      ),
    );
    options.signal?.addEventListener("abort", onAbort, { once: true });
    if (options.responseHeaders) {
      const target = options.responseHeaders;
      call.on("metadata", (headers: grpc.Metadata) => {
        for (const [key, value] of Object.entries(headers.getMap())) if (typeof value === "string") target[key] = value;
      });
    }
  });
}

/**
 * A typed promise client for a service over a connection. `around`, when
 * given, wraps every call (the resilience policy of the dependency).
 */
export function createClient<S extends DescService>(
  service: S,
  connection: Connection,
  around?: (method: DescMethodUnary, call: (options: CallOptions) => Promise<unknown>, options: CallOptions) => Promise<unknown>,
): Client<S> {
  const client: Record<string, unknown> = {};
  for (const method of service.methods) {
    if (method.methodKind !== "unary") continue;
    const unary = method as DescMethodUnary;
    client[method.localName] = (request: never, options: CallOptions = {}) => {
      const call = (attempt: CallOptions) => callUnary(connection, unary, request, attempt);
      return around ? around(unary, call, options) : call(options);
    };
  }
  return client as Client<S>;
}
