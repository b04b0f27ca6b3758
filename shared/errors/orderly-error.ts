import { Code, codeName } from "./code.js";
import { reasons, type Reason } from "./reasons.js";

/** One invalid field of a request (google.rpc.BadRequest.FieldViolation). */
export interface FieldViolation {
  field: string;
  description: string;
}

/** The error domain in every ErrorInfo Orderly sends. */
export const ERROR_DOMAIN = "orderly";

/**
 * The one error type of Orderly: a status code, a message safe to show a
 * client, a machine-readable reason, string metadata and optional field
 * violations. Anything thrown is turned into one by `OrderlyError.from`.
 */
export class OrderlyError extends Error {
  override readonly name = "OrderlyError";
  readonly code: Code;
  readonly reason: Reason;
  readonly metadata: Readonly<Record<string, string>>;
  readonly violations: readonly FieldViolation[];
  /** True when a peer service sent this error (its google.rpc.Status), false when it arose here or in the transport. */
  readonly remote: boolean;

  constructor(
    reason: Reason,
    message: string,
    options: {
      metadata?: Record<string, string>;
      violations?: FieldViolation[];
      code?: Code;
      cause?: unknown;
      remote?: boolean;
    } = {},
  ) {
    super(message, { cause: options.cause });
    this.reason = reason;
    this.code = options.code ?? reasons[reason];
    this.metadata = options.metadata ?? {};
    this.violations = options.violations ?? [];
    this.remote = options.remote ?? false;
  }

  /** Turns anything thrown into an OrderlyError; unknown errors become INTERNAL with a generic message. */
  static from(error: unknown): OrderlyError {
    if (error instanceof OrderlyError) return error;
    return new OrderlyError("INTERNAL", "internal error", { cause: error });
  }

  /** A short form for logs: "NOT_FOUND/ORDER_NOT_FOUND: ...". */
  override toString(): string {
    return `${codeName(this.code)}/${this.reason}: ${this.message}`;
  }
}

/** Shorthand for a VALIDATION_FAILED error listing field violations. */
export function validationError(violations: FieldViolation[]): OrderlyError {
  const summary = violations.map((v) => `${v.field}: ${v.description}`).join("; ");
  return new OrderlyError("VALIDATION_FAILED", `invalid request: ${summary}`, { violations });
}

const transientCodes: ReadonlySet<Code> = new Set([Code.UNAVAILABLE, Code.DEADLINE_EXCEEDED, Code.RESOURCE_EXHAUSTED]);

/** Whether a call's error may pass by itself (the service is down, slow or busy), as opposed to one about the request. */
export function isTransient(error: unknown): boolean {
  return transientCodes.has(OrderlyError.from(error).code);
}

/**
 * Why work ends when its signal aborts: the signal's reason when it is an
 * OrderlyError (the server is shutting down, say: SERVICE_UNAVAILABLE, which
 * a client may retry elsewhere), else CANCELLED with `message` (the caller
 * went away).
 */
export function abortReason(signal: AbortSignal, message = "the caller cancelled the call"): OrderlyError {
  return signal.reason instanceof OrderlyError ? signal.reason : new OrderlyError("CANCELLED", message);
}
