export { Violations, IDENTIFIER_PATTERN } from "./field-checks.js";
