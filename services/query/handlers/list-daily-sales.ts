import type { MessageInitShape } from "@bufbuild/protobuf";
import type { ListDailySalesRequest, ListDailySalesResponseSchema } from "../../../proto/gen/orderly/query/v1/query_pb.js";
import { validationError, type FieldViolation } from "../../../shared/errors/index.js";
import { decodePageToken, pageOf, pageSize } from "../../../shared/pagination/index.js";
import type { ReadStore } from "../read-store.js";

/** Whether a YYYY-MM-DD (the proto's pattern has checked the form) names a day of the calendar, not 2026-02-30. */
function isCalendarDay(day: string): boolean {
  const date = new Date(`${day}T00:00:00Z`);
  return !Number.isNaN(date.getTime()) && date.toISOString().slice(0, 10) === day;
}

/** VALIDATION_FAILED for a day that is not in the calendar, or a range that ends before it starts (the proto's pattern cannot say either). */
function checkDays(request: ListDailySalesRequest): void {
  const violations: FieldViolation[] = [];
  for (const [field, day] of [["start_day", request.startDay], ["end_day", request.endDay]] as const) {
    if (day !== "" && !isCalendarDay(day)) violations.push({ field, description: "must be a day of the calendar (YYYY-MM-DD)" });
  }
  if (violations.length === 0 && request.startDay !== "" && request.endDay !== "" && request.endDay < request.startDay) {
    violations.push({ field: "end_day", description: "must not be before start_day" });
  }
  if (violations.length > 0) throw validationError(violations);
}

/** ListDailySales: units and revenue per SKU per day, ordered by day then SKU. */
export function listDailySales(store: ReadStore) {
  return (request: ListDailySalesRequest): MessageInitShape<typeof ListDailySalesResponseSchema> => {
    checkDays(request);
    const filter = { sku: request.sku, start: request.startDay || "0000-00-00", end: request.endDay || "9999-99-99" };
    const query = `sales:${filter.sku}:${filter.start}:${filter.end}`;
    const size = pageSize(request.pageSize);
    const cursor = decodePageToken(query, request.pageToken, ["string", "string", "string"]);
    const rows = store.sales(filter, cursor, size + 1);
    const page = pageOf(rows, size, query, (row) => [row.day, row.sku, row.currency_code]);
    return {
      sales: page.rows.map((row) => ({
        sku: row.sku,
        day: row.day,
        units: row.units,
        revenueMinor: row.revenue_minor,
        currencyCode: row.currency_code,
      })),
      nextPageToken: page.nextPageToken,
    };
  };
}
