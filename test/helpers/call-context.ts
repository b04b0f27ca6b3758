import { ROOT_CONTEXT } from "@opentelemetry/api";
import type { CallContext } from "../../shared/grpc/index.js";
import { silentLogger } from "../../shared/logging/index.js";

/** A handler's or interceptor's CallContext for a call made in a test (5 s to answer, no deadline, no principal unless given). */
export function callContext(overrides: Partial<CallContext> = {}): CallContext {
  return {
    method: "test/Method",
    rpc: undefined,
    principal: undefined,
    requestId: "r1",
    deadline: undefined,
    answerBy: Date.now() + 5000,
    signal: new AbortController().signal,
    logger: silentLogger(),
    traceContext: ROOT_CONTEXT,
    metadata: {},
    responseHeaders: {},
    ...overrides,
  };
}
