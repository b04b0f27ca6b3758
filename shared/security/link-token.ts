import { createHmac, timingSafeEqual } from "node:crypto";
import { OrderlyError } from "../errors/index.js";
import { rolesFrom, type Principal } from "./principal.js";

/**
 * The metadata key carrying the caller's principal between Orderly processes
 * (gateway → service, service → service).
 */
export const PRINCIPAL_METADATA_KEY = "x-orderly-principal";

/** How long a signed principal is accepted after it was signed (ms). */
const LINK_TOKEN_TTL_MS = 60_000;
/**
 * How far ahead of a verifier's clock a signer's may run (ms): a token whose
 * expiry lies further ahead than its lifetime and this is refused, so a
 * leaked token (or one signed by a clock set wrong) is good for 90 s at most.
 */
const CLOCK_SKEW_MS = 30_000;
/** The longest signed principal a verifier takes (characters). */
const MAX_LINK_TOKEN_CHARS = 4096;
/**
 * The longest subject and customer id a principal may have (characters): the longest signed form of both, every
 * character escaped in its JSON (\u0001: 6 bytes), with every role, stays within MAX_LINK_TOKEN_CHARS (link-token
 * tests). A customer id is at most 64 characters in the API too.
 */
export const MAX_SUBJECT_CHARS = 256;
export const MAX_CUSTOMER_ID_CHARS = 64;
/** A signed principal is re-signed when less than this much of its life is left (ms). */
const RESIGN_MARGIN_MS = 30_000;

interface LinkClaims {
  sub: string;
  cid?: string;
  roles: string[];
  exp: number;
}

/**
 * Signs and verifies principals on the links between Orderly processes:
 * `base64url(JSON claims) "." base64url(HMAC-SHA256(key, claims))`, valid
 * for a minute. The key is shared by the gateway and the services (it is
 * what makes a service trust the gateway's word about who is calling); it
 * comes from ORDERLY_LINK_KEY or ORDERLY_LINK_KEY_FILE, never from the repo.
 *
 * Hand-written rather than a JWT library because the format is internal,
 * fixed (one algorithm, no headers to negotiate) and on every call's path:
 * signing is cached per principal and verifying is one HMAC.
 */
export class LinkTokens {
  private readonly signed = new Map<string, { token: string; exp: number }>();
  private readonly verified = new Map<string, { principal: Principal; exp: number }>();

  constructor(private readonly key: Buffer) {
    if (key.length < 32) throw new Error("the link key must be at least 32 bytes");
  }

  private mac(payload: string): Buffer {
    return createHmac("sha256", this.key).update(payload).digest();
  }

  /** The signed form of a principal (cached while more than half its life is left). */
  sign(principal: Principal, now = Date.now()): string {
    const cacheKey = `${principal.subject}\u0000${principal.customerId ?? ""}\u0000${principal.roles.join(",")}`;
    const cached = this.signed.get(cacheKey);
    if (cached !== undefined && cached.exp - now > RESIGN_MARGIN_MS) return cached.token;
    const claims: LinkClaims = { sub: principal.subject, roles: [...principal.roles], exp: now + LINK_TOKEN_TTL_MS };
    if (principal.customerId !== undefined) claims.cid = principal.customerId;
    const payload = Buffer.from(JSON.stringify(claims)).toString("base64url");
    const token = `${payload}.${this.mac(payload).toString("base64url")}`;
    if (this.signed.size > 10_000) this.signed.clear();
    this.signed.set(cacheKey, { token, exp: claims.exp });
    return token;
  }

  /** The principal of a signed token; UNAUTHENTICATED (INVALID_CREDENTIALS) when forged, malformed, expired or expiring further ahead than a token can. */
  verify(token: string, now = Date.now()): Principal {
    const cached = this.verified.get(token);
    if (cached !== undefined && cached.exp > now) return cached.principal;
    const invalid = () => new OrderlyError("INVALID_CREDENTIALS", "the principal on this call is not valid");
    const dot = token.indexOf(".");
    if (dot <= 0 || token.length > MAX_LINK_TOKEN_CHARS) throw invalid();
    const payload = token.slice(0, dot);
    const given = Buffer.from(token.slice(dot + 1), "base64url");
    const expected = this.mac(payload);
    if (given.length !== expected.length || !timingSafeEqual(given, expected)) throw invalid();
    let claims: LinkClaims;
    try {
      claims = JSON.parse(Buffer.from(payload, "base64url").toString("utf8")) as LinkClaims;
    } catch {
      throw invalid();
    }
    if (typeof claims.exp !== "number" || claims.exp > now + LINK_TOKEN_TTL_MS + CLOCK_SKEW_MS || typeof claims.sub !== "string") throw invalid();
    // Signed by a linked process, but long ago: a call read long after it was sent (a process paused, say, whose caller
    // has given up), or hosts whose clocks differ by more than a token lives. Said so, not taken for a forgery.
    if (claims.exp <= now) {
      throw new OrderlyError("INVALID_CREDENTIALS", "the principal on this call has expired: the call was read long after it was sent, or the hosts' clocks differ");
    }
    const principal: Principal = {
      subject: claims.sub,
      customerId: typeof claims.cid === "string" ? claims.cid : undefined,
      roles: rolesFrom(claims.roles),
    };
    if (this.verified.size > 10_000) this.verified.clear();
    this.verified.set(token, { principal, exp: claims.exp });
    return principal;
  }
}
