export { pageSize, encodePageToken, decodePageToken, DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE, type Cursor, type CursorShape } from "./page-token.js";
export { pageOf } from "./page.js";
export { customerOrdersPage, type CustomerOrdersPage } from "./customer-orders.js";
