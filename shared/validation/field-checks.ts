import { validationError, type FieldViolation } from "../errors/index.js";

/** SKUs and customer ids: 1-64 characters of A-Z, a-z, 0-9, '-', '_' and '.'. */
export const IDENTIFIER_PATTERN = /^[A-Za-z0-9._-]{1,64}$/;

/**
 * Collects field violations of one request, so a client learns every
 * problem at once; `throwIfAny` raises one VALIDATION_FAILED error.
 */
export class Violations {
  private readonly list: FieldViolation[] = [];

  /** Records a violation of `field` unless `ok`. Returns `ok`. */
  check(ok: boolean, field: string, description: string): boolean {
    if (!ok) this.list.push({ field, description });
    return ok;
  }

  /** Checks an identifier (SKU, customer id). */
  identifier(value: string, field: string): boolean {
    return this.check(IDENTIFIER_PATTERN.test(value), field, "must be 1-64 characters of A-Z, a-z, 0-9, '-', '_' or '.'");
  }

  /** Checks an integer within [min, max]. */
  intRange(value: number, min: number, max: number, field: string): boolean {
    return this.check(Number.isInteger(value) && value >= min && value <= max, field, `must be between ${min} and ${max}`);
  }

  /** Throws VALIDATION_FAILED when anything was recorded. */
  throwIfAny(): void {
    if (this.list.length > 0) throw validationError(this.list);
  }
}
