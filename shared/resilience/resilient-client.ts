import type { DescService } from "@bufbuild/protobuf";
import { MethodOptions_IdempotencyLevel } from "@bufbuild/protobuf/wkt";
import { createClient, type Client, type Connection } from "../grpc/index.js";
import type { DependencyPolicy } from "./dependency-policy.js";

/**
 * A typed client whose every call runs under the dependency's policy. A
 * method is retried only when its proto declares `idempotency_level`
 * IDEMPOTENT or NO_SIDE_EFFECTS.
 */
export function createResilientClient<S extends DescService>(service: S, connection: Connection, policy: DependencyPolicy): Client<S> {
  return createClient(service, connection, (method, call, options) =>
    policy.execute(
      method.idempotency !== MethodOptions_IdempotencyLevel.IDEMPOTENCY_UNKNOWN,
      ({ signal, deadline }) => call({ ...options, signal, deadline }),
      options,
    ),
  );
}
