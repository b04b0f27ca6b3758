import type { CallContext } from "./context.js";

/**
 * Response header telling the HTTP gateway the versions a write left the
 * stock of its SKUs at (`MUG-1=7,CUP-2=3`), which its answer (an order) does
 * not carry: the gateway's read cache keeps any older stock level out.
 */
export const STOCK_VERSIONS_HEADER = "x-orderly-stock-versions";

/** Tells the gateway (STOCK_VERSIONS_HEADER) the versions a call left items' stock at; lines that changed none (version 0) are left out. */
export function announceStock(context: CallContext, lines: readonly { sku: string; itemVersion?: number | bigint }[]): void {
  const changed = lines.filter((line) => Number(line.itemVersion ?? 0) > 0).map((line) => `${line.sku}=${line.itemVersion}`);
  if (changed.length > 0) context.responseHeaders[STOCK_VERSIONS_HEADER] = changed.join(",");
}

/** The versions STOCK_VERSIONS_HEADER names, by SKU (SKUs hold neither "=" nor ","); what does not parse is left out. */
export function stockVersionsOf(header: string | undefined): Map<string, number> {
  const versions = new Map<string, number>();
  for (const pair of header?.split(",") ?? []) {
    const [sku, version] = pair.split("=");
    if (sku && Number(version) > 0) versions.set(sku, Number(version));
  }
  return versions;
}
