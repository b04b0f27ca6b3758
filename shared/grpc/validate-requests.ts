import { create, type DescMessage, type DescService, type Message } from "@bufbuild/protobuf";
import { createValidator } from "@bufbuild/protovalidate";
import { pathToString } from "@bufbuild/protobuf/reflect";
import { OrderlyError, validationError } from "../errors/index.js";
import type { Interceptor } from "./interceptors.js";
import { patternMatcher } from "./pattern-match.js";

const validator = createValidator({ regexMatch: patternMatcher() });

/**
 * Checks every request against the buf.validate rules in its proto before
 * the handler runs: VALIDATION_FAILED with one field violation per broken
 * rule, the same for clients in every language and through the gateway.
 */
export const validateRequests: Interceptor = (next) => (request, context) => {
  if (context.rpc !== undefined) checkRules(context.rpc.input, request);
  return next(request, context);
};

/** Throws VALIDATION_FAILED (one violation per broken rule) unless the message keeps its proto's rules. */
export function checkRules(schema: DescMessage, message: Message): void {
  const result = validator.validate(schema, message as never);
  if (result.kind === "invalid") {
    throw validationError(result.violations.map((v) => ({ field: pathToString(v.field), description: v.message })));
  }
  if (result.kind === "error") throw new OrderlyError("INTERNAL", "the request's validation rules could not be evaluated", { cause: result.error });
}

/**
 * Compiles the rules of every request type of the services now (protovalidate
 * plans and compiles CEL on a type's first validation), so the first caller
 * of each RPC does not pay for it.
 */
export function prepareValidation(services: readonly DescService[]): void {
  for (const service of services) for (const method of service.methods) validator.validate(method.input, create(method.input));
}
