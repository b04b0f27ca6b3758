import type { Context } from "@opentelemetry/api";
import {
  BrokenCircuitError,
  BulkheadRejectedError,
  CircuitState,
  ConsecutiveBreaker,
  TaskCancelledError,
  bulkhead,
  circuitBreaker,
  handleWhen,
  retry,
  wrap,
  type IBackoff,
  type IBackoffFactory,
  type IHalfOpenAfterBackoffContext,
  type IPolicy,
  type IRetryBackoffContext,
} from "cockatiel";
import { Code, DECLARED_ONLY, OrderlyError, abortReason, httpStatusFor, isTransient, underlyingCause } from "../errors/index.js";
import type { Logger } from "../logging/index.js";
import { traceIdsIn } from "../observability/trace-context.js";
import { RetryBudget } from "./retry-budget.js";
import { untilDeadline } from "./until-deadline.js";

/** The knobs of one dependency's policy. */
export interface DependencyPolicyOptions {
  /** The dependency's name, e.g. "inventory" (in errors and logs). */
  name: string;
  /** Longest time one attempt may take (ms). */
  attemptTimeoutMs: number;
  /** Attempts per call in total, the first included (idempotent calls only). */
  maxAttempts: number;
  /** First backoff before a retry (ms); grows exponentially with jitter. */
  backoffInitialMs: number;
  /** Longest backoff (ms). */
  backoffMaxMs: number;
  /** Consecutive failures that open the breaker. */
  breakerFailures: number;
  /** How long the breaker stays open before a half-open probe (ms). */
  halfOpenAfterMs: number;
  /** Calls in flight at once. */
  bulkheadLimit: number;
  /** Calls waiting for a slot; beyond it calls fail at once. */
  bulkheadQueue: number;
  /**
   * How long the dependency must have had to answer before a call its caller's own deadline cut
   * short counts against it (ms): a caller that allows a millisecond says nothing about the dependency.
   */
  slowCallMs: number;
}

/** Defaults that suit a call inside a request budget of a few seconds. */
export const defaultDependencyPolicyOptions: Omit<DependencyPolicyOptions, "name"> = {
  attemptTimeoutMs: 2000,
  maxAttempts: 3,
  backoffInitialMs: 25,
  backoffMaxMs: 250,
  breakerFailures: 5,
  halfOpenAfterMs: 5000,
  bulkheadLimit: 128,
  bulkheadQueue: 512,
  slowCallMs: 1000,
};

/**
 * What one attempt gets: the caller's signal, if it has one (aborted when
 * the caller goes away), and its deadline, the call's or the attempt
 * timeout's, whichever is first. The attempt must end by that deadline, as
 * a gRPC call given it does (with DEADLINE_EXCEEDED): the policy holds no
 * timer of its own.
 */
export interface Attempt {
  signal: AbortSignal | undefined;
  deadline: number;
}

/** Asks the dependency whether it answers at all, by `deadline` (its gRPC health check, say): what an open breaker probes with. */
export type DependencyProbe = (deadline: number) => Promise<unknown>;

/** The longest the policy's own probe of a dependency may take (ms), and less when the attempt timeout is less. */
const PROBE_TIMEOUT_MS = 2000;

/** What a policy has done, for logs, health and metrics. */
export interface DependencyStats {
  /** Calls made, those still running included. */
  calls: number;
  /** Calls that ended with the dependency's answer. */
  succeeded: number;
  attempts: number;
  retries: number;
  /** Calls that failed: the transport, a timeout, or the dependency's own failure (INTERNAL, UNKNOWN). */
  failures: number;
  /** Calls the dependency answered with a refusal of the request (a 4xx: INSUFFICIENT_STOCK, NOT_FOUND, …; a reason its RPC declares: VERSION_NOT_REACHED): it is up. */
  refusals: number;
  /** Calls the dependency answered with a transient error of its own dependency's (inventory unavailable, passed on by order): it is up. */
  relayed: number;
  rejectedByBreaker: number;
  rejectedByBulkhead: number;
  /** Calls given up because their caller hung up (or a shutdown abandoned them): nothing said of the dependency. */
  cancelled: number;
}

/** How a call to a dependency ended, as the metrics label it: answered, or which of DependencyStats's counts it is in. */
export type CallOutcome = "ok" | "refused" | "relayed" | "error" | "circuit_open" | "bulkhead_full" | "cancelled";

/** What is told of a call as it ends: its time (s), outcome, and the method called. */
export type CallListener = (seconds: number, outcome: CallOutcome, method: string) => void;

/** The count of DependencyStats each outcome adds to. */
const countOf: Record<CallOutcome, keyof DependencyStats> = {
  ok: "succeeded",
  refused: "refusals",
  relayed: "relayed",
  error: "failures",
  circuit_open: "rejectedByBreaker",
  bulkhead_full: "rejectedByBulkhead",
  cancelled: "cancelled",
};

/** Calls holding a bulkhead slot, and calls waiting for one. */
export interface BulkheadUse {
  inUse: number;
  queued: number;
  limit: number;
  queueLimit: number;
}

/** The state of a dependency's breaker, as reported in health and metrics. */
export type BreakerState = "closed" | "open" | "half-open" | "isolated";

/**
 * An answer about the request from a dependency that is up: a 4xx, not one that may pass by itself (such as 429), or a
 * reason its RPC declares, a handler's answer to the call whatever its code (TOO_MANY_WAITS, VERSION_NOT_REACHED).
 */
function isRefusal(error: OrderlyError): boolean {
  return error.remote && (DECLARED_ONLY.has(error.reason) || (!isTransient(error) && httpStatusFor(error.code, error.reason) < 500));
}

const failureCodes = new Set([Code.UNAVAILABLE, Code.DEADLINE_EXCEEDED, Code.INTERNAL, Code.UNKNOWN]);

/** cockatiel's backoff, waiting before each retry what the attempt that failed drew for it (`waits`, by its error). */
function drawnWaits(waits: WeakMap<Error, number>): IBackoffFactory<IRetryBackoffContext<unknown>> {
  const factory: IBackoffFactory<IRetryBackoffContext<unknown>> = {
    next: (context) => ({ duration: ("error" in context.result ? waits.get(context.result.error) : undefined) ?? 0, next: factory.next }),
  };
  return factory;
}

/**
 * The resilience policy of one downstream dependency, shared by every call
 * to it (cockatiel): a bulkhead, then — for idempotent calls only — a
 * bounded, jittered, budgeted retry on UNAVAILABLE and attempt timeouts,
 * then a consecutive-failure circuit breaker. Each attempt is given a
 * deadline (Attempt) no later than its attempt timeout, which the transport
 * keeps: cockatiel's timeout policy would add an AbortController, a timer
 * and a race to every attempt for what a gRPC deadline already does
 * (scripts/bench/HISTORY.md). Infrastructure errors leave it as OrderlyErrors with a
 * reason.
 */
export class DependencyPolicy {
  readonly name: string;
  private readonly breaker;
  private readonly limiter;
  private readonly limits: { limit: number; queueLimit: number };
  private readonly attemptTimeoutMs: number;
  private readonly budget = new RetryBudget();
  private readonly idempotent: IPolicy;
  private readonly once: IPolicy;
  private readonly logger: Logger | undefined;
  private readonly slowCallMs: number;
  /** Errors that end a call but say nothing about the dependency: the breaker does not count them. */
  private readonly excused = new WeakSet<Error>();
  /** Errors of an attempt after which the wait before a retry would outlast the call's deadline: not retried. */
  private readonly tooLateToRetry = new WeakSet<Error>();
  /** The wait before the retry that follows an attempt's error, drawn when the attempt failed (see retryWait). */
  private readonly waits = new WeakMap<Error, number>();
  private readonly backoff: { initialMs: number; maxMs: number };
  private readonly halfOpenAfterMs: number;
  /** When the breaker last opened (epoch ms). */
  private openedAt = 0;
  /** The transport has found the dependency back since the breaker last opened (see reachable). */
  private back = false;
  /** The policy's own probe of an open breaker's dependency (see the constructor). */
  private readonly probe: DependencyProbe;
  /** True only while the policy's own probe enters the breaker: the one call an open breaker lets through then. */
  private probing = false;
  private probeTimer: NodeJS.Timeout | undefined;
  /** The transport found the dependency back while a probe was out: should that probe fail, the next goes at once. */
  private backDuringProbe = false;
  /** Closed (close()): no more probes. */
  private closed = false;
  /** Open or half-open: the breaker's last change was an opening (a failed probe opens it again: logged once). */
  private broken = false;
  readonly stats: DependencyStats = { calls: 0, succeeded: 0, attempts: 0, retries: 0, failures: 0, refusals: 0, relayed: 0, rejectedByBreaker: 0, rejectedByBulkhead: 0, cancelled: 0 };
  private readonly callListeners: CallListener[] = [];

  /**
   * An open breaker is closed by the policy's own `probe`, and by nothing
   * else: halfOpenAfterMs after it opened (and after each failed probe), or
   * as soon as the transport finds the dependency back (reachable), the
   * policy asks the dependency (within PROBE_TIMEOUT_MS) and closes the
   * breaker when it answers. No caller's call is a probe, so none holds the
   * breaker (and every other caller, refused meanwhile) for its own budget,
   * however long.
   */
  constructor(options: Partial<DependencyPolicyOptions> & { name: string; logger?: Logger; probe: DependencyProbe }) {
    const o = { ...defaultDependencyPolicyOptions, ...options };
    this.name = o.name;
    this.logger = options.logger;
    this.probe = options.probe;
    this.attemptTimeoutMs = o.attemptTimeoutMs;
    this.slowCallMs = o.slowCallMs;
    this.backoff = { initialMs: o.backoffInitialMs, maxMs: o.backoffMaxMs };
    // An error the dependency answered with (a remote google.rpc.Status) means it is up: only errors of
    // the transport or of the dependency's own failure count against it, and only those are retried —
    // so an UNAVAILABLE it relays from its own dependency neither opens this breaker nor retries twice.
    const isFailure = (error: Error) =>
      !this.excused.has(error) &&
      (error instanceof TaskCancelledError ||
        (error instanceof OrderlyError && failureCodes.has(error.code) && (!error.remote || error.code === Code.INTERNAL || error.code === Code.UNKNOWN)));
    const isRetryable = (error: Error) => {
      if (this.tooLateToRetry.has(error)) return false;
      const retryable =
        error instanceof TaskCancelledError ||
        (error instanceof OrderlyError && error.code === Code.UNAVAILABLE && !error.remote && error.reason !== "CIRCUIT_OPEN");
      if (!retryable) return false;
      this.budget.recordFailure();
      return this.budget.allowsRetry();
    };
    const limiter = bulkhead(o.bulkheadLimit, o.bulkheadQueue);
    this.limiter = limiter;
    this.limits = { limit: o.bulkheadLimit, queueLimit: o.bulkheadQueue };
    // cockatiel reads an open breaker's wait on every call: none for the policy's probe, for ever for the callers'.
    // (-Infinity, not 0, for the probe: cockatiel compares it with the time since the opening, which a clock set back makes negative.)
    const wait = () => (this.probing ? -Infinity : Infinity);
    const openWait: IBackoff<IHalfOpenAfterBackoffContext> = {
      get duration() {
        return wait();
      },
      next: () => openWait,
    };
    this.breaker = circuitBreaker(handleWhen(isFailure), {
      halfOpenAfter: { next: () => openWait },
      breaker: new ConsecutiveBreaker(o.breakerFailures),
    });
    this.halfOpenAfterMs = o.halfOpenAfterMs;
    this.breaker.onBreak((why) => {
      this.openedAt = Date.now();
      this.back = this.backDuringProbe;
      this.backDuringProbe = false;
      if (!this.broken) {
        // The failure that opened it, as the transport or the dependency said it (a refused connection, EMFILE, a timeout).
        const failure = "error" in why ? (underlyingCause(why.error) ?? why.error.message) : undefined;
        this.logger?.warn({ dependency: this.name, halfOpenAfterMs: o.halfOpenAfterMs, failure }, "the breaker opened: failing fast until the dependency answers again");
      }
      this.broken = true;
      this.probeAfter(this.back ? 0 : o.halfOpenAfterMs);
    });
    this.breaker.onReset(() => {
      this.broken = false;
      this.logger?.info({ dependency: this.name }, "the breaker closed: the dependency answers again");
    });
    const retries = retry(handleWhen(isRetryable), {
      maxAttempts: Math.max(0, o.maxAttempts - 1),
      backoff: drawnWaits(this.waits),
    });
    // cockatiel makes every call that reaches a half-open breaker wait for its probe to end, however short the
    // call's own deadline. While the policy's probe is out (up to PROBE_TIMEOUT_MS), callers are refused at once, as
    // while the breaker is open.
    const breaker = this.breaker;
    const probeGate: IPolicy = {
      _altReturn: undefined as never,
      onSuccess: breaker.onSuccess,
      onFailure: breaker.onFailure,
      execute: (fn, signal) =>
        breaker.state === CircuitState.HalfOpen ? Promise.reject(new BrokenCircuitError("a half-open probe is in flight")) : breaker.execute(fn, signal),
    };
    this.idempotent = wrap(limiter, retries, probeGate);
    this.once = wrap(limiter, probeGate);
  }

  /** The breaker's state. */
  get breakerState(): BreakerState {
    switch (this.breaker.state) {
      case CircuitState.Closed:
        return "closed";
      case CircuitState.Open:
        return "open";
      case CircuitState.HalfOpen:
        return "half-open";
      case CircuitState.Isolated:
        return "isolated";
    }
  }

  /**
   * Tells the policy that its transport has found the dependency back (a
   * new connection is ready, as after the dependency restarted): an open
   * breaker is probed at once rather than halfOpenAfterMs after it opened,
   * once per opening (told while a probe is out, the next probe goes at once
   * should that one fail).
   */
  reachable(): void {
    if (this.breaker.state === CircuitState.HalfOpen) this.backDuringProbe = true;
    if (this.breaker.state !== CircuitState.Open || this.back) return;
    this.back = true;
    this.logger?.info({ dependency: this.name }, "the dependency is reachable again; probing it");
    this.probeAfter(0);
  }

  /** Stops probing (the connection the probe goes through is closing): a probe would fail, or worse, pass untested. */
  close(): void {
    this.closed = true;
    clearTimeout(this.probeTimer);
  }

  /** Runs the policy's own probe after `ms`, in place of one planned before; unref'd, so it keeps no process alive. */
  private probeAfter(ms: number): void {
    clearTimeout(this.probeTimer);
    if (this.closed) return;
    this.probeTimer = setTimeout(() => this.runProbe(), ms);
    this.probeTimer.unref();
  }

  /**
   * Probes an open breaker's dependency through the breaker: an answer closes it; a failure opens it again, which
   * plans the next probe (onBreak). A probe the breaker itself turned away plans the next here.
   */
  private runProbe(): void {
    const { probe } = this;
    if (this.closed || this.breaker.state !== CircuitState.Open) return;
    const deadline = Date.now() + Math.min(PROBE_TIMEOUT_MS, this.attemptTimeoutMs);
    // What fails without an OrderlyError (grpc-js throwing on a closed channel, say) is no answer: a failure, not a pass.
    const asked = () => probe(deadline).catch((error: unknown) => {
      throw error instanceof OrderlyError ? error : new OrderlyError("DEPENDENCY_UNAVAILABLE", `${this.name} did not answer its probe`, { cause: error });
    });
    let probed: Promise<unknown>;
    this.probing = true;
    try {
      // cockatiel reads the open breaker's wait as it enters execute, before this returns.
      probed = this.breaker.execute(asked);
    } finally {
      this.probing = false;
    }
    probed.then(
      // Answered, but a caller's call that failed meanwhile opened the breaker again: ask again at once.
      () => {
        if (this.breaker.state === CircuitState.Open) this.probeAfter(0);
      },
      (error: unknown) => {
        if (error instanceof BrokenCircuitError) this.probeAfter(this.halfOpenAfterMs);
        // (An answer that is an error of the request's, not the dependency's, closed the breaker: nothing to say.)
        if (this.breaker.state !== CircuitState.Closed) this.logger?.debug({ dependency: this.name, err: error }, "the breaker's probe got no answer; still open");
      },
    );
  }

  /** How full the bulkhead is now. */
  get bulkhead(): BulkheadUse {
    return {
      inUse: this.limits.limit - this.limiter.executionSlots,
      queued: this.limits.queueLimit - this.limiter.queueSlots,
      ...this.limits,
    };
  }

  /**
   * Runs `attempt` under the policy. Retries only when `idempotent`; never
   * waits past `deadline`, in the bulkhead's queue either; aborting `signal`
   * abandons the call. Each attempt must keep to its Attempt: end by its
   * deadline, and when its signal is aborted (a gRPC call does both).
   *
   * The breaker counts what the dependency did, not what its callers asked
   * for: a call its caller's own deadline ends counts against the
   * dependency only when the dependency had `slowCallMs` to answer, so no
   * caller can open the breaker for everyone by asking for a deadline too
   * short to meet.
   */
  async execute<T>(
    idempotent: boolean,
    attempt: (attempt: Attempt) => Promise<T>,
    options: { deadline?: number; signal?: AbortSignal; requestId?: string; traceContext?: Context; method?: string } = {},
  ): Promise<T> {
    const { deadline, signal: callerSignal } = options;
    this.stats.calls++;
    const began = performance.now();
    let attempts = 0;
    const policy = idempotent ? this.idempotent : this.once;
    // A call that finds every slot taken waits in the bulkhead's queue, which knows no deadline.
    const queued = this.limiter.executionSlots === 0;
    let result: T;
    try {
      // The caller's signal is not handed to cockatiel: a caller that hangs up is no failure of the
      // dependency, so the attempt ends it as CANCELLED, which the breaker does not count (but for a probe: see cancelled).
      const running = policy.execute(() => {
        if (callerSignal?.aborted) throw this.cancelled();
        if (deadline !== undefined && Date.now() >= deadline) {
          throw this.excuse(new OrderlyError("DEADLINE_EXCEEDED", `deadline exceeded calling ${this.name}`));
        }
        attempts++;
        this.stats.attempts++;
        if (attempts > 1) {
          this.stats.retries++;
          // A retry runs after a backoff timer, outside any active context: the line names the call's trace itself.
          this.logger?.info({ dependency: this.name, attempt: attempts, requestId: options.requestId, ...traceIdsIn(options.traceContext) }, "retrying a call");
        }
        const started = Date.now();
        const attemptDeadline = started + this.attemptTimeoutMs;
        return attempt({ signal: callerSignal, deadline: deadline === undefined ? attemptDeadline : Math.min(deadline, attemptDeadline) }).catch(
          (error: unknown) => {
            if (callerSignal?.aborted) throw this.cancelled();
            const timedOut = error instanceof OrderlyError && error.code === Code.DEADLINE_EXCEEDED && !error.remote;
            // The attempt was cut at its own timeout, before the call's deadline: a timeout of the dependency's.
            const failure = timedOut && (deadline === undefined || attemptDeadline < deadline) ? new TaskCancelledError(`${this.name} attempt timed out`) : error;
            // cockatiel's wait before a retry knows no deadline: the wait is drawn here, and a retry whose wait would end
            // past the deadline is not made, so the call ends by its deadline, with this attempt's error.
            if (failure instanceof Error) {
              const wait = this.retryWait(attempts);
              if (deadline !== undefined && Date.now() + wait >= deadline) this.tooLateToRetry.add(failure);
              else this.waits.set(failure, wait);
            }
            // Cut by the caller's deadline before the dependency had a fair time to answer.
            if (timedOut && failure === error && Date.now() - started < this.slowCallMs) throw this.excuse(error);
            throw failure;
          },
        );
      });
      // Left behind, a queued call does nothing once it gets its slot: its attempt finds the deadline passed, or the caller gone.
      result = await (queued ? untilDeadline(running, deadline, `a free slot to call ${this.name}`, callerSignal) : running);
      this.budget.recordSuccess();
    } catch (error) {
      const translated = this.translate(error, callerSignal, deadline);
      this.ended(began, this.outcomeOf(translated), options.method);
      throw translated;
    }
    // Outside the try: the call has its answer, and is counted once.
    this.ended(began, "ok", options.method);
    return result;
  }

  /**
   * Calls `listener` with the time (s), outcome and method (as `execute` was told it, "" if not) of every call as it ends
   * (orderly_dependency_call_duration_seconds).
   */
  onCallEnded(listener: CallListener): void {
    this.callListeners.push(listener);
  }

  private ended(began: number, outcome: CallOutcome, method = ""): void {
    this.stats[countOf[outcome]]++;
    if (this.callListeners.length === 0) return;
    const seconds = (performance.now() - began) / 1000;
    for (const listener of this.callListeners) {
      // A listener (a metric) failing changes nothing of the call's outcome.
      try {
        listener(seconds, outcome, method);
      } catch (error) {
        this.logger?.warn({ err: error, dependency: this.name }, "a listener of the dependency's calls failed");
      }
    }
  }

  /**
   * How a failed call ended. A dependency's answer (remote) is counted as what it says of the dependency: its breaker's or
   * bulkhead's refusal of a call to its own dependency, or that one's unavailability, names that dependency and is passed
   * on; none is this policy's.
   */
  private outcomeOf(error: OrderlyError): Exclude<CallOutcome, "ok"> {
    if (error.remote) {
      if (isRefusal(error)) return "refused";
      return isTransient(error) && (error.metadata.dependency ?? this.name) !== this.name ? "relayed" : "error";
    }
    if (error.reason === "CIRCUIT_OPEN") return "circuit_open";
    if (error.reason === "BULKHEAD_FULL") return "bulkhead_full";
    return error.code === Code.CANCELLED ? "cancelled" : "error";
  }

  /** Marks an error the breaker is not to count (no caller's call is a probe, so none can close it untested). */
  private excuse<E extends Error>(error: E): E {
    this.excused.add(error);
    return error;
  }

  /** The wait before the retry after attempt `attempt` (from 1): exponential from backoffInitialMs up to backoffMaxMs, the upper half of it at random. */
  private retryWait(attempt: number): number {
    const ceiling = Math.min(this.backoff.maxMs, this.backoff.initialMs * 2 ** (attempt - 1));
    return ceiling * (0.5 + Math.random() / 2);
  }

  /** The error of a call whose caller hung up (or a shutdown abandoned it): it says nothing about the dependency, and the breaker does not count it. */
  private cancelled(): OrderlyError {
    return new OrderlyError("CANCELLED", "the caller cancelled the call");
  }

  private translate(error: unknown, callerSignal: AbortSignal | undefined, deadline: number | undefined): OrderlyError {
    if (callerSignal?.aborted) return abortReason(callerSignal);
    const metadata = { dependency: this.name };
    if (error instanceof BrokenCircuitError) {
      // Retry-After: when the breaker lets a call try the dependency again (a retry sooner is refused just the same).
      const retryAfterSeconds = String(this.back ? 1 : Math.max(1, Math.ceil((this.openedAt + this.halfOpenAfterMs - Date.now()) / 1000)));
      return new OrderlyError("CIRCUIT_OPEN", `${this.name} is failing; not calling it until it recovers`, { metadata: { ...metadata, retryAfterSeconds } });
    }
    if (error instanceof BulkheadRejectedError) {
      return new OrderlyError("BULKHEAD_FULL", `too many calls to ${this.name} in flight`, { metadata });
    }
    if (error instanceof TaskCancelledError) {
      const overall = deadline !== undefined && Date.now() >= deadline;
      return new OrderlyError("DEADLINE_EXCEEDED", overall ? `deadline exceeded calling ${this.name}` : `${this.name} did not answer in time`, { metadata });
    }
    const err = OrderlyError.from(error);
    // The transport's UNAVAILABLE is this dependency's; one it answered with (remote) names its own dependency, and is kept.
    if (err.code === Code.UNAVAILABLE && err.reason === "DEPENDENCY_UNAVAILABLE" && !err.remote) {
      return new OrderlyError("DEPENDENCY_UNAVAILABLE", `${this.name} is unavailable`, { metadata, cause: err });
    }
    // The call's own deadline passed during its last attempt: the caller's line names what it was waiting for.
    if (err.code === Code.DEADLINE_EXCEEDED && !err.remote) {
      return new OrderlyError("DEADLINE_EXCEEDED", `deadline exceeded calling ${this.name}`, { metadata, cause: err });
    }
    return err;
  }
}
