import { encodePageToken } from "./page-token.js";

/**
 * Cuts a page from rows fetched with a limit of `size + 1`: the first `size`
 * rows, and a token (the cursor of the last row) when there were more.
 */
export function pageOf<T>(rows: readonly T[], size: number, query: string, cursorOf: (row: T) => (string | number)[]): { rows: T[]; nextPageToken: string } {
  const page = rows.slice(0, size);
  const last = page.at(-1);
  return { rows: page, nextPageToken: rows.length > size && last !== undefined ? encodePageToken(query, cursorOf(last)) : "" };
}
