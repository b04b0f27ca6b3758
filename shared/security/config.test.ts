import { generateKeyPairSync } from "node:crypto";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { expect, test } from "vitest";
import { writeDevCertificates } from "../../scripts/dev-security.js";
import { tempDir } from "../../test/helpers/temp-dir.js";
import { securityConfig } from "./config.js";

const LINK_KEY = "k".repeat(32);
const EC_KEY = generateKeyPairSync("ec", { namedCurve: "P-256" }).publicKey.export({ type: "spki", format: "pem" }).toString();
const RSA_KEY = generateKeyPairSync("rsa", { modulusLength: 2048 }).publicKey.export({ type: "spki", format: "pem" }).toString();

test("a link key or token key a process cannot use is refused, naming the variable (and the file) it came from", () => {
  using dir = tempDir("orderly-security-");
  const keyFile = join(dir.path, "link.key");
  writeFileSync(keyFile, "short\n");
  expect(() => securityConfig({ ORDERLY_LINK_KEY_FILE: keyFile }, dir.path, { requireJwt: false })).toThrow(`ORDERLY_LINK_KEY_FILE (${keyFile}) must be at least 32 characters, got 5`);
  expect(() => securityConfig({ ORDERLY_LINK_KEY: LINK_KEY, AUTH_JWT_PUBLIC_KEY: "garbage" }, dir.path, { requireJwt: false })).toThrow(/^AUTH_JWT_PUBLIC_KEY does not hold a PEM public key \(/);
  expect(() => securityConfig({ ORDERLY_LINK_KEY: LINK_KEY, AUTH_JWT_PUBLIC_KEY: RSA_KEY }, dir.path, { requireJwt: false })).toThrow("AUTH_JWT_PUBLIC_KEY must hold an ES256 (EC P-256) public key, got rsa");
  expect(securityConfig({ ORDERLY_LINK_KEY: LINK_KEY, AUTH_JWT_PUBLIC_KEY: EC_KEY }, dir.path, { requireJwt: true }).jwt?.issuer).toBe("orderly-dev");
});

test("a process of a data directory without keys (a query copy of its own, say) is told which variables point at the other processes' keys", () => {
  using dir = tempDir("orderly-security-");
  const secrets = join(dir.path, "secrets");
  expect(() => securityConfig({}, dir.path, { requireJwt: false })).toThrow(
    `no link key in ${secrets}: set ORDERLY_LINK_KEY_FILE to the one the other processes use (npm start writes it to the secrets folder of its data directory), or ORDERLY_LINK_KEY`,
  );
  expect(() => securityConfig({ ORDERLY_LINK_KEY: LINK_KEY }, dir.path, { requireJwt: true })).toThrow(
    `no token verification key in ${secrets}: set AUTH_JWT_PUBLIC_KEY_FILE to the one the other processes use (npm start writes it to the secrets folder of its data directory), or AUTH_JWT_PUBLIC_KEY`,
  );
});

test("mTLS files are read and checked at start: each must hold what it is for, and the key must be the certificate's", () => {
  using dir = tempDir("orderly-security-");
  const files = writeDevCertificates(dir.path, ["order", "query"]);
  const env = (order: (typeof files)[string], keyFile = order.keyFile) => ({
    ORDERLY_LINK_KEY: LINK_KEY,
    ORDERLY_TLS_CA_FILE: order.caFile,
    ORDERLY_TLS_CERT_FILE: order.certFile,
    ORDERLY_TLS_KEY_FILE: keyFile,
  });
  expect(securityConfig(env(files.order!), dir.path, { requireJwt: false }).tls).toEqual(files.order);
  expect(() => securityConfig(env(files.order!, files.query!.keyFile), dir.path, { requireJwt: false })).toThrow(
    `ORDERLY_TLS_KEY_FILE (${files.query!.keyFile}) is not the key of the certificate in ORDERLY_TLS_CERT_FILE (${files.order!.certFile})`,
  );
  expect(() => securityConfig(env({ ...files.order!, certFile: files.order!.keyFile }), dir.path, { requireJwt: false })).toThrow(
    `ORDERLY_TLS_CERT_FILE (${files.order!.keyFile}) does not hold a PEM certificate`,
  );
  expect(() => securityConfig(env({ ...files.order!, caFile: join(dir.path, "missing.crt") }), dir.path, { requireJwt: false })).toThrow(
    `ORDERLY_TLS_CA_FILE names a file that cannot be read: ${join(dir.path, "missing.crt")} (ENOENT: no such file or directory)`,
  );
});
