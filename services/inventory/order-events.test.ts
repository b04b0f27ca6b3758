import { create } from "@bufbuild/protobuf";
import { expect, test } from "vitest";
import { EventSchema, type Event } from "../../proto/gen/orderly/events/v1/events_pb.js";
import { OrderSchema } from "../../proto/gen/orderly/order/v1/order_pb.js";
import { Outbox, newEvent, type EventPayload } from "../../shared/events/index.js";
import { openDatabase } from "../../shared/sqlite/index.js";
import { orderEventHandling } from "./order-events.js";
import { inventoryMigrations } from "./schema.js";
import { InventoryStore } from "./store.js";

test("the inventory ignores exactly the order events that ask nothing of it, and handling one of those changes nothing", () => {
  const db = openDatabase({ file: ":memory:", migrations: inventoryMigrations });
  const outbox = new Outbox(db);
  const store = new InventoryStore(db, outbox);
  store.restock({ sku: "A", quantity: 5, unitPriceMinor: 100 });
  const { handle, ignores } = orderEventHandling(store, outbox);
  const order = create(OrderSchema, { id: "o1", customerId: "c1", items: [{ sku: "A", quantity: 1 }] });
  const event = (payload: EventPayload): Event => newEvent("o1", 1, 1_000, payload);

  // Every case of the event's payload (a case added to the proto is ignored until the inventory handles it), and the OrderCreated variants.
  const payloads: EventPayload[] = [
    ...EventSchema.oneofs[0]!.fields.map((field) => ({ case: field.localName, value: {} }) as EventPayload),
    { case: "orderCreated", value: { order, awaitingReservation: false } },
    { case: "orderCreated", value: { order, awaitingReservation: true } },
  ];
  const events = payloads.map(event);
  const awaiting = ({ payload }: Event) => (payload.case === "orderCreated" ? payload.value.awaitingReservation : undefined);
  const asked = events.map((e) => [e.payload.case, awaiting(e), !ignores(e)]);
  expect(asked).toEqual([
    ["orderCreated", false, false],
    ["orderConfirmed", undefined, true],
    ["orderRejected", undefined, true],
    ["orderCancelled", undefined, true],
    ["stockRestocked", undefined, false],
    ["stockReserved", undefined, false],
    ["stockReleased", undefined, false],
    ["reservationSucceeded", undefined, false],
    ["reservationFailed", undefined, false],
    ["orderCreated", false, false],
    ["orderCreated", true, true],
  ]);

  const changes = db.prepare("SELECT total_changes()").pluck();
  const before = changes.get();
  for (const e of events.filter(ignores)) handle(e, "orderly.orders.created");
  expect(changes.get()).toBe(before);
  // The one OrderCreated it does not ignore reserves the order's stock.
  handle(event({ case: "orderCreated", value: { order, awaitingReservation: true } }), "orderly.orders.created");
  expect(store.getItem("A")).toMatchObject({ available: 4, reserved: 1 });
});
