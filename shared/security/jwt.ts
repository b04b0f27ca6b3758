import { createPublicKey, type KeyObject } from "node:crypto";
import { errors, jwtVerify } from "jose";
import { OrderlyError } from "../errors/index.js";
import { MAX_CUSTOMER_ID_CHARS, MAX_SUBJECT_CHARS } from "./link-token.js";
import { rolesFrom, type Principal } from "./principal.js";

/** What a bearer token must satisfy. */
export interface JwtSettings {
  /** The issuer's public key (PEM, SPKI), ES256. */
  publicKeyPem: string;
  issuer: string;
  audience: string;
}

/** The largest number of verified tokens remembered (each until it expires, or until all are forgotten at once when full). */
const MAX_REMEMBERED = 10_000;

/**
 * The key a verified header is remembered by: its last characters, which end
 * the token's signature. Every request's header is a new string, and a Map
 * hashes a string key in full, so keying by the whole header cost a pass over
 * every character of the token per request (callgrind: ~2,900 instructions
 * of a gateway's cache hit with a 270-character header, more for a token
 * with more claims). The entry keeps the whole header and a lookup compares
 * it, so two headers sharing a tail (the same token with the scheme spelled
 * differently) evict each other, and neither is ever given the other's.
 */
const REMEMBER_KEY_LENGTH = 24;
function rememberKey(authorization: string): string {
  return authorization.length <= REMEMBER_KEY_LENGTH ? authorization : authorization.slice(-REMEMBER_KEY_LENGTH);
}

/**
 * Verifies bearer tokens (JWT, ES256) with jose: signature, issuer,
 * audience, expiry (30 s of clock skew allowed). Claims: `sub`, `roles`
 * (["customer"] or ["admin"]), and `customer_id` for customers. A verified
 * token is remembered until it expires, so a client's repeated calls cost a
 * map lookup rather than a signature check.
 */
export class JwtVerifier {
  private readonly key: KeyObject;
  private readonly remembered = new Map<string, { authorization: string; principal: Principal; exp: number }>();
  private readonly pending = new Map<string, Promise<Principal>>();

  constructor(private readonly settings: JwtSettings) {
    this.key = createPublicKey(settings.publicKeyPem);
  }

  /** The principal of a token verified before and not expired; undefined otherwise (nothing is verified). */
  known(authorization: string | undefined, now = Date.now()): Principal | undefined {
    if (authorization === undefined) return undefined;
    const key = rememberKey(authorization);
    const known = this.remembered.get(key);
    if (known === undefined || known.authorization !== authorization) return undefined;
    if (known.exp > now) return known.principal;
    this.remembered.delete(key);
    return undefined;
  }

  /**
   * The principal of an Authorization header value: AUTHENTICATION_REQUIRED
   * without one, INVALID_CREDENTIALS when it is not `Bearer <token>` or the
   * token does not verify. The services use it; the gateway asks `known`
   * and then `verify` (it rate-limits in between). A remembered token's
   * principal is returned as it is, not in a promise, so a caller that is
   * not waiting on anything else need not wait at all.
   */
  authenticate(authorization: string | undefined, now = Date.now()): Principal | Promise<Principal> {
    // Remembered by the header as sent, so a steady client costs one map lookup (not even the header's parsing).
    return this.known(authorization, now) ?? this.verify(authorization, now);
  }

  /**
   * Verifies an Authorization header value without looking it up first (for
   * a caller that already knows the token is not remembered): the principal,
   * or AUTHENTICATION_REQUIRED / INVALID_CREDENTIALS as `authenticate` gives.
   * Concurrent calls with one header share one signature check.
   */
  verify(authorization: string | undefined, now = Date.now()): Promise<Principal> {
    if (authorization === undefined) return Promise.reject(new OrderlyError("AUTHENTICATION_REQUIRED", "send Authorization: Bearer <token>"));
    const token = bearerToken(authorization);
    if (token === undefined) return Promise.reject(new OrderlyError("INVALID_CREDENTIALS", "the Authorization header must be Bearer <token>"));
    let pending = this.pending.get(authorization);
    if (pending === undefined) {
      pending = this.check(authorization, token, now).finally(() => this.pending.delete(authorization));
      this.pending.set(authorization, pending);
    }
    return pending;
  }

  private async check(authorization: string, token: string, now: number): Promise<Principal> {
    try {
      const { payload } = await jwtVerify(token, this.key, {
        issuer: this.settings.issuer,
        audience: this.settings.audience,
        algorithms: ["ES256"],
        clockTolerance: 30,
        requiredClaims: ["sub", "exp"],
        currentDate: new Date(now),
      });
      // jose requires a sub but not that it is a string. The principal travels on to the services signed, within a
      // length they take: refused here, as the bearer token's fault, what a service would refuse as the call's.
      if (typeof payload.sub !== "string" || payload.sub === "" || payload.sub.length > MAX_SUBJECT_CHARS) {
        throw new OrderlyError("INVALID_CREDENTIALS", `the bearer token's sub must be a string of 1 to ${MAX_SUBJECT_CHARS} characters`);
      }
      const roles = rolesFrom(payload.roles).filter((role) => role !== "service");
      const customerId = typeof payload.customer_id === "string" ? payload.customer_id : undefined;
      if (customerId !== undefined && (customerId === "" || customerId.length > MAX_CUSTOMER_ID_CHARS)) {
        throw new OrderlyError("INVALID_CREDENTIALS", `the bearer token's customer_id must be 1 to ${MAX_CUSTOMER_ID_CHARS} characters`);
      }
      if (roles.length === 0) throw new OrderlyError("INVALID_CREDENTIALS", "the bearer token grants no role");
      if (roles.includes("customer") && customerId === undefined) {
        throw new OrderlyError("INVALID_CREDENTIALS", "a customer's bearer token must carry customer_id");
      }
      const principal: Principal = { subject: payload.sub, customerId, roles };
      const key = rememberKey(authorization);
      if (this.remembered.size >= MAX_REMEMBERED && !this.remembered.has(key)) this.remembered.clear();
      this.remembered.set(key, { authorization, principal, exp: payload.exp! * 1000 });
      return principal;
    } catch (error) {
      if (error instanceof OrderlyError) throw error;
      const expired = error instanceof errors.JWTExpired;
      throw new OrderlyError("INVALID_CREDENTIALS", expired ? "the bearer token has expired" : "the bearer token is not valid");
    }
  }
}

/** The token of an `Authorization: Bearer <token>` value, or undefined when it is not one. */
export function bearerToken(authorization: string | undefined): string | undefined {
  if (authorization === undefined) return undefined;
  const match = /^Bearer +([A-Za-z0-9._~+/-]+=*)$/i.exec(authorization.trim());
  return match?.[1];
}
