import { ROOT_CONTEXT, trace } from "@opentelemetry/api";
import { describe, expect, test, vi } from "vitest";
import { Code, OrderlyError, fromStatus } from "../errors/index.js";
import { createLogger } from "../logging/index.js";
import { waitFor } from "../../test/helpers/processes.js";
import { DependencyPolicy } from "./dependency-policy.js";

const unavailable = () => new OrderlyError("DEPENDENCY_UNAVAILABLE", "down");

/** An attempt whose dependency never answers: it fails at the deadline it was given, as grpc-js fails a call (a local DEADLINE_EXCEEDED). */
const silent = ({ deadline }: { deadline: number }) =>
  new Promise<never>((_, reject) => setTimeout(() => reject(new OrderlyError("DEADLINE_EXCEEDED", "deadline exceeded")), deadline - Date.now()));

/** A probe of a dependency that is down. */
const down = () => Promise.reject(unavailable());

/**
 * A policy whose dependency is down until `up` is set (its breaker opening after two failures, its calls not
 * retried): `probes` holds the time each probe was given, `calls` counts the callers' calls that reached it.
 */
function switchable(overrides: { halfOpenAfterMs: number }) {
  const dependency = {
    up: false,
    calls: 0,
    probes: [] as number[],
    p: undefined as unknown as DependencyPolicy,
    call: async () => {
      dependency.calls++;
      if (!dependency.up) throw unavailable();
      return "ok";
    },
  };
  dependency.p = policy({
    breakerFailures: 2,
    maxAttempts: 1,
    ...overrides,
    probe: async (deadline: number) => {
      dependency.probes.push(deadline - Date.now());
      if (!dependency.up) throw unavailable();
    },
  });
  return dependency;
}

function policy(overrides = {}) {
  return new DependencyPolicy({ name: "dep", backoffInitialMs: 1, backoffMaxMs: 2, halfOpenAfterMs: 60_000, probe: down, ...overrides });
}

describe("DependencyPolicy", () => {
  test("retries an idempotent call on UNAVAILABLE up to the attempt limit", async () => {
    let attempts = 0;
    await expect(
      policy({ maxAttempts: 3 }).execute(true, async () => {
        attempts++;
        throw unavailable();
      }),
    ).rejects.toMatchObject({ reason: "DEPENDENCY_UNAVAILABLE", metadata: { dependency: "dep" } });
    expect(attempts).toBe(3);
  });

  test("the breaker's opening is logged with the failure that opened it, as the transport said it (no file descriptors left, say)", async () => {
    const lines: Record<string, unknown>[] = [];
    const logger = createLogger("test", "info", { write: (line: string) => void lines.push(JSON.parse(line) as Record<string, unknown>) });
    const p = policy({ breakerFailures: 2, maxAttempts: 1, logger });
    // What the gRPC client makes of grpc-js's failure to connect with no descriptor left.
    const emfile = () => fromStatus(Code.UNAVAILABLE, "No connection established. Last error: Error: connect EMFILE 127.0.0.1:50052 - Local");
    for (let i = 0; i < 2; i++) await expect(p.execute(true, () => Promise.reject(emfile()))).rejects.toMatchObject({ reason: "DEPENDENCY_UNAVAILABLE" });
    expect(p.breakerState).toBe("open");
    expect(lines.find((line) => line.msg === "the breaker opened: failing fast until the dependency answers again")).toMatchObject({
      dependency: "dep",
      failure: "No connection established. Last error: Error: connect EMFILE 127.0.0.1:50052 - Local",
    });
    p.close();
  });

  test("a retry's log line names the call's request and trace, though it runs after a timer, outside the call's scope", async () => {
    const lines: Record<string, unknown>[] = [];
    const logger = createLogger("test", "info", { write: (line: string) => void lines.push(JSON.parse(line) as Record<string, unknown>) });
    const ids = { traceId: "0af7651916cd43dd8448eb211c80319c", spanId: "b7ad6b7169203331" };
    const traceContext = trace.setSpanContext(ROOT_CONTEXT, { ...ids, traceFlags: 1 });
    let attempts = 0;
    const answer = await policy({ maxAttempts: 2, logger }).execute(
      true,
      async () => {
        if (++attempts === 1) throw unavailable();
        return "ok";
      },
      { requestId: "r-1", traceContext },
    );
    expect(answer).toBe("ok");
    expect(lines.map(({ msg, requestId, traceId, spanId }) => ({ msg, requestId, traceId, spanId }))).toEqual([{ msg: "retrying a call", requestId: "r-1", ...ids }]);
  });

  test("never retries a call that is not idempotent", async () => {
    let attempts = 0;
    await expect(
      policy().execute(false, async () => {
        attempts++;
        throw unavailable();
      }),
    ).rejects.toMatchObject({ reason: "DEPENDENCY_UNAVAILABLE" });
    expect(attempts).toBe(1);
  });

  test("never retries business errors", async () => {
    let attempts = 0;
    await expect(
      policy().execute(true, async () => {
        attempts++;
        throw new OrderlyError("INSUFFICIENT_STOCK", "no");
      }),
    ).rejects.toMatchObject({ reason: "INSUFFICIENT_STOCK" });
    expect(attempts).toBe(1);
  });

  test("counts what the dependency answered about a request (INSUFFICIENT_STOCK, NOT_FOUND, a reason its RPC declares whatever its code) as a refusal, not a failure; its own failures and relayed 429s as failures", async () => {
    const p = policy({ maxAttempts: 1 });
    const answers = [
      new OrderlyError("INSUFFICIENT_STOCK", "no", { remote: true }),
      new OrderlyError("ORDER_NOT_FOUND", "no", { remote: true }),
      // A minVersion the read model had not reached when the query service stopped waiting; a caller with too many waits.
      new OrderlyError("VERSION_NOT_REACHED", "not yet", { remote: true }),
      new OrderlyError("TOO_MANY_WAITS", "wait", { remote: true }),
      new OrderlyError("INTERNAL", "boom", { remote: true }),
      new OrderlyError("RATE_LIMITED", "busy", { remote: true }),
      new OrderlyError("DEPENDENCY_UNAVAILABLE", "down"),
    ];
    for (const answer of answers) {
      await expect(p.execute(false, async () => Promise.reject(answer))).rejects.toBeInstanceOf(OrderlyError);
    }
    await p.execute(false, async () => "ok");
    expect(p.stats).toMatchObject({ calls: 8, refusals: 4, failures: 3 });
    expect(p.breakerState).toBe("closed");
  });

  test("an error the dependency passes on from its own dependency (unavailable, its breaker open, its deadline) keeps that dependency's name and counts as relayed, not as a failure or a rejection of this policy's", async () => {
    const p = new DependencyPolicy({ name: "order", maxAttempts: 1, halfOpenAfterMs: 60_000, breakerFailures: 2, probe: down });
    const inventory = { dependency: "inventory" };
    const answers = [
      new OrderlyError("DEPENDENCY_UNAVAILABLE", "inventory is unavailable", { metadata: inventory, remote: true }),
      new OrderlyError("CIRCUIT_OPEN", "inventory is failing; not calling it until it recovers", { metadata: { ...inventory, retryAfterSeconds: "5" }, remote: true }),
      new OrderlyError("DEADLINE_EXCEEDED", "inventory did not answer in time", { metadata: inventory, remote: true }),
    ];
    for (const answer of answers) {
      const passedOn = await p.execute(false, async () => Promise.reject(answer)).catch((error: OrderlyError) => error);
      expect({ reason: passedOn.reason, message: passedOn.message, dependency: passedOn.metadata.dependency }).toEqual({
        reason: answer.reason,
        message: answer.message,
        dependency: "inventory",
      });
    }
    expect(p.stats).toMatchObject({ calls: 3, relayed: 3, failures: 0, rejectedByBreaker: 0 });
    expect(p.breakerState).toBe("closed");
    // Its own unavailability (shutting down: no dependency named) and the transport's are the dependency's failures.
    await p.execute(false, async () => Promise.reject(new OrderlyError("SERVICE_UNAVAILABLE", "shutting down", { remote: true }))).catch(() => undefined);
    const transport = await p.execute(false, async () => Promise.reject(unavailable())).catch((error: OrderlyError) => error);
    expect(transport.message).toBe("order is unavailable");
    expect(p.stats).toMatchObject({ relayed: 3, failures: 2 });
  });

  test("a call is counted, and timed, by its outcome when it ends: one still running is in none (a counter of successes that a failure later took back would read as a reset)", async () => {
    const p = policy({ maxAttempts: 1 });
    const ended: string[] = [];
    // The failing call runs 50 ms (timers may fire a millisecond early by the performance clock).
    p.onCallEnded((seconds, outcome) => ended.push(outcome === "ok" ? outcome : `${outcome} after ${seconds >= 0.045 ? "50 ms" : `only ${seconds} s`}`));
    let fail!: (error: Error) => void;
    const running = p.execute(false, () => new Promise((_, reject) => (fail = reject)));
    await p.execute(false, async () => "ok");
    expect({ calls: p.stats.calls, succeeded: p.stats.succeeded, failures: p.stats.failures, ended }).toEqual({ calls: 2, succeeded: 1, failures: 0, ended: ["ok"] });
    await new Promise((resolve) => setTimeout(resolve, 50));
    fail(new OrderlyError("INTERNAL", "boom", { remote: true }));
    await expect(running).rejects.toMatchObject({ reason: "INTERNAL" });
    expect({ calls: p.stats.calls, succeeded: p.stats.succeeded, failures: p.stats.failures, ended }).toEqual({ calls: 2, succeeded: 1, failures: 1, ended: ["ok", "error after 50 ms"] });
  });

  test("opens the breaker after consecutive failures, then fails fast without calling, saying when to try again", async () => {
    const p = policy({ breakerFailures: 3, maxAttempts: 1, halfOpenAfterMs: 7_000 });
    let attempts = 0;
    const failing = async () => {
      attempts++;
      throw unavailable();
    };
    for (let i = 0; i < 3; i++) await expect(p.execute(false, failing)).rejects.toMatchObject({ reason: "DEPENDENCY_UNAVAILABLE" });
    expect(p.breakerState).toBe("open");
    const started = performance.now();
    await expect(p.execute(false, failing)).rejects.toMatchObject({ reason: "CIRCUIT_OPEN", code: 14, metadata: { retryAfterSeconds: "7" } });
    expect(performance.now() - started).toBeLessThan(250);
    expect(attempts).toBe(3);
  });

  test("an open breaker told the dependency is reachable again probes it at once, once per opening; a failed probe opens it again, for the full wait but for another reachable", async () => {
    const dependency = switchable({ halfOpenAfterMs: 60_000 });
    const { p, call } = dependency;
    // Told while closed, it changes nothing.
    p.reachable();
    for (let i = 0; i < 2; i++) await expect(p.execute(false, call)).rejects.toMatchObject({ reason: "DEPENDENCY_UNAVAILABLE" });
    expect(p.breakerState).toBe("open");
    await expect(p.execute(false, call)).rejects.toMatchObject({ reason: "CIRCUIT_OPEN", metadata: { retryAfterSeconds: "60" } });
    expect(dependency.calls).toBe(2);

    // Back, but still failing: told twice, one probe; it fails, and the breaker is open again, saying a minute again.
    p.reachable();
    p.reachable();
    await waitFor(() => dependency.probes.length === 1 && p.breakerState === "open", "one probe, failed");
    await expect(p.execute(false, call)).rejects.toMatchObject({ reason: "CIRCUIT_OPEN", metadata: { retryAfterSeconds: "60" } });

    // Back and answering: told again (a new opening), the policy probes and closes the breaker; no caller's call was a probe.
    dependency.up = true;
    p.reachable();
    await waitFor(() => p.breakerState === "closed", "the breaker closed by the second probe");
    expect({ probes: dependency.probes.length, attempts: dependency.calls }).toEqual({ probes: 2, attempts: 2 });
    await expect(p.execute(false, call)).resolves.toBe("ok");
  });

  test("an open breaker is closed by the policy's probe alone, every halfOpenAfterMs or when the dependency is reachable again (at once: see the test before, with a minute between probes); callers are refused until then, whatever their budget", async () => {
    const dependency = switchable({ halfOpenAfterMs: 200 });
    const { p, call, probes } = dependency;
    for (let i = 0; i < 2; i++) await expect(p.execute(false, call)).rejects.toMatchObject({ reason: "DEPENDENCY_UNAVAILABLE" });
    expect(p.breakerState).toBe("open");
    // Past halfOpenAfterMs the policy probes (and fails, so it stays open); no caller's call gets through meanwhile.
    await waitFor(() => probes.length >= 2, "two probes, halfOpenAfterMs apart");
    await expect(p.execute(false, call, { deadline: Date.now() + 60_000 })).rejects.toMatchObject({ reason: "CIRCUIT_OPEN" });
    expect(dependency.calls).toBe(2);
    // Each probe had at most 2 s.
    expect(probes.every((ms) => ms > 0 && ms <= 2000)).toBe(true);

    // Back: told it is reachable, the policy probes and closes the breaker; callers are refused until it has.
    dependency.up = true;
    const before = probes.length;
    p.reachable();
    await waitFor(() => p.breakerState === "closed", "the breaker closed by the probe");
    expect(probes.length).toBe(before + 1);
    await expect(p.execute(false, call)).resolves.toBe("ok");
    expect(dependency.calls).toBe(3);
  });

  test("a probe that hangs holds no caller: each is refused at once while it runs, and it ends by its own 2 s deadline", async () => {
    const p = policy({ breakerFailures: 1, maxAttempts: 1, halfOpenAfterMs: 60_000, probe: (deadline: number) => silent({ deadline }) });
    await expect(p.execute(false, () => Promise.reject(unavailable()))).rejects.toMatchObject({ reason: "DEPENDENCY_UNAVAILABLE" });
    p.reachable();
    await waitFor(() => p.breakerState === "half-open", "the probe in flight");
    // Calls with a long budget, retried or not: before, each waited for the probe, which was one of them.
    for (const idempotent of [false, true]) {
      const started = performance.now();
      await expect(p.execute(idempotent, async () => "ok", { deadline: Date.now() + 30_000 })).rejects.toMatchObject({ reason: "CIRCUIT_OPEN", metadata: { retryAfterSeconds: "1" } });
      expect(performance.now() - started).toBeLessThan(1000);
    }
    // The silent dependency: the probe fails at its deadline, and the breaker is open again.
    await waitFor(() => p.breakerState === "open", "the probe timed out", 5_000);
  });

  test("the probe: a clock set back does not keep the breaker open; a probe that throws no OrderlyError is no answer; a ready connection reported while a probe is out is not lost; after close() it probes no more", async () => {
    let answer: "yes" | "no" | "throws" | "hangs" = "no";
    let probes = 0;
    let release: (() => void) | undefined;
    const p = policy({
      breakerFailures: 1,
      maxAttempts: 1,
      halfOpenAfterMs: 60_000,
      probe: async () => {
        probes++;
        if (answer === "hangs") await new Promise<void>((resolve) => (release = resolve));
        if (answer === "throws") throw new Error("Channel has been shut down");
        if (answer !== "yes") throw unavailable();
      },
    });
    const open = () => expect(p.execute(false, () => Promise.reject(unavailable()))).rejects.toMatchObject({ reason: "DEPENDENCY_UNAVAILABLE" });
    await open();

    // grpc-js throwing a plain Error (a closed channel): the breaker stays open rather than closing untested.
    answer = "throws";
    p.reachable();
    await waitFor(() => probes === 1 && p.breakerState === "open", "the first probe done");

    // The clock set back after the opening: cockatiel's wait, compared with a negative time since, still lets the probe in.
    const realNow = Date.now.bind(Date);
    const clock = vi.spyOn(Date, "now").mockImplementation(() => realNow() - 10_000);
    try {
      answer = "yes";
      p.reachable();
      await waitFor(() => p.breakerState === "closed", "the breaker closed with the clock set back");
    } finally {
      clock.mockRestore();
    }
    expect(probes).toBe(2);

    // Reported ready while a probe hangs, which then fails: the next probe goes at once, not a minute later.
    await open();
    answer = "hangs";
    p.reachable();
    await waitFor(() => p.breakerState === "half-open", "the probe out");
    p.reachable();
    answer = "no";
    release!();
    await waitFor(() => probes === 4 && p.breakerState === "open", "a probe at once after the one that failed, and open again after it");

    // Closed: no probe however it is asked for, though the dependency would answer now.
    answer = "yes";
    p.close();
    p.reachable();
    await new Promise((resolve) => setImmediate(resolve));
    expect({ probes, breaker: p.breakerState }).toEqual({ probes: 4, breaker: "open" });
  });

  test("a full bulkhead rejects at once with BULKHEAD_FULL", async () => {
    const p = policy({ bulkheadLimit: 1, bulkheadQueue: 0 });
    let release!: () => void;
    const holding = p.execute(false, () => new Promise<void>((resolve) => (release = resolve)));
    await expect(p.execute(false, async () => undefined)).rejects.toMatchObject({ reason: "BULKHEAD_FULL", code: 8 });
    release();
    await holding;
  });

  test("a slow attempt times out at its attempt timeout and is retried; the call ends by its deadline", async () => {
    const p = policy({ attemptTimeoutMs: 50, maxAttempts: 5 });
    const attempts: { started: number; deadline: number }[] = [];
    const started = Date.now();
    const deadline = started + 400;
    await expect(
      p.execute(true, (attempt) => {
        attempts.push({ started: Date.now(), deadline: attempt.deadline });
        return silent(attempt);
      }, { deadline }),
    ).rejects.toMatchObject({ reason: "DEADLINE_EXCEEDED" });
    expect(Date.now() - started).toBeLessThan(2000);
    // Each attempt was given its attempt timeout, or the call's deadline when that came first.
    expect(attempts.length).toBeGreaterThanOrEqual(2);
    for (const attempt of attempts) {
      expect(attempt.deadline).toBeLessThanOrEqual(Math.min(attempt.started + 50, deadline));
      expect(attempt.deadline).toBeGreaterThanOrEqual(Math.min(attempt.started + 45, deadline));
    }
    expect(p.stats.retries).toBe(attempts.length - 1);
  });

  test("a caller's deadline too short to meet does not open the breaker; a dependency silent for slowCallMs does", async () => {
    const p = policy({ breakerFailures: 3, maxAttempts: 1, slowCallMs: 60, attemptTimeoutMs: 10_000 });
    for (let i = 0; i < 10; i++) {
      await expect(p.execute(false, silent, { deadline: Date.now() + 2 })).rejects.toMatchObject({ reason: "DEADLINE_EXCEEDED" });
      await expect(p.execute(false, silent, { deadline: Date.now() - 1 })).rejects.toMatchObject({ reason: "DEADLINE_EXCEEDED" });
    }
    expect(p.breakerState).toBe("closed");
    for (let i = 0; i < 3; i++) await expect(p.execute(false, silent, { deadline: Date.now() + 100 })).rejects.toMatchObject({ reason: "DEADLINE_EXCEEDED" });
    expect(p.breakerState).toBe("open");
  });

  test("past the half-open time a caller's call is still refused, however impatient or patient: only the policy's probe goes to an open breaker's dependency", async () => {
    const p = policy({ breakerFailures: 2, maxAttempts: 1, slowCallMs: 60, attemptTimeoutMs: 10_000, halfOpenAfterMs: 50 });
    for (let i = 0; i < 2; i++) await expect(p.execute(false, silent, { deadline: Date.now() + 100 })).rejects.toMatchObject({ reason: "DEADLINE_EXCEEDED" });
    expect(p.breakerState).toBe("open");
    // Past the half-open time (the clock moved on, not waited for): no call is let through, short budget or long.
    vi.useFakeTimers({ toFake: ["Date"] });
    try {
      vi.setSystemTime(Date.now() + 100);
      for (const budget of [2, 30_000]) await expect(p.execute(false, silent, { deadline: Date.now() + budget })).rejects.toMatchObject({ reason: "CIRCUIT_OPEN" });
    } finally {
      vi.useRealTimers();
    }
    expect(p.breakerState).toBe("open");
  });


  test("a retry is not made when its wait could outlast the call's deadline: the call ends by its deadline, with the last attempt's error", async () => {
    // Waits at the top of their range: 100, 200, 400, 800 ms; the call has 800 ms. Each retry's wait fits until the one
    // after the fourth attempt (at ~700 ms) would end past the deadline: the call ends there, ~100 ms before it.
    const random = vi.spyOn(Math, "random").mockReturnValue(0.99);
    try {
      const p = new DependencyPolicy({ name: "inventory", maxAttempts: 10, backoffInitialMs: 100, backoffMaxMs: 2000, breakerFailures: 100, probe: down });
      const deadline = Date.now() + 800;
      let attempts = 0;
      // The dependency refuses connections at once, every time (grpc-js: a local UNAVAILABLE).
      const call = p.execute(true, async () => {
        attempts++;
        throw unavailable();
      }, { deadline });
      // Waits that knew no deadline woke past it: the call ended with DEADLINE_EXCEEDED, as late as a wait.
      await expect(call).rejects.toMatchObject({ reason: "DEPENDENCY_UNAVAILABLE" });
      expect(attempts).toBeGreaterThanOrEqual(2);
    } finally {
      random.mockRestore();
    }
  });


  test("a call waiting in a full bulkhead's queue ends at its deadline, or when its caller hangs up, and never runs", async () => {
    const p = policy({ bulkheadLimit: 1, bulkheadQueue: 4, breakerFailures: 1 });
    let release!: () => void;
    const holding = p.execute(false, () => new Promise<void>((resolve) => (release = resolve)));
    let ran = 0;
    const started = Date.now();
    const timedOut = p.execute(false, async () => ran++, { deadline: Date.now() + 50 });
    await expect(timedOut).rejects.toMatchObject({ reason: "DEADLINE_EXCEEDED" });
    expect(Date.now() - started).toBeLessThan(2000);
    const caller = new AbortController();
    const abandoned = p.execute(false, async () => ran++, { signal: caller.signal });
    caller.abort();
    await expect(abandoned).rejects.toMatchObject({ reason: "CANCELLED" });
    expect(p.bulkhead.queued).toBe(2);
    release();
    await holding;
    await expect.poll(() => p.bulkhead.queued).toBe(0);
    expect(ran).toBe(0);
    // Neither said anything about the dependency.
    expect(p.breakerState).toBe("closed");
    await expect(p.execute(false, async () => "ok")).resolves.toBe("ok");
  });

  test("callers that hang up are not failures of the dependency: the breaker stays closed, and they are counted as cancelled, not as errors", async () => {
    const p = policy({ breakerFailures: 3 });
    for (let i = 0; i < 10; i++) {
      const caller = new AbortController();
      const call = p.execute(true, ({ signal }) => new Promise((_, reject) => signal?.addEventListener("abort", () => reject(new Error("cancelled")))), {
        signal: caller.signal,
      });
      caller.abort();
      await expect(call).rejects.toMatchObject({ reason: "CANCELLED" });
    }
    expect(p.breakerState).toBe("closed");
    expect(p.stats).toMatchObject({ calls: 10, cancelled: 10, failures: 0 });
    await expect(p.execute(false, async () => "ok")).resolves.toBe("ok");
  });

  test("a call cut by its own deadline during its last attempt says which dependency it was waiting for", async () => {
    const p = policy({ maxAttempts: 1 });
    await expect(p.execute(true, silent, { deadline: Date.now() + 30 })).rejects.toMatchObject({
      reason: "DEADLINE_EXCEEDED",
      message: `deadline exceeded calling ${p.name}`,
      metadata: { dependency: p.name },
    });
  });
});
