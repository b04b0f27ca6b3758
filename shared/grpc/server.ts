import "../wire/utf8.js";
import * as grpc from "@grpc/grpc-js";
import { create, fromBinary, toBinary, type DescMessage, type DescMethod, type DescService, type Message } from "@bufbuild/protobuf";
import { ROOT_CONTEXT } from "@opentelemetry/api";
import { readFileSync } from "node:fs";
import { randomUUID } from "node:crypto";
import { isIP } from "node:net";
import { OrderlyError, declaredReasonsOf, mayAnswer, toStatusBinary } from "../errors/index.js";
import { callLogger, type Logger } from "../logging/index.js";
import type { CallContext } from "./context.js";
import { authorizeCalls, type ServiceAuth } from "../security/server-auth.js";
import type { TlsFiles } from "../security/config.js";
import { ANSWER_WAY_BACK_MS, chain, defaultInterceptors, translateStorageErrors, type Interceptor, type Next } from "./interceptors.js";
import { prepareValidation, validateRequests } from "./validate-requests.js";
import { isRequestId, metadataKeys } from "./metadata-keys.js";
import type { ServiceHandlers } from "./types.js";
import { Health } from "../../proto/gen/grpc/health/v1/health_pb.js";
import { HealthState, healthService } from "./health.js";
import { reflectionServices } from "./reflection.js";
import { ABANDON_MS, drain, listenRefusal, settlesWithin } from "../process/index.js";

/** A protobuf-es service descriptor with its handlers. */
export interface ServiceRegistration<S extends DescService = DescService> {
  service: S;
  handlers: ServiceHandlers<S>;
}

/** Pairs a service descriptor with its handlers, checking their types. */
export function registration<S extends DescService>(service: S, handlers: ServiceHandlers<S>): ServiceRegistration {
  return { service, handlers } as unknown as ServiceRegistration;
}

/**
 * A service implemented on grpc-js directly: for the streaming protocols
 * Orderly serves itself (health Watch, reflection), which the unary
 * handler adapter does not cover.
 */
export interface StreamingRegistration {
  /** The full service name it is registered under (e.g. grpc.health.v1.Health). */
  name: string;
  definition: grpc.ServiceDefinition;
  implementation: grpc.UntypedServiceImplementation;
  /** Ends its open streams when the server closes (so a graceful shutdown does not wait for them). */
  close?: () => void;
}

/** A started gRPC server. */
export interface RunningServer {
  /** The port it listens on (useful when asked for port 0). */
  readonly port: number;
  /**
   * Stops accepting calls and lets those in flight finish for up to graceMs;
   * then aborts the rest, which answer SERVICE_UNAVAILABLE (their callers may
   * retry elsewhere or later). Resolves once every handler has settled, so
   * what the handlers use can be closed after it; or, when one has not,
   * ABANDON_MS after the abort at most (logged as a warning).
   */
  close(graceMs?: number): Promise<void>;
}

/** Options for startGrpcServer. */
export interface GrpcServerOptions {
  host: string;
  port: number;
  /** The variable that set the port (ORDER_GRPC_PORT, say), for the message when it cannot be listened on. */
  portSetting?: string;
  services: readonly ServiceRegistration[];
  logger: Logger;
  /** Authenticates callers and enforces each RPC's access rule; without it, calls are not authorized (tests of other concerns only). */
  auth?: ServiceAuth;
  /** With certificate files, the server speaks TLS and requires a client certificate from the same CA (mTLS). */
  tls?: TlsFiles;
  /** Runs outermost, around every call (the process's per-RPC metrics). */
  observeCalls?: Interceptor;
  /** More interceptors, run inside the standard ones (tracing, logging, deadline, authorization, validation). */
  interceptors?: readonly Interceptor[];
  /** Largest message accepted or sent (bytes). */
  maxMessageBytes?: number;
  /** The readiness grpc.health.v1.Health reports for the server and each service (always SERVING when absent). */
  health?: HealthState;
  /** Serve gRPC server reflection (v1 and v1alpha) of every service registered (default true). */
  reflection?: boolean;
  /** A call's budget when it comes without a deadline, and the margin its answer keeps (see CallContext.answerBy); defaultCallBudget when absent. */
  budget?: CallBudget;
}

/** How long a call may take when its caller set no deadline, and how early its answer should be on its way. */
export interface CallBudget {
  /** The budget of a call without a deadline (ms). */
  defaultMs: number;
  /** The part of the time left that a call keeps to answer (ms), given that time (ms). */
  answerMarginMs: (leftMs: number) => number;
}

/**
 * Five seconds without a deadline; an answer margin of a tenth of the time
 * left, 20 ms to a second: enough for the answer's way back, small against
 * a short budget, and never most of a long one.
 */
export const defaultCallBudget: CallBudget = {
  defaultMs: 5000,
  answerMarginMs: (leftMs) => Math.min(1000, Math.max(ANSWER_WAY_BACK_MS, leftMs / 10)),
};

/** When the answer to a call started at `now` should be on its way (see CallContext.answerBy); a margin that is not a positive number keeps none. */
export function answerByOf(deadline: number | undefined, now: number, budget: CallBudget): number {
  const due = deadline ?? now + budget.defaultMs;
  const margin = budget.answerMarginMs(Math.max(0, due - now));
  return margin > 0 ? due - margin : due;
}

function serializer(schema: DescMessage) {
  return (message: Message) => Buffer.from(toBinary(schema, message));
}

function deserializer(schema: DescMessage) {
  return (bytes: Buffer) => fromBinary(schema, bytes);
}

/** A request whose bytes are not its message type's binary form (see undecodable). */
class UndecodableRequest {
  constructor(readonly typeName: string) {}
}

/**
 * A server's request deserializer that hands an undecodable request on as an
 * UndecodableRequest instead of throwing: grpc-js answers a throw INTERNAL
 * ("Error deserializing request"), with no reason, uncounted and unlogged,
 * for what is the caller's bad input.
 */
function lenientDeserializer(schema: DescMessage) {
  return (bytes: Buffer): Message => {
    try {
      return fromBinary(schema, bytes);
    } catch {
      // A Message in name only: the handler refuses it (undecodable; for the services' RPCs, refuseUndecodable before any handler).
      return new UndecodableRequest(schema.typeName) as unknown as Message;
    }
  };
}

/** The refusal of an undecodable request (INVALID_ARGUMENT, MALFORMED_REQUEST), or undefined for a decoded one. */
export function undecodable(request: unknown): OrderlyError | undefined {
  return request instanceof UndecodableRequest ? new OrderlyError("MALFORMED_REQUEST", `the request is not a ${request.typeName} in protobuf's binary form`) : undefined;
}

/** Refuses an undecodable request inside the interceptors that trace, log and count calls. */
const refuseUndecodable: Interceptor = (next) => (request, context) => {
  const refusal = undecodable(request);
  if (refusal) throw refusal;
  return next(request, context);
};

/**
 * The grpc-js service definition of a protobuf-es service descriptor (served
 * under `typeName`, its own by default). Requests are read leniently (see
 * lenientDeserializer): each handler refuses an undecodable one itself.
 */
export function grpcServiceDefinition(service: DescService, typeName = service.typeName): grpc.ServiceDefinition {
  const definition: Record<string, grpc.MethodDefinition<Message, Message>> = {};
  for (const method of service.methods) {
    definition[method.name] = {
      path: `/${typeName}/${method.name}`,
      requestStream: method.methodKind === "client_streaming" || method.methodKind === "bidi_streaming",
      responseStream: method.methodKind === "server_streaming" || method.methodKind === "bidi_streaming",
      requestSerialize: serializer(method.input),
      requestDeserialize: lenientDeserializer(method.input),
      responseSerialize: serializer(method.output),
      responseDeserialize: deserializer(method.output),
      originalName: method.localName,
    };
  }
  return definition;
}

/**
 * A call's text metadata by key. A key sent more than once is its values
 * joined with ", ", as HTTP joins a header's: no single-valued key
 * (authorization, the signed principal, the request id) accepts that, so
 * doubled credentials are refused rather than the first of them believed.
 */
function metadataRecord(metadata: grpc.Metadata): Record<string, string> {
  const record: Record<string, string> = {};
  for (const [key, value] of Object.entries(metadata.getMap())) {
    if (typeof value !== "string") continue;
    const values = metadata.get(key);
    record[key] = values.length === 1 ? value : values.filter((each) => typeof each === "string").join(", ");
  }
  return record;
}

function contextOf(call: grpc.ServerUnaryCall<unknown, unknown>, method: string, rpc: DescMethod, logger: Logger, budget: CallBudget, signal: AbortSignal): CallContext {
  const metadata = metadataRecord(call.metadata);
  const sent = metadata[metadataKeys.requestId];
  const requestId = sent !== undefined && isRequestId(sent) ? sent : randomUUID();
  const rawDeadline = call.getDeadline();
  const deadlineMs = rawDeadline instanceof Date ? rawDeadline.getTime() : rawDeadline;
  const deadline = Number.isFinite(deadlineMs) ? deadlineMs : undefined;
  const context = {
    method,
    rpc,
    principal: undefined,
    requestId,
    deadline,
    answerBy: answerByOf(deadline, Date.now(), budget),
    signal,
    logger,
    traceContext: ROOT_CONTEXT,
    metadata,
    responseHeaders: {},
  };
  // The call's logger reads the call from its context when it writes, so its lines name the trace traceCalls sets later.
  context.logger = callLogger(logger, context);
  return context;
}

/** The grpc-js error for an OrderlyError: its code, message, and google.rpc.Status in the trailers (and the call's request id, when known). */
export function toServiceError(error: OrderlyError, requestId?: string): Partial<grpc.StatusObject> {
  const metadata = new grpc.Metadata();
  metadata.set(metadataKeys.statusDetails, Buffer.from(toStatusBinary(error)));
  if (requestId !== undefined) metadata.set(metadataKeys.requestId, requestId);
  return { code: error.code as number as grpc.status, details: error.message, metadata };
}

/** The calls a server is handling: each one's abort, and when none is left. */
class CallsInFlight {
  private readonly calls = new Set<AbortController>();
  /** Resolves the promise `whenIdle` handed out, if any (the one wait there is: the server's close). */
  private onIdle: (() => void) | undefined;

  get size(): number {
    return this.calls.size;
  }

  add(controller: AbortController): void {
    this.calls.add(controller);
  }

  /** The call's handler has settled. */
  delete(controller: AbortController): void {
    this.calls.delete(controller);
    if (this.calls.size === 0) this.onIdle?.();
  }

  abortAll(reason: OrderlyError): void {
    for (const controller of this.calls) controller.abort(reason);
  }

  /** Resolves when no handler is running. */
  whenIdle(): Promise<void> {
    if (this.calls.size === 0) return Promise.resolve();
    return new Promise((resolve) => (this.onIdle = resolve));
  }
}

function implementation(registration: ServiceRegistration, logger: Logger, interceptors: readonly Interceptor[], budget: CallBudget, inFlight: CallsInFlight) {
  const { service, handlers } = registration;
  const impl: grpc.UntypedServiceImplementation = {};
  for (const method of service.methods) {
    if (method.methodKind !== "unary") continue;
    const handler = (handlers as unknown as Record<string, Next>)[method.localName];
    if (handler === undefined) continue;
    const fullName = `${service.typeName}/${method.name}`;
    const run = chain(interceptors, handler);
    // Read at registration, so a misspelt reason in the proto stops the service at start.
    declaredReasonsOf(method);
    /** The undeclared reasons this RPC answered with, each logged once. */
    const undeclared = new Set<string>();
    impl[method.name] = (call: grpc.ServerUnaryCall<Message, Message>, callback: grpc.sendUnaryData<Message>) => {
      // grpc-js reports every call as cancelled once it has ended, answered or not: only a call still
      // being handled is abandoned (not an Error with its stack and an abort for every answered call).
      const controller = new AbortController();
      const onCancelled = () => controller.abort(new OrderlyError("CANCELLED", "the caller cancelled the call"));
      call.once("cancelled", onCancelled);
      const context = contextOf(call, fullName, method, logger, budget, controller.signal);
      inFlight.add(controller);
      run(call.request, context).then(
        (response) => {
          inFlight.delete(controller);
          call.off("cancelled", onCancelled);
          // The request id (the caller's, or the one made for it) goes back, so a caller can name the call in the logs.
          const metadata = new grpc.Metadata();
          metadata.set(metadataKeys.requestId, context.requestId);
          for (const key in context.responseHeaders) metadata.set(key, context.responseHeaders[key]!);
          call.sendMetadata(metadata);
          callback(null, create(method.output, response as never) as Message);
        },
        (error: unknown) => {
          inFlight.delete(controller);
          call.off("cancelled", onCancelled);
          const err = OrderlyError.from(error);
          if (!mayAnswer(method, err.reason) && !undeclared.has(err.reason)) {
            undeclared.add(err.reason);
            context.logger.error({ reason: err.reason, err }, "an RPC answered a reason its proto does not declare (orderly.errors.v1.errors): its clients are not told to expect it");
          }
          callback(toServiceError(err, context.requestId));
        },
      );
    };
  }
  return impl;
}

/** TLS that requires a client certificate signed by the CA (mTLS), or plaintext without certificate files. */
export function serverCredentials(tls: TlsFiles | undefined): grpc.ServerCredentials {
  if (tls === undefined) return grpc.ServerCredentials.createInsecure();
  return grpc.ServerCredentials.createSsl(
    readFileSync(tls.caFile),
    [{ private_key: readFileSync(tls.keyFile), cert_chain: readFileSync(tls.certFile) }],
    true,
  );
}

/** The host:port grpc-js binds for a host as ORDERLY_BIND_HOST gives it: an IPv6 address in brackets ("[::]:50051"; ":::50051" is no target). */
export function bindAddress(host: string, port: number): string {
  return `${isIP(host) === 6 ? `[${host}]` : host}:${port}`;
}

/** Starts a grpc-js server with the given services on host:port (0 picks a free port). */
export async function startGrpcServer(options: GrpcServerOptions): Promise<RunningServer> {
  const maxBytes = options.maxMessageBytes ?? 4 * 1024 * 1024;
  const server = new grpc.Server({
    "grpc.max_receive_message_length": maxBytes,
    "grpc.max_send_message_length": maxBytes,
  });
  const interceptors = [
    ...(options.observeCalls ? [options.observeCalls] : []),
    ...defaultInterceptors,
    ...(options.auth ? [authorizeCalls(options.auth)] : []),
    refuseUndecodable,
    validateRequests,
    ...(options.interceptors ?? []),
    // Next to the handler, so every interceptor above sees what the caller will get.
    translateStorageErrors,
  ];
  prepareValidation(options.services.map((r) => r.service));
  const unaryOnly = (service: DescService) => {
    const definition = grpcServiceDefinition(service);
    return Object.fromEntries(Object.entries(definition).filter(([, method]) => !method.requestStream && !method.responseStream));
  };
  const inFlight = new CallsInFlight();
  for (const registration of options.services) {
    server.addService(unaryOnly(registration.service), implementation(registration, options.logger, interceptors, options.budget ?? defaultCallBudget, inFlight));
  }
  const names = options.services.map((r) => r.service.typeName);
  const streaming = [healthService(names, options.health ?? new HealthState({}))];
  if (options.reflection ?? true) streaming.push(...reflectionServices([...options.services.map((r) => r.service), Health]));
  for (const s of streaming) server.addService(s.definition, s.implementation);
  const port = await new Promise<number>((resolve, reject) => {
    server.bindAsync(bindAddress(options.host, options.port), serverCredentials(options.tls), (error, bound) =>
      error ? reject(listenRefusal(error, { host: options.host, port: options.port, setting: options.portSetting })) : resolve(bound),
    );
  });
  return {
    port,
    close: async (graceMs = 5000) => {
      for (const s of streaming) s.close?.();
      const shutDown = new Promise<void>((resolve) => server.tryShutdown(() => resolve()));
      // A forced shutdown only after the aborted calls had time to answer: at once, their callers would see CANCELLED.
      const abortedAt = await drain(shutDown, graceMs, {
        abort: () => inFlight.abortAll(new OrderlyError("SERVICE_UNAVAILABLE", "the service is shutting down")),
        cut: () => server.forceShutdown(),
      });
      // Handlers whose callers went away may still be running once the server has closed: they get as long as aborted ones.
      const abandonBy = (abortedAt ?? Date.now()) + ABANDON_MS;
      if (!(await settlesWithin(inFlight.whenIdle(), abandonBy - Date.now()))) {
        options.logger.warn({ calls: inFlight.size }, "calls still running after the shutdown's grace: what they use is closed under them");
      }
    },
  };
}
