export { type Principal, type Role, mayActFor, requireActFor, actsForAnyCustomer, rolesFrom } from "./principal.js";
export { LinkTokens, PRINCIPAL_METADATA_KEY } from "./link-token.js";
export { JwtVerifier, bearerToken, type JwtSettings } from "./jwt.js";
export { accessRuleOf, checkAccess, authorizeCalls, type AccessRule, type ServiceAuth } from "./server-auth.js";
export { natsPasswordFile, securityConfig, secretsDir, type SecurityConfig, type TlsFiles } from "./config.js";
export { serviceAuth } from "./service-auth.js";
