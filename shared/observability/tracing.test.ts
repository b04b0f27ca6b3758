import { context, propagation, trace } from "@opentelemetry/api";
import { afterEach, expect, test } from "vitest";
import { startOtlpReceiver } from "../../test/helpers/otlp-receiver.js";
import { waitFor } from "../../test/helpers/processes.js";
import { createLogger } from "../logging/index.js";
import { startTracing, tracer } from "./tracing.js";

afterEach(() => {
  trace.disable();
  context.disable();
  propagation.disable();
});

test("span export that fails is logged once at warn, and its recovery at info with the spans lost meanwhile", async () => {
  await using receiver = await startOtlpReceiver();
  const lines: Record<string, unknown>[] = [];
  const logger = createLogger("test", "info", { write: (line: string) => void lines.push(JSON.parse(line) as Record<string, unknown>) });
  const tracing = await startTracing({ service: "test", logger, otlpEndpoint: receiver.url, scheduleDelayMs: 10 });
  await using _tracing = { [Symbol.asyncDispose]: () => tracing.shutdown() };
  const logged = (msg: string) => lines.filter((line) => line.msg === msg);

  receiver.refusing = true;
  tracer().startSpan("lost 1").end();
  await waitFor(() => logged("span export failed: spans are dropped until the collector takes them").length === 1, "the failure logged");
  tracer().startSpan("lost 2").end();
  tracer().startSpan("lost 3").end();
  await waitFor(() => receiver.refused >= 2, "the second batch refused");
  receiver.refusing = false;
  tracer().startSpan("kept").end();
  await waitFor(() => logged("span export works again").length === 1, "the recovery logged");
  await waitFor(() => receiver.spans.some((span) => span.name === "kept"), "the span after the recovery exported");

  const failed = logged("span export failed: spans are dropped until the collector takes them");
  expect(failed.map(({ level, url, err }) => ({ level, url, err: typeof err }))).toEqual([{ level: 40, url: `${receiver.url}/v1/traces`, err: "object" }]);
  expect(logged("span export works again").map(({ level, lostSpans }) => ({ level, lostSpans }))).toEqual([{ level: 30, lostSpans: 3 }]);
  expect(receiver.spans.map((span) => span.name)).toEqual(["kept"]);
});

test("a shutdown with spans buffered and the collector not answering waits 2 s for it, says so at warn, and ends (the exporter would wait 10 s)", async () => {
  await using receiver = await startOtlpReceiver();
  receiver.hanging = true;
  const lines: Record<string, unknown>[] = [];
  const logger = createLogger("test", "info", { write: (line: string) => void lines.push(JSON.parse(line) as Record<string, unknown>) });
  const tracing = await startTracing({ service: "test", logger, otlpEndpoint: receiver.url, scheduleDelayMs: 60_000 });
  tracer().startSpan("buffered").end();
  const started = performance.now();
  await tracing.shutdown();
  const waited = performance.now() - started;
  expect(lines.filter((line) => line.msg === "the spans still buffered were not exported: the collector did not answer in time").map(({ level, waitedMs }) => ({ level, waitedMs }))).toEqual([
    { level: 40, waitedMs: 2000 },
  ]);
  // Well before the exporter's own 10 s timeout (the wait itself is 2 s).
  expect(waited).toBeLessThan(8000);
});
