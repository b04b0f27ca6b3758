import type { DescMessage, DescMethodUnary, DescService, MessageInitShape, MessageShape } from "@bufbuild/protobuf";
import { MethodOptions_IdempotencyLevel } from "@bufbuild/protobuf/wkt";
import { Health } from "../../proto/gen/grpc/health/v1/health_pb.js";
import { callUnary, createClient, onReady, tooLateToChange, type CallOptions, type Client, type Connection } from "../grpc/index.js";
import { DependencyPolicy, type Attempt } from "./dependency-policy.js";

/** Whether a method may be retried: its proto declares idempotency_level IDEMPOTENT or NO_SIDE_EFFECTS. */
export function isIdempotent(method: DescMethodUnary): boolean {
  return method.idempotency !== MethodOptions_IdempotencyLevel.IDEMPOTENCY_UNKNOWN;
}

/**
 * Runs a call to `method` under the dependency's policy (retried only when the method is idempotent). An attempt
 * that would reach the service with too little time left to make a change is not sent (tooLateToChange: the
 * service would refuse it), and fails as the service's refusal would.
 */
function executeCall<T>(policy: DependencyPolicy, method: DescMethodUnary, send: (attempt: Attempt) => Promise<T>, options: CallOptions): Promise<T> {
  return policy.execute(
    isIdempotent(method),
    (attempt) => {
      const refusal = tooLateToChange(method, attempt.deadline - Date.now());
      return refusal ? Promise.reject(refusal) : send(attempt);
    },
    { ...options, method: method.name },
  );
}

/** Makes one unary call under a dependency's policy (see executeCall). */
export function callWithPolicy<I extends DescMessage, O extends DescMessage>(
  policy: DependencyPolicy,
  connection: Connection,
  method: DescMethodUnary<I, O>,
  request: MessageInitShape<I>,
  options: CallOptions = {},
): Promise<MessageShape<O>> {
  return executeCall(policy, method as DescMethodUnary, ({ signal, deadline }) => callUnary(connection, method, request, { ...options, signal, deadline }), options);
}

/**
 * The policy of a dependency reached over `connection`: while its breaker is
 * open it probes the dependency's grpc.health.v1 Check (of the whole server;
 * any answer but a failure of its own passes: a server NOT_SERVING, its NATS
 * down say, still answers what its callers want), and at once when the
 * connection is ready again. Close it before the connection.
 */
export function connectionPolicy(connection: Connection, options: Omit<ConstructorParameters<typeof DependencyPolicy>[0], "probe">): DependencyPolicy {
  const policy = new DependencyPolicy({ ...options, probe: (deadline) => callUnary(connection, Health.method.check, { service: "" }, { deadline }) });
  onReady(
    connection,
    () => policy.reachable(),
    () => policy.breakerState === "open",
  );
  return policy;
}

/** A typed client whose every call runs under the dependency's policy. */
export function createResilientClient<S extends DescService>(service: S, connection: Connection, policy: DependencyPolicy): Client<S> {
  return createClient(service, connection, (method, call, options) => executeCall(policy, method, ({ signal, deadline }) => call({ ...options, signal, deadline }), options));
}
