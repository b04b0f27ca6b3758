/**
 * The rows of a keyset-paged query, one page at a time: `read(after)`
 * returns up to `pageSize` rows following `after` (the last row of the
 * previous page; undefined for the first). The next page is read only when
 * the caller has gone through this one, so rows it changed meanwhile are
 * seen as they now are, and leaving the loop early reads no more.
 */
export function* keysetPages<T>(read: (after: T | undefined) => T[], pageSize: number): Generator<T> {
  let after: T | undefined;
  for (;;) {
    const page = read(after);
    yield* page;
    if (page.length < pageSize) return;
    after = page[page.length - 1];
  }
}
