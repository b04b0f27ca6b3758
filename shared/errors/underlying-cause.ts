/** How deep a cause chain is followed (a cycle, or a library's long chain, ends there). */
const MAX_DEPTH = 8;

/**
 * The message of what lies under an error: the last of its `cause` chain,
 * when there is one and it says something the error does not (the
 * transport's "connect EMFILE 127.0.0.1:50052" under "inventory is
 * unavailable"). For log lines that give a failure by its reason and
 * message, which would otherwise drop what caused it.
 */
export function underlyingCause(error: unknown): string | undefined {
  let inner = error;
  for (let depth = 0; depth < MAX_DEPTH && inner instanceof Error && inner.cause !== undefined; depth++) inner = inner.cause;
  if (inner === error) return undefined;
  const message = inner instanceof Error ? inner.message : typeof inner === "string" ? inner : undefined;
  return message !== undefined && message !== (error as Error).message ? message : undefined;
}
