import { trace } from "@opentelemetry/api";
import { expect, test } from "vitest";
import { contextFromTraceparent } from "./trace-context.js";

const TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736";
const SPAN_ID = "00f067aa0ba902b7";

/** The parent a traceparent names, as [trace id, span id, sampled], or undefined when it starts a new trace. */
function parentOf(traceparent: string): [string, string, number] | undefined {
  const parent = trace.getSpanContext(contextFromTraceparent(traceparent));
  return parent === undefined ? undefined : [parent.traceId, parent.spanId, parent.traceFlags];
}

test("a traceparent of version 00 names its parent only when it is exactly the four fields", () => {
  expect(parentOf(`00-${TRACE_ID}-${SPAN_ID}-01`)).toEqual([TRACE_ID, SPAN_ID, 1]);
  expect(parentOf(`00-${TRACE_ID}-${SPAN_ID}-00`)).toEqual([TRACE_ID, SPAN_ID, 0]);
  expect(parentOf(`00-${TRACE_ID}-${SPAN_ID}-01-extra`)).toBeUndefined();
  expect(parentOf(`00-${TRACE_ID.toUpperCase()}-${SPAN_ID}-01`)).toBeUndefined();
  expect(parentOf(`00-${"0".repeat(32)}-${SPAN_ID}-01`)).toBeUndefined();
  expect(parentOf(`00-${TRACE_ID}-${"0".repeat(16)}-01`)).toBeUndefined();
});

test("a traceparent of a later version is read for the same fields, with what follows them ignored; version ff is invalid", () => {
  expect(parentOf(`01-${TRACE_ID}-${SPAN_ID}-01`)).toEqual([TRACE_ID, SPAN_ID, 1]);
  expect(parentOf(`cc-${TRACE_ID}-${SPAN_ID}-09-what-comes-later`)).toEqual([TRACE_ID, SPAN_ID, 1]);
  expect(parentOf(`cc-${TRACE_ID}-${SPAN_ID}-01.more`)).toBeUndefined();
  expect(parentOf(`ff-${TRACE_ID}-${SPAN_ID}-01`)).toBeUndefined();
});
