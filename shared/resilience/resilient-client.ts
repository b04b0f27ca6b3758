import type { DescMessage, DescMethodUnary, DescService, MessageInitShape, MessageShape } from "@bufbuild/protobuf";
import { MethodOptions_IdempotencyLevel } from "@bufbuild/protobuf/wkt";
import { callUnary, createClient, onReady, type CallOptions, type Client, type Connection } from "../grpc/index.js";
import type { DependencyPolicy } from "./dependency-policy.js";

/** Whether a method may be retried: its proto declares idempotency_level IDEMPOTENT or NO_SIDE_EFFECTS. */
export function isIdempotent(method: DescMethodUnary): boolean {
  return method.idempotency !== MethodOptions_IdempotencyLevel.IDEMPOTENCY_UNKNOWN;
}

/** Makes one unary call under a dependency's policy (retried only when the method is idempotent). */
export function callWithPolicy<I extends DescMessage, O extends DescMessage>(
  policy: DependencyPolicy,
  connection: Connection,
  method: DescMethodUnary<I, O>,
  request: MessageInitShape<I>,
  options: CallOptions = {},
): Promise<MessageShape<O>> {
  return policy.execute(
    isIdempotent(method as DescMethodUnary),
    ({ signal, deadline }) => callUnary(connection, method, request, { ...options, signal, deadline }),
    options,
  );
}

/** A typed client whose every call runs under the dependency's policy; the policy's open breaker probes as soon as the connection is ready again. */
export function createResilientClient<S extends DescService>(service: S, connection: Connection, policy: DependencyPolicy): Client<S> {
  onReady(connection, () => policy.reachable());
  return createClient(service, connection, (method, call, options) =>
    policy.execute(isIdempotent(method), ({ signal, deadline }) => call({ ...options, signal, deadline }), options),
  );
}
