import { OrderlyError } from "../errors/index.js";

/** The page size used when a request asks for none. */
export const DEFAULT_PAGE_SIZE = 50;
/** The largest page; larger requests are clamped to it (AIP-158). */
export const MAX_PAGE_SIZE = 100;

/** The page size to use for a requested one: default for 0, clamped to MAX_PAGE_SIZE, an error when negative. */
export function pageSize(requested: number): number {
  if (requested < 0) {
    throw new OrderlyError("VALIDATION_FAILED", "page_size must not be negative", {
      violations: [{ field: "page_size", description: "must not be negative" }],
    });
  }
  if (requested === 0) return DEFAULT_PAGE_SIZE;
  return Math.min(requested, MAX_PAGE_SIZE);
}

/**
 * Encodes a cursor (the sort key of the last row of a page) with the query it
 * belongs to, as an opaque URL-safe token.
 */
export function encodePageToken(query: string, cursor: readonly (string | number)[]): string {
  return Buffer.from(JSON.stringify({ q: query, c: cursor })).toString("base64url");
}

/** What each value of a cursor is: text, or a whole number (a time in ms). */
export type CursorShape = readonly ("string" | "integer")[];

/** The values of a cursor of shape `S`. */
export type Cursor<S extends CursorShape> = { -readonly [I in keyof S]: S[I] extends "string" ? string : number };

/**
 * Decodes a page token for a query; "" means the first page (undefined). A
 * token of another query, or whose cursor is not of `shape` (as a forged one
 * may not be), is INVALID_PAGE_TOKEN.
 */
export function decodePageToken<const S extends CursorShape>(query: string, token: string, shape: S): Cursor<S> | undefined {
  if (token === "") return undefined;
  try {
    const parsed: unknown = JSON.parse(Buffer.from(token, "base64url").toString("utf8"));
    const cursor = (parsed as { c?: unknown } | null)?.c;
    if (
      typeof parsed === "object" && parsed !== null &&
      (parsed as { q?: unknown }).q === query &&
      Array.isArray(cursor) && cursor.length === shape.length &&
      cursor.every((v, i) => (shape[i] === "string" ? typeof v === "string" : Number.isSafeInteger(v)))
    ) {
      return cursor as Cursor<S>;
    }
  } catch {
    // fall through: not a token of ours
  }
  throw new OrderlyError("INVALID_PAGE_TOKEN", "page_token is not valid for this request", {
    violations: [{ field: "page_token", description: "not a token returned by this list call" }],
  });
}
