/**
 * The LIMIT of a statement whose row count is bound when it runs:
 * `LIMIT ${boundLimit()}`, or `boundLimit("@limit")` for a named parameter.
 *
 * SQLite (3.53, as better-sqlite3 bundles it) plans a bare `LIMIT ?` with
 * the value bound, and so marks the statement to be compiled again whenever
 * that parameter is bound anew. better-sqlite3 binds every parameter on
 * every run, so every run compiled the statement again: ~59k instructions
 * each time the relay read the outbox, and a one-row page of a customer's
 * orders took 19 µs instead of 9. SQLite does not plan with a CAST of the
 * parameter; the plans stay the same. A limit that is not an integer is cut
 * to one (2.5 → 2) where a bare parameter was refused: pass integers.
 */
export function boundLimit(parameter = "?"): string {
  return `CAST(${parameter} AS INTEGER)`;
}
