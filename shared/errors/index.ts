export { Code, codeName } from "./code.js";
export { reasons, defaultReason, isReason, type Reason } from "./reasons.js";
export { OrderlyError, abortReason, validationError, isTransient, ERROR_DOMAIN, type FieldViolation } from "./orderly-error.js";
export { httpStatusFor, retryAfterSecondsOf } from "./http-status.js";
export { DECLARED_ONLY, declaredReasonsOf, mayAnswer } from "./declared-reasons.js";
export { toStatus, toStatusBinary, toStatusJson, fromStatus, statusDetailRegistry } from "./status.js";
export { underlyingCause } from "./underlying-cause.js";
