import { describe, expect, test } from "vitest";
import { ReadCache, type FetchedRead } from "./read-cache.js";

describe("ReadCache", () => {
  test("serves a cached body until its TTL, and counts hits and misses", () => {
    let now = 0;
    const cache = new ReadCache(1000, { maxEntries: 100, clock: () => now });
    expect(cache.get("k", 0)?.body).toBeUndefined();
    cache.set("k", "ord_1", '{"version":"2"}', 2, cache.generation());
    expect(cache.get("k", 0)?.body).toBe('{"version":"2"}');
    now = 1000;
    expect(cache.get("k", 0)?.body).toBeUndefined();
    expect(cache.stats).toMatchObject({ hits: 1, misses: 2 });
    expect(cache.hitRatio()).toBeCloseTo(1 / 3);
  });

  test("a hit's age counts from when its fetch asked, not when its answer came (a slow fetch's answer is as old as the fetch took)", () => {
    let now = 0;
    const cache = new ReadCache(10_000, { clock: () => now });
    const requestedAt = cache.now();
    now = 2_500;
    cache.set("k", "ord_1", "v1", 1, cache.generation(), requestedAt);
    const hit = cache.get("k", 0)!;
    expect({ age: hit.ageSeconds, maxAge2: cache.get("k", 0, { maxAgeMs: 2_000, minFreshMs: 0 }) }).toEqual({ age: 2, maxAge2: undefined });
    // Its TTL counts from then as well: no hit is older than the TTL, and an answer slower than the TTL is not kept.
    now = 10_000;
    expect(cache.get("k", 0)).toBeUndefined();
    cache.set("slow", "ord_2", "v1", 1, cache.generation(), now - 10_000);
    expect(cache.get("slow", 0)).toBeUndefined();
  });

  test("never serves a version older than the read asks for", () => {
    const cache = new ReadCache(60_000);
    cache.set("k", "ord_1", "v2", 2, 0);
    expect(cache.get("k", 3)?.body).toBeUndefined();
    expect(cache.get("k", 2)?.body).toBe("v2");
    expect(cache.stats.bypasses).toBe(1);
  });

  test("an event drops every cached read of its aggregate, and a fill that raced it is not stored", () => {
    const cache = new ReadCache(60_000);
    cache.set("a", "ord_1", "v1", 1, 0);
    cache.set("b", "ord_1", "v1-timeline", 1, 0);
    const before = cache.generation();
    cache.invalidate("ord_1", 2);
    expect(cache.get("a", 0)?.body).toBeUndefined();
    expect(cache.get("b", 0)?.body).toBeUndefined();
    cache.set("a", "ord_1", "v1-stale", 1, before);
    expect(cache.get("a", 0)?.body).toBeUndefined();
    cache.set("a", "ord_1", "v1-late", 1, cache.generation());
    expect(cache.get("a", 0)?.body).toBeUndefined();
    cache.set("a", "ord_1", "v2", 2, cache.generation());
    expect(cache.get("a", 0)?.body).toBe("v2");
  });

  test("holds at most maxEntries, dropping the oldest", () => {
    const cache = new ReadCache(60_000, { maxEntries: 2 });
    for (const id of ["x", "y", "z"]) cache.set(id, id, id, 1, 0);
    expect(cache.get("x", 0)?.body).toBeUndefined();
    expect(cache.get("z", 0)?.body).toBe("z");
    expect(cache.stats.entries).toBe(2);
  });

  test("holds at most maxBytes of bodies (UTF-8), dropping the oldest; a body larger than all of it is not kept, nor drops the rest; what it counts follows every drop", () => {
    let now = 0;
    const cache = new ReadCache(1000, { maxEntries: 100, maxBytes: 10, clock: () => now });
    for (const [id, body] of [["x", "aaaa"], ["y", "bbbb"], ["z", "cccc"]] as const) cache.set(id, id, body, 1, cache.generation());
    // 12 bytes would pass 10: the oldest went.
    expect([cache.get("x", 0)?.body, cache.get("y", 0)?.body, cache.get("z", 0)?.body]).toEqual([undefined, "bbbb", "cccc"]);
    expect(cache.stats).toMatchObject({ entries: 2, bytes: 8 });
    cache.set("big", "big", "0123456789A", 1, cache.generation());
    expect([cache.get("big", 0)?.body, cache.get("z", 0)?.body]).toEqual([undefined, "cccc"]);
    expect(cache.stats).toMatchObject({ entries: 2, bytes: 8 });
    // Counted in UTF-8: "zéé" takes five bytes ("é" two), beside "bbbb"'s four.
    cache.set("z", "z", "zéé", 1, cache.generation());
    expect(cache.stats).toMatchObject({ entries: 2, bytes: 9 });
    cache.set("y", "y", "bb", 1, cache.generation());
    expect([cache.get("y", 0)?.body, cache.get("z", 0)?.body]).toEqual(["bb", "zéé"]);
    expect(cache.stats).toMatchObject({ entries: 2, bytes: 7 });
    cache.invalidate("y");
    cache.invalidate("z");
    expect(cache.stats).toMatchObject({ entries: 0, bytes: 0 });
    cache.set("y", "y", "bb", 1, cache.generation());
    cache.set("z", "z", "cc", 1, cache.generation());
    cache.set("y", "y", "bbb", 2, cache.generation());
    expect(cache.stats).toMatchObject({ entries: 2, bytes: 5 });
    cache.invalidate("z");
    expect(cache.stats).toMatchObject({ entries: 1, bytes: 3 });
    now = 2000;
    expect(cache.held()).toEqual({ entries: 0, bytes: 0 });
  });

  test("expired entries are dropped as new ones arrive, so the cache holds only live reads", () => {
    let now = 0;
    const cache = new ReadCache(100, { maxEntries: 1000, clock: () => now });
    for (let i = 0; i < 50; i++) cache.set(`k${i}`, `a${i}`, "x", 1, 0);
    now = 200;
    cache.set("fresh", "b", "y", 1, 0);
    expect(cache.stats.entries).toBe(1);
  });

  test("a fetch in flight is shared with reads of the same key until it settles, unless the aggregate changed since it started", async () => {
    const cache = new ReadCache(60_000);
    expect(cache.inFlight("k", "ord_1")).toBeUndefined();
    let answer!: (read: FetchedRead) => void;
    const first = cache.share("k", cache.generation(), () => new Promise((resolve) => (answer = resolve)));
    expect(cache.inFlight("k", "ord_1")).toBe(first);
    expect(cache.inFlight("other", "ord_2")).toBeUndefined();
    answer({ body: "v1", status: 200, version: 1 });
    expect(await first).toEqual({ body: "v1", status: 200, version: 1 });
    expect(cache.inFlight("k", "ord_1")).toBeUndefined();

    // A failure is every waiter's answer, and ends the fetch too.
    const failing = cache.share("k", cache.generation(), () => Promise.reject(new Error("ORDER_NOT_FOUND")));
    await expect(cache.inFlight("k", "ord_1")).rejects.toThrow("ORDER_NOT_FOUND");
    await expect(failing).rejects.toThrow("ORDER_NOT_FOUND");
    expect(cache.inFlight("k", "ord_1")).toBeUndefined();

    const pending = cache.share("k", cache.generation(), () => new Promise(() => {}));
    expect(cache.inFlight("k", "ord_1")).toBe(pending);
    cache.invalidate("ord_1", 2);
    // Its answer may predate the change a reader saw: not shared.
    expect(cache.inFlight("k", "ord_1")).toBeUndefined();
  });

  test("a lookup that missed and waits for the fetch in flight is counted as shared, not as a miss", () => {
    const cache = new ReadCache(60_000);
    expect([cache.get("k", 0)?.body, cache.inFlight("k", "ord_1")]).toEqual([undefined, undefined]);
    void cache.share("k", cache.generation(), () => new Promise(() => {}));
    expect(cache.get("k", 0)?.body).toBeUndefined();
    expect(cache.inFlight("k", "ord_1")).toBeDefined();
    cache.countShared();
    expect(cache.stats).toMatchObject({ hits: 0, misses: 1, shared: 1 });
    expect(cache.hitRatio()).toBe(0);
  });

  test("a fetch answered with an older version than the entry cached meanwhile does not replace it", () => {
    const cache = new ReadCache(60_000);
    const generation = cache.generation();
    cache.set("k", "ord_1", "v6", 6, generation);
    cache.set("k", "ord_1", "v5", 5, generation);
    expect(cache.get("k", 0)?.body).toBe("v6");
    cache.set("k", "ord_1", "v7", 7, generation);
    expect(cache.get("k", 0)?.body).toBe("v7");
  });

  test("a hit in the last fifth of the TTL asks for a refresh, once until it lands", async () => {
    let now = 0;
    const cache = new ReadCache(1000, { maxEntries: 100, clock: () => now });
    cache.set("k", "ord_1", "v1", 1, 0);
    now = 799;
    expect(cache.get("k", 0)?.refreshDue).toBe(false);
    now = 800;
    expect(cache.get("k", 0)?.refreshDue).toBe(true);
    let answer!: (read: FetchedRead) => void;
    const refreshing = cache.share("k", cache.generation(), () => new Promise((resolve) => (answer = resolve)));
    expect(cache.get("k", 0)?.refreshDue).toBe(false);
    cache.set("k", "ord_1", "v1-fresh", 1, 0);
    answer({ body: "v1-fresh", status: 200, version: 1 });
    await refreshing;
    expect(cache.get("k", 0)?.refreshDue).toBe(false);
    expect(cache.get("k", 0)?.body).toBe("v1-fresh");
    now = 1799;
    expect(cache.get("k", 0)?.body).toBe("v1-fresh");
    expect(cache.get("missing", 0)?.refreshDue ?? false).toBe(false);
  });

  test("suspended, every entry lives at most the outage TTL; resumed, it starts empty with the full TTL, and a fetch begun before does not land", () => {
    let now = 0;
    const cache = new ReadCache(5000, { clock: () => now, outageTtlMs: 1000 });
    cache.set("k", "ord_1", "v1", 1, cache.generation());
    const before = cache.generation();
    now = 100;
    cache.suspend();
    expect([cache.isLive, cache.get("k", 0)?.body]).toEqual([false, "v1"]);
    // Stored while suspended: the outage TTL too.
    cache.set("j", "ord_2", "w1", 1, cache.generation());
    now = 1099;
    expect([cache.get("k", 0)?.body, cache.get("j", 0)?.body]).toEqual(["v1", "w1"]);
    now = 1100;
    expect(cache.get("k", 0)?.body).toBeUndefined();
    cache.resume();
    expect([cache.isLive, cache.get("j", 0)?.body, cache.stats.entries]).toEqual([true, undefined, 0]);
    // Fetched before the resume: its answer may predate an event missed meanwhile.
    cache.set("k", "ord_1", "v1", 1, before);
    expect(cache.get("k", 0)?.body).toBeUndefined();
    cache.set("k", "ord_1", "v3", 3, cache.generation());
    now = 6099;
    expect(cache.get("k", 0)?.body).toBe("v3");
  });

  test("the version an event announced still holds after a suspension: an older answer of the read model is not stored", () => {
    const cache = new ReadCache(60_000);
    cache.invalidate("ord_1", 5);
    cache.suspend();
    cache.resume();
    cache.set("k", "ord_1", "v4", 4, cache.generation());
    expect(cache.get("k", 0)?.body).toBeUndefined();
    cache.set("k", "ord_1", "v5", 5, cache.generation());
    expect(cache.get("k", 0)?.body).toBe("v5");
  });

  test("a fill begun before its aggregate was forgotten from the bookkeeping is not stored", () => {
    const cache = new ReadCache(60_000, { maxEntries: 2 });
    const token = cache.generation();
    cache.invalidate("ord_1", 1);
    // Two more aggregates push ord_1's bookkeeping out.
    cache.invalidate("ord_2", 1);
    cache.invalidate("ord_3", 1);
    cache.set("k", "ord_1", "stale", 1, token);
    expect(cache.get("k", 0)?.body).toBeUndefined();
  });

  test("changes of other aggregates do not stop a fill from landing, even once the bookkeeping is full", () => {
    const cache = new ReadCache(60_000, { maxEntries: 2 });
    for (const id of ["a", "b", "c"]) cache.invalidate(id);
    const token = cache.generation();
    cache.invalidate("d");
    cache.set("k", "ord_9", "x", 1, token);
    expect(cache.get("k", 0)?.body).toBe("x");
  });
});
