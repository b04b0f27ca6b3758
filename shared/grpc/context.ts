import type { DescMethod } from "@bufbuild/protobuf";
import type { Context } from "@opentelemetry/api";
import type { Logger } from "../logging/index.js";
import type { Principal } from "../security/principal.js";

/** What a handler knows about the call it serves. */
export interface CallContext {
  /** The full method name, e.g. "orderly.order.v1.OrderService/CreateOrder". */
  readonly method: string;
  /** The method's descriptor (its input schema, options such as who may call it). */
  readonly rpc: DescMethod | undefined;
  /** Who is calling, once authenticated (set by the authorization interceptor). */
  principal: Principal | undefined;
  /** The request id (x-request-id), generated when the caller sent none. */
  readonly requestId: string;
  /** The absolute deadline (epoch ms), or undefined when the caller set none. */
  readonly deadline: number | undefined;
  /**
   * When the handler's answer should be on its way (epoch ms): the deadline
   * (or, without one, the server's default budget from the call's start)
   * less the server's answer margin. Work that may run long — a call to
   * another service, a wait — ends by then, so the caller gets this
   * service's answer (a fallback, or its own DEADLINE_EXCEEDED) rather
   * than its own deadline passing first, which its breaker would count
   * against this service.
   */
  readonly answerBy: number;
  /** Aborted when the caller cancels or the deadline passes. */
  readonly signal: AbortSignal;
  /** A logger made for this call alone (method, request id; its lines name the call's trace once it is traced). */
  readonly logger: Logger;
  /**
   * The trace the call belongs to (its SERVER span, set by the tracing
   * interceptor; ROOT_CONTEXT before). Passed on explicitly: to the calls
   * the handler makes (CallOptions.traceContext) and to the stores, whose
   * transactions and events join it (EventMeta).
   */
  traceContext: Context;
  /** The request metadata, lower-case keys, text values only. */
  readonly metadata: Readonly<Record<string, string>>;
  /** Response header metadata to send with the response (e.g. x-http-code for the gateway). */
  readonly responseHeaders: Record<string, string>;
}

/** Response header asking the HTTP gateway for a status other than 200 (as grpc-gateway's x-http-code). */
export const HTTP_CODE_HEADER = "x-http-code";

/** What a call the handler makes passes on (CallOptions): the call's answer-by time as its deadline, its signal, request id and trace. */
export function callOptionsOf(context: CallContext): { deadline: number; signal: AbortSignal; requestId: string; traceContext: Context } {
  return { deadline: context.answerBy, signal: context.signal, requestId: context.requestId, traceContext: context.traceContext };
}

/** Who caused a change, for a store's write (shared/events' EventMeta): the call's request id and trace. */
export function causeOf(context: CallContext): { requestId: string; traceContext: Context } {
  return { requestId: context.requestId, traceContext: context.traceContext };
}
