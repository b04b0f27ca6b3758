import type { Context } from "@opentelemetry/api";

/**
 * Wraps each SQLite transaction a store or consumer runs, by name, so that
 * its time can be measured and traced (see shared/observability) without
 * the store knowing how.
 */
export interface TransactionTimer {
  /** Runs `fn` (which runs one transaction) and returns what it returns; `traceContext` is the trace it belongs to (the active one when not given). */
  run<T>(name: string, fn: () => T, traceContext?: Context): T;
}

/** A timer that only runs the transaction (unit tests, tools). */
export const untimed: TransactionTimer = { run: (_name, fn) => fn() };
