import { expect, test } from "vitest";
import type { CallContext } from "./context.js";
import { STOCK_VERSIONS_HEADER, announceStock, stockVersionsOf } from "./stock-versions.js";

test("the stock versions a call announces reach the gateway as they were, lines that changed nothing left out", () => {
  const context = { responseHeaders: {} } as unknown as CallContext;
  announceStock(context, [{ sku: "MUG-1", itemVersion: 7n }, { sku: "CUP.2", itemVersion: 0n }, { sku: "TEA_3", itemVersion: 12 }, { sku: "OLD" }]);
  expect(context.responseHeaders).toEqual({ [STOCK_VERSIONS_HEADER]: "MUG-1=7,TEA_3=12" });
  expect([...stockVersionsOf(context.responseHeaders[STOCK_VERSIONS_HEADER])]).toEqual([["MUG-1", 7], ["TEA_3", 12]]);
});

test("a call that changed no stock sends no header, and what does not parse is left out", () => {
  const context = { responseHeaders: {} } as unknown as CallContext;
  announceStock(context, [{ sku: "MUG-1", itemVersion: 0n }]);
  expect(context.responseHeaders).toEqual({});
  expect([...stockVersionsOf(undefined)]).toEqual([]);
  expect([...stockVersionsOf("MUG-1=x,=3,CUP=0,TEA,OK=4")]).toEqual([["OK", 4]]);
});
