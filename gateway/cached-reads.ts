import { QueryService } from "../proto/gen/orderly/query/v1/query_pb.js";
import type { CachedRead } from "./http-server.js";

/**
 * The reads the gateway's cache serves: single-resource reads of the query
 * side (full method name → the path variable naming the resource, and whether
 * it belongs to a customer). InventoryService.GetItem is the authoritative
 * stock and is not cached.
 */
export const cachedReads: ReadonlyMap<string, CachedRead> = new Map<string, CachedRead>([
  [`${QueryService.typeName}/GetOrder`, { param: "id", perCustomer: true }],
  [`${QueryService.typeName}/GetStockLevel`, { param: "sku", perCustomer: false }],
]);
