export {
  startGrpcServer,
  registration,
  grpcServiceDefinition,
  toServiceError,
  answerByOf,
  defaultCallBudget,
  type CallBudget,
  type RunningServer,
  type ServiceRegistration,
  type StreamingRegistration,
  type GrpcServerOptions,
} from "./server.js";
export { connect, onReady, callUnary, createClient, fromServiceError, channelSecurity, tlsChannel, type ChannelSecurity, type Connection, type ConnectOptions } from "./client.js";
export { logGrpcLibraryTo } from "./library-logs.js";
export { healthService, HealthState, ServingStatus, type HealthChecks, type HealthStateOptions } from "./health.js";
export { reflectionServices } from "./reflection.js";
export { ANSWER_WAY_BACK_MS, chain, traceCalls, logCalls, enforceDeadline, tooLateToChange, injectDelay, defaultInterceptors, type Interceptor, type Next } from "./interceptors.js";
export { HTTP_CODE_HEADER, callOptionsOf, causeOf, type CallContext } from "./context.js";
export { STOCK_VERSIONS_HEADER, announceStock, stockVersionsOf } from "./stock-versions.js";
export { isRequestId, metadataKeys, REQUEST_ID_PATTERN } from "./metadata-keys.js";
export type { Client, CallOptions, ServiceHandlers, UnaryHandler, UnaryMethodName } from "./types.js";
export { validateRequests, checkRules } from "./validate-requests.js";
