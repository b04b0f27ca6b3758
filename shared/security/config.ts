import { X509Certificate, createPrivateKey, createPublicKey } from "node:crypto";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { ConfigError, readFileOf, readString, type Env } from "../config/env.js";
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

/** A secret, and where it came from for a message about it: the variable, with the file when it came from one. */
interface Secret {
  value: string;
  source: string;
}

/** The secret inline in `name`, else in the file `fileName` names (or `fallbackFile`, when it exists); undefined without either. */
function secretFrom(env: Env, name: string, fileName: string, fallbackFile: string): Secret | undefined {
  const inline = env[name];
  if (inline !== undefined && inline !== "") return { value: inline, source: name };
  const file = readString(env, fileName, fallbackFile);
  if (!env[fileName] && !existsSync(file)) return undefined;
  return { value: readFileOf(fileName, file).trim(), source: `${fileName} (${file})` };
}

/** What went wrong parsing a key or certificate: OpenSSL's reason, without its error code. */
function parseFailure(error: unknown): string {
  return error instanceof Error ? error.message.replace(/^error:[0-9A-F]+:/, "") : String(error);
}

/** Checks that a token verification key is an ES256 (EC P-256) public key, in PEM; a ConfigError naming its variable if not. */
function checkJwtKey(key: Secret): void {
  let parsed;
  try {
    parsed = createPublicKey(key.value);
  } catch (error) {
    throw new ConfigError(`${key.source} does not hold a PEM public key (${parseFailure(error)})`);
  }
  if (parsed.asymmetricKeyType !== "ec" || parsed.asymmetricKeyDetails?.namedCurve !== "prime256v1") {
    throw new ConfigError(`${key.source} must hold an ES256 (EC P-256) public key, got ${parsed.asymmetricKeyType} ${parsed.asymmetricKeyDetails?.namedCurve ?? ""}`.trimEnd());
  }
}

/** Checks that the mTLS files can be read and hold a CA certificate, a certificate and its private key; a ConfigError naming the variable of one that does not. */
function checkTlsFiles(files: TlsFiles): void {
  const parse = <T>(name: string, file: string, what: string, parser: (pem: string) => T): T => {
    const pem = readFileOf(name, file);
    try {
      return parser(pem);
    } catch (error) {
      throw new ConfigError(`${name} (${file}) does not hold ${what} (${parseFailure(error)})`);
    }
  };
  parse("ORDERLY_TLS_CA_FILE", files.caFile, "a PEM certificate", (pem) => new X509Certificate(pem));
  const certificate = parse("ORDERLY_TLS_CERT_FILE", files.certFile, "a PEM certificate", (pem) => new X509Certificate(pem));
  const key = parse("ORDERLY_TLS_KEY_FILE", files.keyFile, "a PEM private key", (pem) => createPrivateKey(pem));
  if (!certificate.checkPrivateKey(key)) {
    throw new ConfigError(`ORDERLY_TLS_KEY_FILE (${files.keyFile}) is not the key of the certificate in ORDERLY_TLS_CERT_FILE (${files.certFile})`);
  }
}

/** A key found neither in its variables nor in `dir`: which variable points at the one the other processes use. */
function missingKey(what: string, dir: string, variable: string): ConfigError {
  return new ConfigError(
    `no ${what} in ${dir}: set ${variable}_FILE to the one the other processes use (npm start writes it to the secrets folder of its data directory), or ${variable}`,
  );
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
  if (linkKey === undefined) throw missingKey("link key", dir, "ORDERLY_LINK_KEY");
  const linkKeyLength = Buffer.byteLength(linkKey.value);
  if (linkKeyLength < 32) throw new ConfigError(`${linkKey.source} must be at least 32 characters, got ${linkKeyLength}`);
  const publicKey = secretFrom(env, "AUTH_JWT_PUBLIC_KEY", "AUTH_JWT_PUBLIC_KEY_FILE", join(dir, "jwt-public.pem"));
  if (publicKey !== undefined) checkJwtKey(publicKey);
  if (publicKey === undefined && options.requireJwt) throw missingKey("token verification key", dir, "AUTH_JWT_PUBLIC_KEY");
  const jwt = publicKey === undefined
    ? undefined
    : { publicKeyPem: publicKey.value, issuer: readString(env, "AUTH_JWT_ISSUER", "orderly-dev"), audience: readString(env, "AUTH_JWT_AUDIENCE", "orderly") };
  const tlsFiles = {
    caFile: readString(env, "ORDERLY_TLS_CA_FILE", ""),
    certFile: readString(env, "ORDERLY_TLS_CERT_FILE", ""),
    keyFile: readString(env, "ORDERLY_TLS_KEY_FILE", ""),
  };
  const set = Object.values(tlsFiles).filter((file) => file !== "").length;
  if (set > 0 && set < 3) throw new ConfigError("mTLS needs all of ORDERLY_TLS_CA_FILE, ORDERLY_TLS_CERT_FILE and ORDERLY_TLS_KEY_FILE");
  const tls = set === 0 ? undefined : tlsFiles;
  if (tls !== undefined) checkTlsFiles(tls);
  return { linkKey: Buffer.from(linkKey.value), jwt, tls };
}
