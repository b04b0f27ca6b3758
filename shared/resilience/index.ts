export { DependencyPolicy, defaultDependencyPolicyOptions, type DependencyPolicyOptions, type BreakerState, type BulkheadUse, type Attempt, type DependencyStats, type DependencyProbe } from "./dependency-policy.js";
export { RetryBudget } from "./retry-budget.js";
export { connectionPolicy, createResilientClient, callWithPolicy, isIdempotent } from "./resilient-client.js";
export { untilDeadline } from "./until-deadline.js";
export { CountsByKey } from "./counts-by-key.js";
