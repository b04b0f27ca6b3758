import { create, getOption } from "@bufbuild/protobuf";
import { field as fieldRules } from "../../proto/gen/buf/validate/validate_pb.js";
import { expect, test } from "vitest";
import { ReserveStockRequestSchema } from "../../proto/gen/orderly/inventory/v1/inventory_pb.js";
import { CreateOrderRequestSchema } from "../../proto/gen/orderly/order/v1/order_pb.js";
import type { OrderlyError } from "../errors/index.js";
import { checkRules } from "./validate-requests.js";

test("a list of thousands of lines, repeated SKUs or not, is refused for its length (a 400), never an error of the rules (a 500)", () => {
  for (const lines of [
    Array.from({ length: 6000 }, (_, i) => ({ sku: `SKU-${i}`, quantity: 1 })),
    Array.from({ length: 6000 }, () => ({ sku: "SKU-1", quantity: 1 })),
  ]) {
    const order = () => checkRules(CreateOrderRequestSchema, create(CreateOrderRequestSchema, { order: { customerId: "eve", items: lines } }));
    const reservation = () => checkRules(ReserveStockRequestSchema, create(ReserveStockRequestSchema, { orderId: "ord-1", lines }));
    for (const [check, field] of [[order, "order.items"], [reservation, "lines"]] as const) {
      let refused: OrderlyError | undefined;
      try {
        check();
      } catch (error) {
        refused = error as OrderlyError;
      }
      expect({ reason: refused?.reason, violations: refused?.violations }).toEqual({
        reason: "VALIDATION_FAILED",
        violations: [{ field, description: "must contain no more than 100 item(s)" }],
      });
    }
  }
});

test("a rule over a message's lines together names the lines: a repeated SKU in an order or a reservation", () => {
  const violationsOf = (check: () => void) => {
    try {
      check();
      return [];
    } catch (error) {
      return (error as OrderlyError).violations;
    }
  };
  const twice = [
    { sku: "BOX-1", quantity: 1 },
    { sku: "BOX-1", quantity: 2 },
  ];
  const repeated = { field: "", description: "must not repeat the SKU of another line" };
  expect(violationsOf(() => checkRules(ReserveStockRequestSchema, create(ReserveStockRequestSchema, { orderId: "ord-1", lines: twice })))).toEqual([{ ...repeated, field: "lines" }]);
  expect(violationsOf(() => checkRules(CreateOrderRequestSchema, create(CreateOrderRequestSchema, { order: { customerId: "eve", items: twice } })))).toEqual([
    { ...repeated, field: "order.items" },
  ]);
  expect(violationsOf(() => checkRules(ReserveStockRequestSchema, create(ReserveStockRequestSchema, { orderId: "ord-1", lines: twice.slice(1) })))).toEqual([]);
});

test("the one-SKU-per-line rule runs only on lists within their max_items, whatever that is set to", () => {
  for (const field of [CreateOrderRequestSchema.field.order.message!.field.items!, ReserveStockRequestSchema.field.lines]) {
    const rules = getOption(field, fieldRules);
    const maxItems = rules.type.case === "repeated" ? Number(rules.type.value.maxItems) : undefined;
    expect({ field: field.name, expressions: rules.cel.map((rule) => rule.expression) }).toEqual({ field: field.name, expressions: [`this.size() > ${maxItems} || this.map(line, line.sku).unique()`] });
  }
});
