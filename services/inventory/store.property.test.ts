// Property tests of the inventory: whatever the order of restocks, reserves and
// releases (sequential, against a model; or concurrent, through gRPC and a second
// connection to the same SQLite file, interleaved by fast-check's scheduler), no
// SKU is oversold: available >= 0 and available + reserved = units stocked (there
// is no "sold" yet), reserved = what RESERVED reservations hold, and the outbox
// replays to the stored levels.
import { fromBinary } from "@bufbuild/protobuf";
import fc from "fast-check";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, test } from "vitest";
import { EventSchema } from "../../proto/gen/orderly/events/v1/events_pb.js";
import { InventoryService } from "../../proto/gen/orderly/inventory/v1/inventory_pb.js";
import { OrderlyError } from "../../shared/errors/index.js";
import { Outbox } from "../../shared/events/index.js";
import { connect, createClient, registration, startGrpcServer, type Client, type Interceptor } from "../../shared/grpc/index.js";
import { silentLogger } from "../../shared/logging/index.js";
import { openDatabase, type Db } from "../../shared/sqlite/index.js";
import { inventoryHandlers } from "./handlers/index.js";
import { inventoryMigrations } from "./schema.js";
import { InventoryStore, ReservationState, type ItemRecord, type ReservationRecord, type ReservedLine } from "./store.js";

const SKUS = ["sku-a", "sku-b", "sku-c"] as const;
const ORDER_IDS = ["order-1", "order-2", "order-3", "order-4", "order-5", "order-6"] as const;
const MAX_STOCK = 2 ** 31 - 1;

interface Line {
  sku: string;
  quantity: number;
}

/** What a call returned: a value, or the reason of the OrderlyError it threw. Anything else thrown fails the test. */
type Outcome<T> = { ok: true; value: T } | { ok: false; reason: string };

function outcome<T>(call: () => T): Outcome<T> {
  try {
    return { ok: true, value: call() };
  } catch (error) {
    if (error instanceof OrderlyError) return { ok: false, reason: error.reason };
    throw error;
  }
}

async function asyncOutcome<T>(call: () => Promise<T>): Promise<Outcome<T>> {
  try {
    return { ok: true, value: await call() };
  } catch (error) {
    if (error instanceof OrderlyError) return { ok: false, reason: error.reason };
    throw error;
  }
}

const sameLines = (a: readonly Line[], b: readonly Line[]) =>
  a.length === b.length && a.every((line, i) => line.sku === b[i]!.sku && line.quantity === b[i]!.quantity);

const skuAndQuantity = (lines: readonly Line[]): Line[] => lines.map(({ sku, quantity }) => ({ sku, quantity }));

// ---------------------------------------------------------------------------
// Invariants, read from SQL (the rows as stored) and checked against each other.
// ---------------------------------------------------------------------------

interface ItemRow {
  sku: string;
  available: number;
  reserved: number;
  version: number;
}

function itemRows(db: Db): ItemRow[] {
  return db.prepare<[], ItemRow>("SELECT sku, available, reserved, version FROM items ORDER BY sku").all();
}

/** Units held per SKU by the reservations in state RESERVED, summed from their stored JSON lines. */
function heldByReservations(db: Db): Map<string, number> {
  const held = new Map<string, number>();
  for (const row of db.prepare<[], { lines: string }>("SELECT lines FROM reservations WHERE state = 1").all()) {
    for (const line of JSON.parse(row.lines) as ReservedLine[]) held.set(line.sku, (held.get(line.sku) ?? 0) + line.quantity);
  }
  return held;
}

/**
 * For every SKU: available >= 0, reserved >= 0, available + reserved = units stocked,
 * and reserved = the units held by RESERVED reservations.
 */
function expectStockInvariants(db: Db, stocked: ReadonlyMap<string, number>): void {
  const rows = itemRows(db);
  expect(rows.map((row) => row.sku)).toEqual([...stocked.keys()].sort());
  const held = heldByReservations(db);
  for (const row of rows) {
    expect(row.available, `available of ${row.sku}`).toBeGreaterThanOrEqual(0);
    expect(row.reserved, `reserved of ${row.sku}`).toBeGreaterThanOrEqual(0);
    expect(row.available + row.reserved, `available + reserved of ${row.sku}`).toBe(stocked.get(row.sku));
    expect(row.reserved, `reserved of ${row.sku} vs RESERVED reservations`).toBe(held.get(row.sku) ?? 0);
  }
  for (const sku of held.keys()) expect(rows.some((row) => row.sku === sku), `reservation holds unknown SKU ${sku}`).toBe(true);
}

/**
 * The outbox holds one event per change of each SKU, versions 1..n in commit
 * order, and replaying their quantities gives each item's stored levels (the
 * item snapshot in every event matches the replay at that point).
 */
function expectOutboxReplaysToItems(db: Db): number {
  const replay = new Map<string, { available: number; reserved: number; version: number }>();
  const rows = db.prepare<[], { payload: Buffer }>("SELECT payload FROM outbox ORDER BY seq").all();
  for (const row of rows) {
    const event = fromBinary(EventSchema, row.payload);
    const sku = event.aggregateId;
    const before = replay.get(sku) ?? { available: 0, reserved: 0, version: 0 };
    const { payload } = event;
    let after: { available: number; reserved: number; version: number };
    switch (payload.case) {
      case "stockRestocked":
        after = { available: before.available + payload.value.quantity, reserved: before.reserved, version: before.version + 1 };
        break;
      case "stockReserved":
        after = { available: before.available - payload.value.quantity, reserved: before.reserved + payload.value.quantity, version: before.version + 1 };
        break;
      case "stockReleased":
        after = { available: before.available + payload.value.quantity, reserved: before.reserved - payload.value.quantity, version: before.version + 1 };
        break;
      default:
        throw new Error(`unexpected event ${payload.case} in the inventory outbox`);
    }
    expect(Number(event.aggregateVersion), `version of event for ${sku}`).toBe(after.version);
    const item = payload.value.item;
    expect({ available: item?.available, reserved: item?.reserved }, `item in event v${after.version} of ${sku}`).toEqual({
      available: after.available,
      reserved: after.reserved,
    });
    replay.set(sku, after);
  }
  const fromItems = new Map(itemRows(db).map((row) => [row.sku, { available: row.available, reserved: row.reserved, version: row.version }]));
  expect(replay).toEqual(fromItems);
  return rows.length;
}

// ---------------------------------------------------------------------------
// 1. Sequential, model-based.
// ---------------------------------------------------------------------------

interface ModelItem {
  available: number;
  reserved: number;
  stocked: number;
  unitPriceMinor: number;
  currencyCode: string;
  version: number;
}

interface InventoryModel {
  items: Map<string, ModelItem>;
  reservations: Map<string, ReservationRecord>;
  /** Each restock applied with a request id: what it asked for (SKU, quantity, price, currency). */
  restockRequests: Map<string, string>;
  events: number;
}

interface RealInventory {
  db: Db;
  store: InventoryStore;
}

type InventoryCommand = fc.Command<InventoryModel, RealInventory>;

function expectItemAsModelled(actual: ItemRecord | undefined, expected: ModelItem | undefined): void {
  if (expected === undefined) {
    expect(actual).toBeUndefined();
    return;
  }
  expect(actual).toMatchObject({
    available: expected.available,
    reserved: expected.reserved,
    unitPriceMinor: expected.unitPriceMinor,
    currencyCode: expected.currencyCode,
    version: expected.version,
  });
}

/** After every command: the store, SQL and the model agree, and the invariants hold for every SKU. */
function expectAgreesWithModel(model: InventoryModel, real: RealInventory): void {
  const stocked = new Map([...model.items].map(([sku, item]) => [sku, item.stocked]));
  expectStockInvariants(real.db, stocked);
  for (const row of itemRows(real.db)) {
    expect(row).toMatchObject({ available: model.items.get(row.sku)!.available, reserved: model.items.get(row.sku)!.reserved });
  }
  for (const sku of SKUS) {
    const item = real.store.getItem(sku);
    expectItemAsModelled(item, model.items.get(sku));
    if (item) expect(item.available + item.reserved).toBe(model.items.get(sku)!.stocked);
  }
  expect(real.db.prepare<[], { n: number }>("SELECT count(*) AS n FROM outbox").get()!.n).toBe(model.events);
}

class RestockCommand implements InventoryCommand {
  constructor(
    readonly sku: string,
    readonly quantity: number,
    readonly requestId: string | undefined,
    readonly unitPriceMinor: number | undefined,
    readonly currencyCode: string | undefined,
  ) {}

  check(): boolean {
    return true;
  }

  run(model: InventoryModel, real: RealInventory): void {
    const expected = this.expected(model);
    const actual = outcome(() =>
      real.store.restock({
        sku: this.sku,
        quantity: this.quantity,
        requestId: this.requestId,
        unitPriceMinor: this.unitPriceMinor,
        currencyCode: this.currencyCode,
      }),
    );
    if (expected.ok) {
      expect(actual.ok, JSON.stringify(actual)).toBe(true);
      if (actual.ok) expectItemAsModelled(actual.value, expected.value);
    } else {
      expect(actual).toEqual(expected);
    }
    expectAgreesWithModel(model, real);
  }

  /** What the restock asks for: a retry by its request id must ask for the same. */
  private request(): string {
    return [this.sku, this.quantity, this.unitPriceMinor, this.currencyCode].join("|");
  }

  /** Applies the restock to the model; returns the item it should return, or the reason it should fail. */
  private expected(model: InventoryModel): Outcome<ModelItem> {
    if (this.requestId !== undefined) {
      const previous = model.restockRequests.get(this.requestId);
      if (previous) {
        if (previous !== this.request()) return { ok: false, reason: "IDEMPOTENCY_KEY_REUSED" };
        return { ok: true, value: model.items.get(this.sku)! };
      }
    }
    const current = model.items.get(this.sku);
    // A new currency needs a new price: the old one is an amount in the old currency.
    if (current && this.currencyCode !== undefined && this.currencyCode !== current.currencyCode && this.unitPriceMinor === undefined && current.unitPriceMinor !== 0) {
      return { ok: false, reason: "VALIDATION_FAILED" };
    }
    if (current && current.stocked + this.quantity > MAX_STOCK) return { ok: false, reason: "STOCK_LIMIT_EXCEEDED" };
    const item: ModelItem = current
      ? {
          ...current,
          available: current.available + this.quantity,
          stocked: current.stocked + this.quantity,
          unitPriceMinor: this.unitPriceMinor ?? current.unitPriceMinor,
          currencyCode: this.currencyCode ?? current.currencyCode,
          version: current.version + 1,
        }
      : {
          available: this.quantity,
          reserved: 0,
          stocked: this.quantity,
          unitPriceMinor: this.unitPriceMinor ?? 0,
          currencyCode: this.currencyCode ?? "USD",
          version: 1,
        };
    model.items.set(this.sku, item);
    if (this.requestId !== undefined) model.restockRequests.set(this.requestId, this.request());
    model.events += 1;
    return { ok: true, value: item };
  }

  toString(): string {
    const extras = [
      this.requestId && `requestId: "${this.requestId}"`,
      this.unitPriceMinor !== undefined && `unitPriceMinor: ${this.unitPriceMinor}`,
      this.currencyCode && `currencyCode: "${this.currencyCode}"`,
    ].filter(Boolean);
    return `restock({ sku: "${this.sku}", quantity: ${this.quantity}${extras.map((e) => `, ${e}`).join("")} })`;
  }
}

class ReserveCommand implements InventoryCommand {
  constructor(
    readonly orderId: string,
    readonly lines: readonly Line[],
  ) {}

  check(_model: Readonly<InventoryModel>): boolean {
    return true;
  }

  run(model: InventoryModel, real: RealInventory): void {
    const requested = this.requestedLines(model);
    const expected = this.expected(model, requested);
    const actual = outcome(() => real.store.reserve(this.orderId, requested));
    expect(actual).toEqual(expected);
    expect(real.store.getReservation(this.orderId)).toEqual(model.reservations.get(this.orderId));
    expectAgreesWithModel(model, real);
  }

  /** The lines to reserve. */
  protected requestedLines(_model: InventoryModel): readonly Line[] {
    return this.lines;
  }

  /** Applies the reservation to the model; returns the reservation it should return, or the reason it should fail. */
  private expected(model: InventoryModel, requested: readonly Line[]): Outcome<ReservationRecord> {
    const existing = model.reservations.get(this.orderId);
    if (existing) {
      if (existing.state === ReservationState.RELEASED) return { ok: false, reason: "RESERVATION_RELEASED" };
      if (!sameLines(existing.lines, requested)) return { ok: false, reason: "RESERVATION_MISMATCH" };
      return { ok: true, value: existing };
    }
    // The store's contract: unknown SKUs first, then mixed currencies, then stock, whatever the order of the lines.
    const items = requested.map((line) => model.items.get(line.sku));
    if (items.some((item) => item === undefined)) return { ok: false, reason: "UNKNOWN_SKU" };
    if (new Set(items.map((item) => item!.currencyCode)).size > 1) return { ok: false, reason: "MIXED_CURRENCIES" };
    if (requested.some((line, i) => items[i]!.available < line.quantity)) return { ok: false, reason: "INSUFFICIENT_STOCK" };
    const lines: ReservedLine[] = requested.map((line, i) => ({ sku: line.sku, quantity: line.quantity, unitPriceMinor: items[i]!.unitPriceMinor }));
    const currencyCode = items[0]!.currencyCode;
    // Each line names its item's version after it (what its event announces).
    const changed = lines.map((line) => {
      const item = model.items.get(line.sku)!;
      model.items.set(line.sku, {
        ...item,
        available: item.available - line.quantity,
        reserved: item.reserved + line.quantity,
        version: item.version + 1,
      });
      return { ...line, itemVersion: item.version + 1 };
    });
    const reservation: ReservationRecord = {
      orderId: this.orderId,
      state: ReservationState.RESERVED,
      lines: changed,
      totalMinor: lines.reduce((sum, line) => sum + line.quantity * line.unitPriceMinor, 0),
      currencyCode,
    };
    model.reservations.set(this.orderId, reservation);
    model.events += lines.length;
    return { ok: true, value: reservation };
  }

  toString(): string {
    return `reserve("${this.orderId}", ${JSON.stringify(this.lines)})`;
  }
}

/** A retry: reserves a reserved order again with the lines it holds (the reply must be the same reservation). */
class ReserveAgainCommand extends ReserveCommand {
  constructor(orderId: string) {
    super(orderId, []);
  }

  override check(model: Readonly<InventoryModel>): boolean {
    return model.reservations.get(this.orderId)?.state === ReservationState.RESERVED;
  }

  protected override requestedLines(model: InventoryModel): readonly Line[] {
    return skuAndQuantity(model.reservations.get(this.orderId)!.lines);
  }

  override toString(): string {
    return `reserve("${this.orderId}", <the lines it holds>)`;
  }
}

class ReleaseCommand implements InventoryCommand {
  constructor(readonly orderId: string) {}

  check(): boolean {
    return true;
  }

  run(model: InventoryModel, real: RealInventory): void {
    const expected = this.expected(model);
    const actual = outcome(() => real.store.release(this.orderId));
    expect(actual).toEqual({ ok: true, value: expected });
    expect(real.store.getReservation(this.orderId)).toEqual(expected);
    expectAgreesWithModel(model, real);
  }

  /** Applies the release to the model; returns the reservation it should return. */
  private expected(model: InventoryModel): ReservationRecord {
    const existing = model.reservations.get(this.orderId);
    if (existing === undefined) {
      const tombstone: ReservationRecord = { orderId: this.orderId, state: ReservationState.RELEASED, lines: [], totalMinor: 0, currencyCode: "" };
      model.reservations.set(this.orderId, tombstone);
      return tombstone;
    }
    if (existing.state === ReservationState.RELEASED) return existing;
    const changed = existing.lines.map((line) => {
      const item = model.items.get(line.sku)!;
      model.items.set(line.sku, {
        ...item,
        available: item.available + line.quantity,
        reserved: item.reserved - line.quantity,
        version: item.version + 1,
      });
      return { ...line, itemVersion: item.version + 1 };
    });
    const released: ReservationRecord = { ...existing, state: ReservationState.RELEASED, lines: changed };
    model.reservations.set(this.orderId, released);
    model.events += existing.lines.length;
    return released;
  }

  toString(): string {
    return `release("${this.orderId}")`;
  }
}

/** Reads everything back: the listing, every reservation of the pool, and the outbox replay. */
class CheckCommand implements InventoryCommand {
  check(): boolean {
    return true;
  }

  run(model: InventoryModel, real: RealInventory): void {
    const listed = real.store.listItems("", 100);
    expect(listed.map((item) => item.sku)).toEqual([...model.items.keys()].sort());
    for (const item of listed) expectItemAsModelled(item, model.items.get(item.sku));
    for (const orderId of ORDER_IDS) expect(real.store.getReservation(orderId)).toEqual(model.reservations.get(orderId));
    expect(expectOutboxReplaysToItems(real.db)).toBe(model.events);
    expectAgreesWithModel(model, real);
  }

  toString(): string {
    return "check()";
  }
}

const skuArb = fc.constantFrom(...SKUS);
const orderIdArb = fc.constantFrom(...ORDER_IDS);

/** 1-3 lines on distinct SKUs (as ReserveStock accepts them). */
const linesArb = fc.uniqueArray(fc.record({ sku: skuArb, quantity: fc.integer({ min: 1, max: 6 }) }), {
  minLength: 1,
  maxLength: 3,
  selector: (line) => line.sku,
});

/** `arbitrary`'s value about once in `1 + absentWeight` draws, undefined otherwise. */
function sometimes<T>(arbitrary: fc.Arbitrary<T>, absentWeight: number): fc.Arbitrary<T | undefined> {
  return fc.oneof({ arbitrary: fc.constant(undefined), weight: absentWeight }, { arbitrary, weight: 1 });
}

const restockArb = fc
  .record({
    sku: skuArb,
    // Mostly small; now and then a huge one, so the stock limit is reached too.
    quantity: fc.oneof({ arbitrary: fc.integer({ min: 1, max: 10 }), weight: 9 }, { arbitrary: fc.constant(2 ** 30), weight: 1 }),
    requestId: sometimes(fc.constantFrom("req-1", "req-2"), 3),
    unitPriceMinor: sometimes(fc.integer({ min: 0, max: 500 }), 1),
    currencyCode: sometimes(fc.constantFrom("USD", "EUR"), 2),
  })
  .map(({ sku, quantity, requestId, unitPriceMinor, currencyCode }) => new RestockCommand(sku, quantity, requestId, unitPriceMinor, currencyCode));

const reserveArb = fc.record({ orderId: orderIdArb, lines: linesArb }).map(({ orderId, lines }) => new ReserveCommand(orderId, lines));
const reserveAgainArb = orderIdArb.map((orderId) => new ReserveAgainCommand(orderId));
const releaseArb = orderIdArb.map((orderId) => new ReleaseCommand(orderId));
const checkArb = fc.constant(new CheckCommand());

/** Up to 40 commands; restocks and reserves twice as likely as the rest. */
const commandsArb = fc.commands([restockArb, restockArb, reserveArb, reserveArb, reserveAgainArb, releaseArb, checkArb], {
  maxCommands: 40,
  size: "max",
});

// ---------------------------------------------------------------------------
// 2. Concurrent: gRPC clients and a second connection, interleaved by fc.scheduler().
// ---------------------------------------------------------------------------

type Operation =
  | { kind: "restock"; sku: string; quantity: number; requestId: string | undefined }
  | { kind: "reserve"; orderId: string; lines: Line[] }
  | { kind: "release"; orderId: string };

/** Who calls: the gRPC server (its own connection) or another process's store (a second connection). */
type Caller = "grpc" | "store";

interface Done {
  operation: Operation;
  caller: Caller;
  /** For a reserve or release: the reservation's state and lines as returned. */
  result: Outcome<{ state: number; lines: Line[] } | undefined>;
}

/** Restocks sent with a request id: a few fixed ones, so retries of one (racing each other) are common. */
const KEYED_RESTOCKS: readonly Operation[] = SKUS.flatMap((sku, i) => [
  { kind: "restock", sku, quantity: i + 1, requestId: `restock-${sku}-1` },
  { kind: "restock", sku, quantity: 2, requestId: `restock-${sku}-2` },
]);

/** Each order's own lines: reserving them again is a retry of the order (it must get the same reservation). */
const ORDER_LINES: readonly Operation[] = ORDER_IDS.map((orderId, i) => ({
  kind: "reserve",
  orderId,
  lines: [{ sku: SKUS[i % SKUS.length]!, quantity: 1 + (i % 3) }, ...(i % 2 === 0 ? [{ sku: SKUS[(i + 1) % SKUS.length]!, quantity: 1 }] : [])],
}));

const operationArb: fc.Arbitrary<Operation> = fc.oneof(
  { weight: 1, arbitrary: fc.record({ kind: fc.constant("restock" as const), sku: skuArb, quantity: fc.integer({ min: 1, max: 4 }), requestId: fc.constant(undefined) }) },
  { weight: 1, arbitrary: fc.constantFrom(...KEYED_RESTOCKS) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant("reserve" as const), orderId: orderIdArb, lines: linesArb }) },
  { weight: 3, arbitrary: fc.constantFrom(...ORDER_LINES) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant("release" as const), orderId: orderIdArb }) },
);

const actorsArb = fc.array(
  fc.record({ caller: fc.constantFrom<Caller>("grpc", "store"), operations: fc.array(operationArb, { minLength: 1, maxLength: 3 }) }),
  { minLength: 2, maxLength: 6 },
);

/** Initial stock per SKU (undefined: the SKU does not exist until restocked). */
const initialStockArb = fc.tuple(...SKUS.map(() => fc.option(fc.integer({ min: 1, max: 6 }), { nil: undefined })));

function describeOperation(operation: Operation): string {
  switch (operation.kind) {
    case "restock":
      return `restock ${operation.sku} +${operation.quantity}${operation.requestId ? ` (${operation.requestId})` : ""}`;
    case "reserve":
      return `reserve ${operation.orderId} ${operation.lines.map((l) => `${l.sku}x${l.quantity}`).join(",")}`;
    case "release":
      return `release ${operation.orderId}`;
  }
}

/** An inventory gRPC server on a SQLite file, a client of it, and a second store on a second connection to the file. */
interface InventoryOnFile extends AsyncDisposable {
  readonly db: Db;
  readonly otherStore: InventoryStore;
  readonly client: Client<typeof InventoryService>;
}

async function startInventoryOnFile(interceptors: readonly Interceptor[]): Promise<InventoryOnFile> {
  const dir = mkdtempSync(join(tmpdir(), "orderly-inventory-property-"));
  const cleanups: (() => void | Promise<void>)[] = [() => rmSync(dir, { recursive: true, force: true })];
  const dispose = async () => {
    for (const cleanup of cleanups.reverse()) await cleanup();
  };
  try {
    const file = join(dir, "inventory.db");
    const db = openDatabase({ file, migrations: inventoryMigrations });
    cleanups.push(() => void db.close());
    const otherDb = openDatabase({ file, migrations: inventoryMigrations });
    cleanups.push(() => void otherDb.close());
    const server = await startGrpcServer({
      host: "127.0.0.1",
      port: 0,
      logger: silentLogger(),
      interceptors,
      // No order service here: each order counts as ended, so releasing its stock is allowed (ReleaseStock asks callers that are not a service).
      services: [registration(InventoryService, inventoryHandlers(new InventoryStore(db, new Outbox(db)), async () => "ended"))],
    });
    cleanups.push(() => server.close(1000));
    const connection = connect(`127.0.0.1:${server.port}`);
    cleanups.push(() => connection.close());
    return {
      db,
      otherStore: new InventoryStore(otherDb, new Outbox(otherDb)),
      client: createClient(InventoryService, connection),
      [Symbol.asyncDispose]: dispose,
    };
  } catch (error) {
    await dispose();
    throw error;
  }
}

/** Runs one operation through the given caller; its outcome, or the OrderlyError reason. */
async function perform(inventory: InventoryOnFile, caller: Caller, operation: Operation): Promise<Done["result"]> {
  const asReservation = (reservation: { state: number; lines: readonly Line[] } | undefined) =>
    reservation && { state: Number(reservation.state), lines: skuAndQuantity(reservation.lines) };
  if (caller === "store") {
    const store = inventory.otherStore;
    switch (operation.kind) {
      case "restock":
        return outcome(() => void store.restock({ sku: operation.sku, quantity: operation.quantity, requestId: operation.requestId }));
      case "reserve":
        return outcome(() => asReservation(store.reserve(operation.orderId, operation.lines)));
      case "release":
        return outcome(() => asReservation(store.release(operation.orderId)));
    }
  }
  const client = inventory.client;
  switch (operation.kind) {
    case "restock":
      return asyncOutcome(async () => void (await client.restock({ sku: operation.sku, quantity: operation.quantity, requestId: operation.requestId ?? "" })));
    case "reserve":
      return asyncOutcome(async () => asReservation((await client.reserveStock({ orderId: operation.orderId, lines: operation.lines })).reservation));
    case "release":
      return asyncOutcome(async () => asReservation((await client.releaseStock({ orderId: operation.orderId })).reservation));
  }
}

/** The reasons a reserve may fail with when SKUs, quantities and order ids race. */
const RACING_RESERVE_REASONS = ["INSUFFICIENT_STOCK", "UNKNOWN_SKU", "RESERVATION_RELEASED", "RESERVATION_MISMATCH"];

// ---------------------------------------------------------------------------

describe("InventoryStore properties", () => {
  test("inventory operations in any order never oversell: available >= 0 and available + reserved = stocked, as a model predicts", () => {
    fc.assert(
      fc.property(commandsArb, (commands) => {
        let now = 1_000;
        const db = openDatabase({ file: ":memory:", migrations: inventoryMigrations });
        try {
          const setup = () => ({
            model: { items: new Map(), reservations: new Map(), restockRequests: new Map(), events: 0 } satisfies InventoryModel,
            real: { db, store: new InventoryStore(db, new Outbox(db), () => now++) },
          });
          fc.modelRun(setup, commands);
        } finally {
          db.close();
        }
      }),
      { numRuns: 200 },
    );
  });

  test("concurrent reserves, releases and restocks over gRPC and a second connection never oversell nor hold stock for a released order", async () => {
    await fc.assert(
      fc.asyncProperty(fc.scheduler(), initialStockArb, actorsArb, async (scheduler, initialStock, actors) => {
        // The scheduler picks when each caller issues its next call, and when each call that reached the server runs.
        const scheduledByFastCheck: Interceptor = (next) => async (request, context) => {
          await scheduler.schedule(Promise.resolve(), `server runs ${context.method}`);
          return next(request, context);
        };
        await using inventory = await startInventoryOnFile([scheduledByFastCheck]);

        const stocked = new Map<string, number>();
        SKUS.forEach((sku, i) => {
          const quantity = initialStock[i];
          if (quantity === undefined) return;
          inventory.otherStore.restock({ sku, quantity });
          stocked.set(sku, quantity);
        });

        const done: Done[] = [];
        const running = actors.map(async (actor, a) => {
          for (const operation of actor.operations) {
            await scheduler.schedule(Promise.resolve(), `caller ${a} (${actor.caller}) starts ${describeOperation(operation)}`);
            done.push({ operation, caller: actor.caller, result: await perform(inventory, actor.caller, operation) });
          }
        });
        await scheduler.waitFor(Promise.all(running));

        // Every call ended as the contract allows.
        const keyedRestocks = new Set<string>();
        const reservedLines = new Map<string, Line[]>();
        const released = new Set<string>();
        for (const { operation, result } of done) {
          const what = `${describeOperation(operation)} -> ${JSON.stringify(result)}`;
          switch (operation.kind) {
            case "restock":
              expect(result.ok, what).toBe(true);
              if (operation.requestId !== undefined) {
                if (keyedRestocks.has(operation.requestId)) break;
                keyedRestocks.add(operation.requestId);
              }
              stocked.set(operation.sku, (stocked.get(operation.sku) ?? 0) + operation.quantity);
              break;
            case "reserve":
              if (!result.ok) {
                expect(RACING_RESERVE_REASONS, what).toContain(result.reason);
                break;
              }
              expect(result.value, what).toEqual({ state: ReservationState.RESERVED, lines: operation.lines });
              // Idempotent per order: every successful reserve of one order reserved the same lines.
              expect(reservedLines.get(operation.orderId) ?? operation.lines, what).toEqual(operation.lines);
              reservedLines.set(operation.orderId, operation.lines);
              break;
            case "release":
              expect(result, what).toMatchObject({ ok: true, value: { state: ReservationState.RELEASED } });
              released.add(operation.orderId);
              break;
          }
        }

        // The stock invariants, from SQL.
        expectStockInvariants(inventory.db, stocked);
        expectOutboxReplaysToItems(inventory.db);

        // No stock is held for a released order; what is held was reserved by someone, with those lines.
        const reservations = inventory.db
          .prepare<[], { order_id: string; state: number; lines: string }>("SELECT order_id, state, lines FROM reservations")
          .all();
        for (const row of reservations) {
          if (released.has(row.order_id)) expect(row.state, `reservation of released ${row.order_id}`).toBe(ReservationState.RELEASED);
          if (row.state === ReservationState.RESERVED) {
            expect(skuAndQuantity(JSON.parse(row.lines) as Line[]), `lines held for ${row.order_id}`).toEqual(reservedLines.get(row.order_id));
          }
        }
        for (const orderId of released) expect(reservations.some((row) => row.order_id === orderId), `row of released ${orderId}`).toBe(true);

        // Both connections and the gRPC API read the same levels.
        for (const row of itemRows(inventory.db)) {
          const viaStore = inventory.otherStore.getItem(row.sku)!;
          expect({ available: viaStore.available, reserved: viaStore.reserved }).toEqual({ available: row.available, reserved: row.reserved });
          const { item } = await scheduler.waitFor(inventory.client.getItem({ sku: row.sku }));
          expect({ available: item?.available, reserved: item?.reserved }).toEqual({ available: row.available, reserved: row.reserved });
        }
      }),
      { numRuns: 50 },
    );
  });
});
