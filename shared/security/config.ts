import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { ConfigError, readString, type Env } from "../config/env.js";
import type { JwtSettings } from "./jwt.js";

/** The certificate files of a process on mTLS links (all three, or mTLS is off). */
export interface TlsFiles {
  caFile: string;
  certFile: string;
  keyFile: string;
}

/** How a process proves and checks identities. */
export interface SecurityConfig {
  /** The key that signs principals on links between Orderly processes. */
  linkKey: Buffer;
  /** Bearer-token (JWT) verification; required at the gateway, optional in services. */
  jwt: JwtSettings | undefined;
  /** mTLS on gRPC links, when configured. */
  tls: TlsFiles | undefined;
}

/** Where the local run and the tests keep generated dev secrets. */
export function secretsDir(dataDir: string): string {
  return join(dataDir, "secrets");
}

/** The file holding a NATS user's dev password, as the local run writes it (scripts/dev-security.ts). */
export function natsPasswordFile(dataDir: string, user: string): string {
  return join(secretsDir(dataDir), `nats-${user}.password`);
}

function secretFrom(env: Env, name: string, fileName: string, fallbackFile: string): string | undefined {
  const inline = env[name];
  if (inline !== undefined && inline !== "") return inline;
  const file = readString(env, fileName, fallbackFile);
  if (!existsSync(file)) {
    if (env[fileName]) throw new ConfigError(`${fileName} names a file that does not exist: ${file}`);
    return undefined;
  }
  return readFileSync(file, "utf8").trim();
}

/**
 * Reads the security settings. Secrets come from the environment or from
 * files (by default under $ORDERLY_DATA_DIR/secrets, where `npm start`
 * writes dev credentials), never from the repository. Without a link key a
 * process refuses to start: security is not optional.
 */
export function securityConfig(env: Env, dataDir: string, options: { requireJwt: boolean }): SecurityConfig {
  const dir = secretsDir(dataDir);
  const linkKey = secretFrom(env, "ORDERLY_LINK_KEY", "ORDERLY_LINK_KEY_FILE", join(dir, "link.key"));
  if (linkKey === undefined) {
    throw new ConfigError(
      `no link key: set ORDERLY_LINK_KEY or ORDERLY_LINK_KEY_FILE (npm start writes dev credentials to ${dir})`,
    );
  }
  if (Buffer.byteLength(linkKey) < 32) throw new ConfigError("the link key must be at least 32 characters");
  const publicKeyPem = secretFrom(env, "AUTH_JWT_PUBLIC_KEY", "AUTH_JWT_PUBLIC_KEY_FILE", join(dir, "jwt-public.pem"));
  if (publicKeyPem === undefined && options.requireJwt) {
    throw new ConfigError(
      `no token verification key: set AUTH_JWT_PUBLIC_KEY or AUTH_JWT_PUBLIC_KEY_FILE (npm start writes dev credentials to ${dir})`,
    );
  }
  const jwt = publicKeyPem === undefined
    ? undefined
    : { publicKeyPem, issuer: readString(env, "AUTH_JWT_ISSUER", "orderly-dev"), audience: readString(env, "AUTH_JWT_AUDIENCE", "orderly") };
  const tlsFiles = {
    caFile: readString(env, "ORDERLY_TLS_CA_FILE", ""),
    certFile: readString(env, "ORDERLY_TLS_CERT_FILE", ""),
    keyFile: readString(env, "ORDERLY_TLS_KEY_FILE", ""),
  };
  const set = Object.values(tlsFiles).filter((file) => file !== "").length;
  if (set > 0 && set < 3) throw new ConfigError("mTLS needs all of ORDERLY_TLS_CA_FILE, ORDERLY_TLS_CERT_FILE and ORDERLY_TLS_KEY_FILE");
  const tls = set === 0 ? undefined : tlsFiles;
  return { linkKey: Buffer.from(linkKey), jwt, tls };
}
