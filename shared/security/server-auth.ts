import { getOption, hasOption, type DescMethod } from "@bufbuild/protobuf";
import { access } from "../../proto/gen/orderly/auth/v1/access_pb.js";
import { OrderlyError } from "../errors/index.js";
import type { Interceptor } from "../grpc/interceptors.js";
import type { JwtVerifier } from "./jwt.js";
import { PRINCIPAL_METADATA_KEY, type LinkTokens } from "./link-token.js";
import { roleOfEnum, type Principal, type Role } from "./principal.js";

/** What a service trusts: principals signed on links, and (optionally) bearer tokens sent straight to it. */
export interface ServiceAuth {
  links: LinkTokens;
  jwt: JwtVerifier | undefined;
}

/** Who may call a method: "public" (health, reflection), or the roles its orderly.auth.v1.access option lists. */
export type AccessRule = "public" | readonly Role[];

const rules = new WeakMap<DescMethod, AccessRule>();

/**
 * The access rule of a method. Orderly's own RPCs state theirs in the proto;
 * one that does not is callable by nobody (fail closed). Standard services
 * outside the orderly.* packages (grpc.health.v1) are public.
 */
export function accessRuleOf(method: DescMethod): AccessRule {
  let rule = rules.get(method);
  if (rule === undefined) {
    if (!method.parent.typeName.startsWith("orderly.")) rule = "public";
    else if (!hasOption(method, access)) rule = [];
    else rule = getOption(method, access).roles.map((r) => roleOfEnum[r]).filter((r): r is Role => r !== undefined);
    rules.set(method, rule);
  }
  return rule;
}

/** Refuses a principal (or its absence) that the rule does not admit. */
export function checkAccess(rule: AccessRule, principal: Principal | undefined, method: string): void {
  if (rule === "public") return;
  if (principal === undefined) throw new OrderlyError("AUTHENTICATION_REQUIRED", "this call needs credentials");
  if (!principal.roles.some((role) => rule.includes(role))) {
    throw new OrderlyError("ROLE_NOT_ALLOWED", `${method} is not open to the caller's role`, {
      metadata: { allowedRoles: rule.join(",") },
    });
  }
}

/**
 * Authenticates and authorizes every call before its handler: the principal
 * comes from a link token signed by another Orderly process
 * (x-orderly-principal) or from a bearer token sent by a client calling the
 * service directly; the method's access rule must admit one of its roles.
 * Handlers then see `context.principal` and check ownership.
 */
export function authorizeCalls(auth: ServiceAuth): Interceptor {
  return (next) => async (request, context) => {
    const rule = context.rpc === undefined ? [] : accessRuleOf(context.rpc);
    if (rule !== "public") {
      const linked = context.metadata[PRINCIPAL_METADATA_KEY];
      const authorization = context.metadata.authorization;
      if (linked !== undefined) context.principal = auth.links.verify(linked);
      else if (authorization !== undefined && auth.jwt !== undefined) context.principal = await auth.jwt.authenticate(authorization);
      checkAccess(rule, context.principal, context.method);
    }
    return next(request, context);
  };
}
