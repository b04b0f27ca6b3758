import type { SecurityConfig } from "./config.js";
import { JwtVerifier } from "./jwt.js";
import { LinkTokens } from "./link-token.js";
import type { ServiceAuth } from "./server-auth.js";

/** What a service's gRPC server trusts, from its security settings. */
export function serviceAuth(security: SecurityConfig): ServiceAuth {
  return { links: new LinkTokens(security.linkKey), jwt: security.jwt && new JwtVerifier(security.jwt) };
}
