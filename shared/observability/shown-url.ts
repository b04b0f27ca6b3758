/**
 * How logs, traces and the gateway's own refusals show a request's URL: what
 * a route reads from it, and nothing a client may have put there by mistake
 * (a token as a query parameter, after a `;`, or as a path segment).
 */

/** A query value shown as it is: plain characters only, up to 64 (a number, a day, a SKU; a bearer token is plain, and longer). */
const PLAIN_VALUE = /^[A-Za-z0-9._~-]{0,64}$/;

/** A path segment shown as it is: plain characters, and `:` of an action, up to the 64 of an id or a SKU (a token is longer). */
const PLAIN_SEGMENT = /^[A-Za-z0-9._~:-]{0,64}$/;

/** A path of plain segments only, shown whole (the common case, in one test). */
const PLAIN_PATH = /^(?:\/[A-Za-z0-9._~:-]{0,64})*$/;

/**
 * A query string as shown: a parameter a route takes, with its value when that is plain, and `…` for anything else
 * (`?access_token=`, a value after `;` or `#`, a bare `?secret`, an encoded `=`). Such a request is refused 400, its
 * message quoting no name that does not look like one.
 */
export function shownQuery(search: string, names: ReadonlySet<string>): string {
  return search
    .split("&")
    .map((pair) => {
      const at = pair.indexOf("=");
      const name = at < 0 ? pair : pair.slice(0, at);
      if (!names.has(name)) return "…";
      return at < 0 || PLAIN_VALUE.test(pair.slice(at + 1)) ? pair : `${name}=…`;
    })
    .join("&");
}

/** A path segment as shown: as it is when plain (shownPath), else `…`. */
export function shownSegment(segment: string): string {
  return PLAIN_SEGMENT.test(segment) ? segment : "…";
}

/**
 * A path as shown: each segment as it is when plain, up to 64 characters (`/v1/orders/ord_1:cancel`), and `…` for any
 * other (`/v1/orders/<a token>`, `/v1/inventory;access_token=…`).
 */
export function shownPath(path: string): string {
  return PLAIN_PATH.test(path) ? path : path.split("/").map(shownSegment).join("/");
}
