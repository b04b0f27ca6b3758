import type { Message } from "@bufbuild/protobuf";
import { MethodOptions_IdempotencyLevel } from "@bufbuild/protobuf/wkt";
import { SpanKind, trace } from "@opentelemetry/api";
import { Code, OrderlyError, abortReason, codeName, underlyingCause } from "../errors/index.js";
import { tracer } from "../observability/tracing.js";
import { contextFromTraceparent, endSpanWithError } from "../observability/trace-context.js";
import type { CallContext } from "./context.js";
import { storageError } from "../sqlite/storage-errors.js";
import { metadataKeys } from "./metadata-keys.js";

/** The next step of a call: the handler itself, or the rest of the chain. */
export type Next = (request: Message, context: CallContext) => Promise<unknown>;

/** Cross-cutting work around every handler of a server. */
export type Interceptor = (next: Next) => Next;

/** Composes interceptors; the first in the list runs outermost. */
export function chain(interceptors: readonly Interceptor[], handler: Next): Next {
  return interceptors.reduceRight<Next>((next, interceptor) => interceptor(next), handler);
}

/**
 * Runs each call in a SERVER span, child of the caller's span when its
 * `traceparent` metadata names one. The span's context becomes the call's
 * `traceContext`, which its logger's lines name, so the log lines, the
 * outgoing calls and the events the handler passes it to all carry the
 * caller's trace.
 */
export const traceCalls: Interceptor = (next) => (request, context) => {
  const parent = contextFromTraceparent(context.metadata[metadataKeys.traceparent]);
  const span = tracer().startSpan(context.method, { kind: SpanKind.SERVER }, parent);
  context.traceContext = trace.setSpan(parent, span);
  if (span.isRecording()) {
    const slash = context.method.lastIndexOf("/");
    span.setAttributes({
      "rpc.system": "grpc",
      "rpc.service": context.method.slice(0, slash),
      "rpc.method": context.method.slice(slash + 1),
      "orderly.request_id": context.requestId,
    });
  }
  return next(request, context).then(
    (response) => {
      span.setAttribute("rpc.grpc.status_code", 0);
      span.end();
      return response;
    },
    (error: unknown) => {
      const err = OrderlyError.from(error);
      endSpanWithError(span, err, { "rpc.grpc.status_code": err.code, "orderly.reason": err.reason });
      throw error;
    },
  );
};

/**
 * Logs each call's outcome and duration: errors a client caused at info,
 * others at error; with what was left of its deadline when it arrived
 * (`budgetMs`), which each hop passes on less of.
 */
export const logCalls: Interceptor = (next) => async (request, context) => {
  const started = performance.now();
  const budgetMs = context.deadline === undefined ? undefined : context.deadline - Date.now();
  try {
    const response = await next(request, context);
    context.logger.debug({ ms: Math.round(performance.now() - started), budgetMs }, "call ok");
    return response;
  } catch (error) {
    const err = OrderlyError.from(error);
    const ms = Math.round(performance.now() - started);
    const fields = { ms, budgetMs, code: codeName(err.code), reason: err.reason };
    // The service's own faults: an error it did not expect, or its storage failing.
    if (err.code === Code.INTERNAL || err.code === Code.UNKNOWN || err.reason === "STORAGE_UNAVAILABLE") {
      context.logger.error({ ...fields, err: err.cause ?? err }, "call failed");
    } else {
      context.logger.info({ ...fields, message: err.message, cause: underlyingCause(err) }, "call failed");
    }
    throw err;
  }
};

/**
 * Turns a SQLite error that says the storage is failing (disk full, I/O,
 * read-only) into UNAVAILABLE STORAGE_UNAVAILABLE, which a caller retries
 * and a degrading caller answers as it does any service down; any other
 * error as it is (one the service did not expect is INTERNAL).
 */
export const translateStorageErrors: Interceptor = (next) => async (request, context) => {
  try {
    // A handler may answer synchronously (a value, or a throw), whatever Next's type says.
    return await next(request, context);
  } catch (error) {
    throw storageError(error) ?? error;
  }
};

/**
 * The time (ms) an answer is given for its way back to the caller: the least margin a call's answer keeps
 * (defaultCallBudget), and the least time left for which a call to a method with side effects is begun (enforceDeadline).
 * With less, the change could be made (an order recorded, a restock applied) while its caller is told
 * DEADLINE_EXCEEDED, and, without an idempotency key, could not find it.
 */
export const ANSWER_WAY_BACK_MS = 20;

/**
 * The refusal of a call to `method` begun with `leftMs` left, when the method has side effects (it is not declared
 * `NO_SIDE_EFFECTS`; an unknown method is taken to have them) and less than ANSWER_WAY_BACK_MS is left; undefined
 * when it may begin. A read is begun whatever is left: it changes nothing, and its answer may still arrive in time.
 * A server refuses such a call (enforceDeadline), and a client does not send it (callWithPolicy).
 */
export function tooLateToChange(method: { readonly idempotency: MethodOptions_IdempotencyLevel } | undefined, leftMs: number): OrderlyError | undefined {
  if (leftMs >= ANSWER_WAY_BACK_MS || method?.idempotency === MethodOptions_IdempotencyLevel.NO_SIDE_EFFECTS) return undefined;
  return new OrderlyError(
    "DEADLINE_EXCEEDED",
    `too little time left to make a change and answer in time (${Math.max(0, Math.floor(leftMs))} ms of the ${ANSWER_WAY_BACK_MS} ms it takes at least): nothing was changed`,
  );
}

/**
 * Refuses, before any work, a call whose deadline has already passed or whose caller went away, and a call to a method
 * with side effects with too little time left to answer (tooLateToChange).
 */
export const enforceDeadline: Interceptor = (next) => async (request, context) => {
  if (context.signal.aborted) throw abortReason(context.signal);
  if (context.deadline !== undefined) {
    const leftMs = context.deadline - Date.now();
    if (leftMs <= 0) throw new OrderlyError("DEADLINE_EXCEEDED", "deadline exceeded before the call started");
    const refusal = tooLateToChange(context.rpc, leftMs);
    if (refusal) throw refusal;
  }
  return next(request, context);
};

/** The interceptors every Orderly server runs, outermost first: the span first, so the log lines carry its trace id. */
export const defaultInterceptors: readonly Interceptor[] = [traceCalls, logCalls, enforceDeadline];

/**
 * Fault injection (tests and drills only): delays the named methods by `ms`
 * before they run, as a slow dependency would be. The wait ends early —
 * and the call fails with its signal's abortReason (CANCELLED, or
 * SERVICE_UNAVAILABLE at a shutdown) — when the caller gives up, so the
 * service does no work for a caller that is gone.
 */
export function injectDelay(ms: number, methods: readonly string[]): Interceptor {
  return (next) => async (request, context) => {
    const name = context.method.slice(context.method.lastIndexOf("/") + 1);
    if (ms > 0 && (methods.length === 0 || methods.includes(name))) {
      context.logger.debug({ ms }, "fault injection: delaying the call");
      await new Promise<void>((resolve, reject) => {
        const timer = setTimeout(() => {
          context.signal.removeEventListener("abort", onAbort);
          resolve();
        }, ms);
        const onAbort = () => {
          clearTimeout(timer);
          reject(abortReason(context.signal, "the caller gave up while the call was delayed"));
        };
        context.signal.addEventListener("abort", onAbort, { once: true });
      });
    }
    return next(request, context);
  };
}
