import type { DescMessage, DescService, MessageInitShape, MessageShape } from "@bufbuild/protobuf";
import type { Context } from "@opentelemetry/api";
import type { CallContext } from "./context.js";

/** The names of a service's unary methods (the only kind Orderly serves). */
export type UnaryMethodName<S extends DescService> = {
  [K in keyof S["method"]]: S["method"][K] extends { methodKind: "unary" } ? K : never;
}[keyof S["method"]];

type InputOf<S extends DescService, K extends keyof S["method"]> =
  S["method"][K] extends { input: infer I extends DescMessage } ? I : never;
type OutputOf<S extends DescService, K extends keyof S["method"]> =
  S["method"][K] extends { output: infer O extends DescMessage } ? O : never;

/** A handler: a plain function from a request message and a context to a response. */
export type UnaryHandler<I extends DescMessage, O extends DescMessage> = (
  request: MessageShape<I>,
  context: CallContext,
) => Promise<MessageInitShape<O>> | MessageInitShape<O>;

/** One handler per unary method of a service. */
export type ServiceHandlers<S extends DescService> = {
  [K in UnaryMethodName<S>]: UnaryHandler<InputOf<S, K>, OutputOf<S, K>>;
};

/** Options of one outgoing call. */
export interface CallOptions {
  /** Absolute deadline (epoch ms); the call fails with DEADLINE_EXCEEDED after it. */
  deadline?: number;
  /** Aborting it cancels the call. */
  signal?: AbortSignal;
  /** Sent as x-request-id. */
  requestId?: string;
  /** More metadata to send. */
  metadata?: Readonly<Record<string, string>>;
  /** Filled with the response's header metadata (text values), when given. */
  responseHeaders?: Record<string, string>;
  /**
   * The trace context the call belongs to (the parent of its CLIENT span);
   * the active context when not given, which holds only while a synchronous
   * scope runs (SyncContextManager): a handler passes its call's.
   */
  traceContext?: Context;
}

/** A typed promise client: one async function per unary method. */
export type Client<S extends DescService> = {
  [K in UnaryMethodName<S>]: (
    request: MessageInitShape<InputOf<S, K>>,
    options?: CallOptions,
  ) => Promise<MessageShape<OutputOf<S, K>>>;
};
