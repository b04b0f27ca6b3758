import { existsSync } from "node:fs";
import { expect, test } from "vitest";
import { launchBrowser } from "../helpers/browser.js";
import { startSystem } from "../helpers/system.js";

test("the status page shows every process healthy with its traffic, then the killed inventory as down and its breaker open", async () => {
  await using system = await startSystem({ INVENTORY_BREAKER_FAILURES: "2", INVENTORY_BREAKER_HALF_OPEN_MS: "60000" });
  await system.api("POST", "/v1/inventory/STATUS-1:restock", { body: { quantity: 50, name: "Status mug", unitPriceMinor: "900", currencyCode: "USD" } });
  await using browser = await launchBrowser();
  const page = await browser.newPage();
  await page.goto(`${system.adminUrl}/status`);
  await expect.poll(() => page.locator("section[data-process]").count(), { timeout: 15_000 }).toBe(4);
  // Traffic while the page watches, so its windowed rates show it.
  for (let i = 0; i < 10; i++) {
    expect((await system.api("POST", "/v1/orders", { body: { customerId: "sam", items: [{ sku: "STATUS-1", quantity: 1 }] } })).status).toBe(200);
    expect((await system.api("GET", "/v1/inventory/STATUS-1")).status).toBe(200);
  }

  const card = (name: string) => page.locator(`section[data-process="${name}"]`);
  await expect.poll(() => page.locator("#overall").textContent(), { timeout: 15_000 }).toBe("all 4 processes healthy");
  for (const name of ["gateway", "order", "inventory", "query"]) {
    await expect.poll(() => card(name).getAttribute("data-healthy"), { timeout: 15_000 }).toBe("true");
  }
  // Rates and p99 per route (the gateway) and per RPC (the services); the outbox and consumers of each.
  const ordersRow = card("gateway").locator("tr", { hasText: "POST /v1/orders" });
  // The row's req/s cell (the second) is above zero once a report covers the traffic.
  await expect.poll(async () => Number(await ordersRow.locator("td").nth(1).textContent()), { timeout: 15_000 }).toBeGreaterThan(0);
  // While the page polls, each card's figures cover about the last 30 s (since the report at least 30 s old, or the first).
  const windowShown = async () => Number((await card("gateway").locator("h3", { hasText: "requests" }).textContent())?.match(/^requests \(last (\d+) s\)$/)?.[1] ?? 0);
  await expect.poll(windowShown, { timeout: 15_000 }).toBeGreaterThan(0);
  expect(await windowShown()).toBeLessThanOrEqual(60);
  expect(await card("order").textContent()).toContain("OrderService/CreateOrder");
  expect(await card("order").textContent()).toMatch(/inventory\s*closed/);
  expect(await card("query").textContent()).toContain("query-orders");
  expect(await card("order").locator("h3", { hasText: "outbox" }).count()).toBe(1);
  const healthyShot = await browser.screenshot(page, "status-page-healthy");
  expect(existsSync(healthyShot)).toBe(true);

  // Kill inventory: the page shows it down, and the order service's breaker open after a few orders.
  await system.inventory.stop("SIGKILL");
  for (let i = 0; i < 4; i++) {
    await system.api("POST", "/v1/orders", { body: { customerId: "sam", items: [{ sku: "STATUS-1", quantity: 1 }] }, headers: { "x-request-timeout": "1500" } });
  }
  await expect.poll(() => card("inventory").getAttribute("data-healthy"), { timeout: 15_000 }).toBe("false");
  // The order service still serves, with its breaker for the inventory open: degraded, and the headline says why.
  await expect.poll(() => page.locator("#overall").textContent(), { timeout: 15_000 }).toBe("down: inventory · degraded: order (breaker for inventory open)");
  // Why, as an operator would put it: nothing listens on its admin port any more.
  expect(await card("inventory").locator(".error").textContent()).toBe("unreachable: connection refused");
  // (Polled: the page redraws every 2 s, and the breaker is half-open while it probes.)
  await expect.poll(() => card("order").textContent(), { timeout: 15_000 }).toMatch(/inventory\s*open/);
  await expect.poll(() => card("order").getAttribute("class"), { timeout: 15_000 }).toBe("card degraded");
  const downShot = await browser.screenshot(page, "status-page-inventory-down");
  expect(existsSync(downShot)).toBe(true);

  // With NATS gone too, the processes still answering are not down, and still serve (the outbox holds their events):
  // degraded, and the headline says which check fails.
  await system.nats.kill();
  await expect.poll(() => page.locator("#overall").textContent(), { timeout: 15_000 }).toMatch(/^down: inventory · degraded: .*\border \(nats, breaker for inventory open\)/);
});
