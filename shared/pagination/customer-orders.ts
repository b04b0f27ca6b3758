import { decodePageToken, pageSize } from "./page-token.js";

/** A validated request for a page of a customer's orders, newest first (write side and read side alike). */
export interface CustomerOrdersPage {
  /** The page token's query key. */
  query: string;
  size: number;
  /** The (create time, id) of the last order of the previous page, or undefined for the first page. */
  before: { createTime: number; id: string } | undefined;
}

/** The page size and the decoded page token of a customer's order listing (the proto's rules validate the customer id). */
export function customerOrdersPage(customerId: string, requestedSize: number, pageToken: string): CustomerOrdersPage {
  const size = pageSize(requestedSize);
  const query = `orders:${customerId}`;
  const cursor = decodePageToken(query, pageToken, ["integer", "string"]);
  return { query, size, before: cursor === undefined ? undefined : { createTime: cursor[0], id: cursor[1] } };
}
