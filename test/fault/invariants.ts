import { openReadOnly } from "../helpers/models.js";

/** Stock and reservations as the inventory database holds them, checked against the orders. */
export function checkStockInvariants(dataDir: string, stocked: Record<string, number>) {
  const inventory = openReadOnly(dataDir, "inventory.db");
  const orders = openReadOnly(dataDir, "order.db");
  try {
    const items = inventory.prepare("SELECT sku, available, reserved FROM items").all() as { sku: string; available: number; reserved: number }[];
    const reservations = inventory.prepare("SELECT order_id, state, lines FROM reservations").all() as { order_id: string; state: number; lines: string }[];
    const statusOf = new Map(
      (orders.prepare("SELECT id, status FROM orders").all() as { id: string; status: number }[]).map((o) => [o.id, o.status]),
    );
    const heldBySku = new Map<string, number>();
    const orphanReservations: string[] = [];
    for (const r of reservations) {
      if (r.state !== 1) continue;
      if (statusOf.get(r.order_id) !== 2) orphanReservations.push(`${r.order_id}:${statusOf.get(r.order_id) ?? "missing"}`);
      for (const line of JSON.parse(r.lines) as { sku: string; quantity: number }[]) heldBySku.set(line.sku, (heldBySku.get(line.sku) ?? 0) + line.quantity);
    }
    const reservedIds = new Set(reservations.filter((r) => r.state === 1).map((r) => r.order_id));
    const confirmedWithoutReservation = [...statusOf.entries()].filter(([id, status]) => status === 2 && !reservedIds.has(id)).map(([id]) => id);
    const badItems = items.filter(
      (i) => i.available < 0 || i.available + i.reserved !== (stocked[i.sku] ?? NaN) || i.reserved !== (heldBySku.get(i.sku) ?? 0),
    );
    const pending = [...statusOf.values()].filter((s) => s === 1).length;
    return { orphanReservations, confirmedWithoutReservation, badItems, pending, orders: statusOf.size };
  } finally {
    inventory.close();
    orders.close();
  }
}
