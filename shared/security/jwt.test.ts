import { readFileSync } from "node:fs";
import { join } from "node:path";
import { expect, test } from "vitest";
import { DEV_AUDIENCE, DEV_ISSUER, writeDevCredentials } from "../../scripts/dev-security.js";
import { OrderlyError } from "../errors/index.js";
import { JwtVerifier } from "./jwt.js";
import { tempDir } from "../../test/helpers/temp-dir.js";

test("a remembered token is known only by its whole header: another header ending the same way is verified, and refused when forged", async () => {
  using temp = tempDir("orderly-jwt-");
  const dataDir = temp.path;
  const tokens = await writeDevCredentials(dataDir);
  const jwt = new JwtVerifier({ publicKeyPem: readFileSync(join(dataDir, "secrets", "jwt-public.pem"), "utf8"), issuer: DEV_ISSUER, audience: DEV_AUDIENCE });
  const admin = `Bearer ${tokens.admin}`;
  const alice = tokens.customers.alice!;
  expect(jwt.known(admin)).toBeUndefined();
  expect((await jwt.authenticate(admin)).roles).toEqual(["admin"]);
  expect(jwt.known(admin)?.roles).toEqual(["admin"]);

  // Alice's claims with the end of the admin's signature: the same last characters as the remembered header.
  const tail = admin.slice(-40);
  const forged = `Bearer ${alice.slice(0, alice.length - tail.length)}${tail}`;
  expect(forged.slice(-40)).toBe(admin.slice(-40));
  expect(jwt.known(forged)).toBeUndefined();
  const refused = await Promise.resolve(jwt.authenticate(forged)).catch((error: unknown) => error);
  expect((refused as OrderlyError).reason).toBe("INVALID_CREDENTIALS");
  expect(jwt.known(admin)?.roles).toEqual(["admin"]);

  // The same token under another spelling of the scheme: a header of its own (not known), verified; both are served.
  const lower = `bearer ${tokens.admin}`;
  expect(jwt.known(lower)).toBeUndefined();
  expect((await jwt.authenticate(lower)).roles).toEqual(["admin"]);
  // They share the remembered slot: the newer spelling is known, the other is verified again when it comes.
  expect(jwt.known(lower)?.roles).toEqual(["admin"]);
  expect(jwt.known(admin)).toBeUndefined();
  expect((await jwt.authenticate(admin)).roles).toEqual(["admin"]);
  expect(jwt.known(admin)?.roles).toEqual(["admin"]);

  // Not known once expired (the dev tokens live a week), and forgotten then.
  const weekLater = Date.now() + 8 * 24 * 3600 * 1000;
  expect(jwt.known(admin, weekLater)).toBeUndefined();
  expect(jwt.known(admin)).toBeUndefined();
});
