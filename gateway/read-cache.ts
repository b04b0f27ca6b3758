/** A cached HTTP response body of one resource read. */
interface Entry {
  body: string;
  /** When the fetch that got it asked (the cache's clock): its age, and its TTL, count from then. */
  stored: number;
  /** The body's size in UTF-8 (what it takes on the wire; about what it takes in memory). */
  bytes: number;
  version: number;
  expires: number;
  /** From then on a hit asks for a fresh copy in the background (see refreshDue). */
  refreshAt: number;
  aggregateId: string;
}

/** What a hit answers with, worked out from one reading of the clock: the body, its age, and whether to refresh it. */
export interface CacheHit {
  readonly body: string;
  /** Whole seconds since its fetch asked: the `Age` it is answered with (RFC 9111 §5.1). */
  readonly ageSeconds: number;
  /** It is near expiry and no fetch of it is in flight: the hit fetches a fresh copy in the background. */
  readonly refreshDue: boolean;
}

/**
 * What a reader accepts of a cached answer (a request's Cache-Control, RFC 9111 §5.2.1): how old it may be (`max-age`) and
 * how long it must stay fresh yet (`min-fresh`), in ms.
 */
export interface CacheDemand {
  maxAgeMs: number;
  minFreshMs: number;
}

/** A reader that accepts any answer the cache holds. */
export const ANY_AGE: CacheDemand = Object.freeze({ maxAgeMs: Infinity, minFreshMs: 0 });

/** What the cached bodies may take unless told otherwise (see ReadCache's maxBytes). */
export const DEFAULT_MAX_BYTES = 64 * 1024 * 1024;

/** The last part of an entry's TTL in which a hit refreshes it. */
const REFRESH_AHEAD_SHARE = 0.2;

/** What the cache has done. */
export interface ReadCacheStats {
  hits: number;
  /** Lookups that missed and fetched (or whose fetch failed to start): each cost the query side a call. */
  misses: number;
  /** Lookups that missed and waited for the fetch of the same key in flight (no call of their own). */
  shared: number;
  bypasses: number;
  invalidations: number;
  entries: number;
  /** What the entries' bodies take, in UTF-8 bytes. */
  bytes: number;
}

/** What a read of the service answered: the HTTP body and status, and the resource's version (0 when it has none). */
export interface FetchedRead {
  body: string;
  status: number;
  version: number;
}

/** A fetch of one key in flight: the generation it started at, and its answer. */
interface Fill {
  generation: number;
  answer: Promise<FetchedRead>;
}

/**
 * The gateway's read cache: response bodies of single-resource reads (an
 * order, an item's stock), kept for a short TTL, dropped as soon as an event
 * says the resource changed, and never used for a read that asks for a newer
 * version (minVersion) than the one cached. Bounded: the oldest entries go
 * first beyond `maxEntries`, or beyond `maxBytes` of bodies (an order of a
 * hundred lines takes ~15 KB: entries alone would let 50,000 of them hold
 * ~750 MB).
 *
 * One fetch per key at a time: reads that miss while the same key is being
 * fetched (and nothing changed since it started) wait for that fetch instead
 * of asking the service again — when a hot entry expires, its readers make
 * one call, not one each. And a hit in the last fifth of an entry's TTL asks
 * for a fresh copy in the background, so an entry read all the time is
 * replaced before it expires and its readers never wait.
 *
 * Its TTL is meant for while the events that invalidate it arrive. While
 * the gateway knows it cannot hear them (`suspend`: its NATS connection
 * dropped, or is not up yet) every entry lives at most `outageTtlMs`, so an
 * outage neither leaves entries behind for long nor sends every cached read
 * to the service; `resume` (subscribed again) starts it empty, as what it
 * held may predate an event it missed. The versions announced (by events,
 * and by writes through this gateway, which say what they changed) outlast
 * that, so what a client wrote through this gateway is not served older; the
 * TTL still bounds what it cannot know it missed of others' writes (an event
 * lost before a dead connection is noticed, or one the read model applies
 * only after the gateway is back).
 */
export class ReadCache {
  private readonly entries = new Map<string, Entry>();
  private readonly keysByAggregate = new Map<string, Set<string>>();
  /** Per aggregate: the change count at its last invalidation, and the newest version an event announced. */
  private readonly seen = new Map<string, { generation: number; version: number }>();
  private readonly filling = new Map<string, Fill>();
  /** Invalidations and clears so far: a point in the cache's history (see generation). */
  private changes = 0;
  /**
   * Every aggregate counts as changed at least this late: raised by a clear
   * (so no fill begun before it is stored or shared), and to the last change
   * of an aggregate forgotten from `seen` (so none of it begun before that is).
   */
  private floor = 0;
  /** Whether the invalidating events are heard (see suspend). */
  private live = true;
  readonly stats: ReadCacheStats = { hits: 0, misses: 0, shared: 0, bypasses: 0, invalidations: 0, entries: 0, bytes: 0 };

  private readonly maxEntries: number;
  private readonly maxBytes: number;
  private readonly clock: () => number;
  /** How long an entry lives while suspended. */
  private readonly outageTtlMs: number;

  constructor(
    private readonly ttlMs: number,
    options: {
      /** Entries (and aggregates' bookkeeping) kept at most; the oldest go first. */
      maxEntries?: number;
      /** What the entries' bodies may take in all (see ReadCacheStats.bytes); the oldest go first. */
      maxBytes?: number;
      clock?: () => number;
      /** How long an entry lives while suspended (default a second; never more than the TTL). */
      outageTtlMs?: number;
    } = {},
  ) {
    this.maxEntries = options.maxEntries ?? 50_000;
    this.maxBytes = options.maxBytes ?? DEFAULT_MAX_BYTES;
    // Monotonic: a step of the wall clock neither keeps entries past their TTL nor expires them early.
    this.clock = options.clock ?? performance.now.bind(performance);
    this.outageTtlMs = Math.min(ttlMs, options.outageTtlMs ?? 1000);
  }

  /**
   * The cached read for `key`, unless missing, expired, older than `minVersion` (a bypass), or not what the reader's
   * `demand` accepts (a miss: it is fetched for the reader, and replaces the entry for everyone).
   */
  get(key: string, minVersion: number, demand: CacheDemand = ANY_AGE): CacheHit | undefined {
    const entry = this.entries.get(key);
    const now = this.clock();
    if (entry === undefined || entry.expires <= now) {
      if (entry) this.delete(key, entry);
      this.stats.misses++;
      return undefined;
    }
    if (entry.version < minVersion) {
      this.stats.bypasses++;
      return undefined;
    }
    if (now - entry.stored > demand.maxAgeMs || entry.expires - now < demand.minFreshMs) {
      this.stats.misses++;
      return undefined;
    }
    this.stats.hits++;
    return { body: entry.body, ageSeconds: Math.floor((now - entry.stored) / 1000), refreshDue: entry.refreshAt <= now && !this.filling.has(key) };
  }

  /**
   * A token to pass to `set` (and `share`), taken before fetching: the
   * point in the cache's history the fetch began at, so a fill that raced a
   * change of its aggregate (or a clear) is not stored, while changes of
   * other aggregates do not matter.
   */
  generation(): number {
    return this.changes;
  }

  /** The point of the last change of an aggregate (its invalidation, a clear, or the floor). */
  private changedAt(aggregateId: string): number {
    return Math.max(this.seen.get(aggregateId)?.generation ?? 0, this.floor);
  }

  /**
   * Whether a body of an aggregate at `version` is older than the newest
   * version announced of it (see invalidate): such a body is neither stored
   * nor passed on to a reader that joined its fetch.
   */
  predatesAnnounced(aggregateId: string, version: number): boolean {
    return version < (this.seen.get(aggregateId)?.version ?? 0);
  }

  /** The cache's clock now (ms): what a fetch notes as its `requestedAt` before it asks. */
  now(): number {
    return this.clock();
  }

  /**
   * Stores a fetched body, unless the aggregate changed since `generation` or the body is older than an announced version.
   * Its age, and its TTL, count from `requestedAt`, when its fetch asked (RFC 9111 §4.2.3: the time the answer took is age too).
   */
  set(key: string, aggregateId: string, body: string, version: number, generation: number, requestedAt?: number): void {
    if (this.changedAt(aggregateId) > generation || this.predatesAnnounced(aggregateId, version)) return;
    const previous = this.entries.get(key);
    // A fetch answered with an older version than one already cached (a refresh overtaken by a min_version read): keep the newer.
    if (previous && previous.version > version && previous.expires > this.clock()) return;
    if (previous) this.delete(key, previous);
    const bytes = Buffer.byteLength(body);
    // A body larger than the whole budget is not kept (rather than dropping every other entry for it).
    if (bytes > this.maxBytes) return;
    const now = this.dropExpired();
    const ttl = this.live ? this.ttlMs : this.outageTtlMs;
    // Its TTL counts from then too, so no hit is older than the TTL; an answer that took longer is not kept.
    const stored = Math.min(requestedAt ?? now, now);
    if (stored + ttl <= now) return;
    this.entries.set(key, { body, bytes, version, stored, expires: stored + ttl, refreshAt: stored + ttl * (1 - REFRESH_AHEAD_SHARE), aggregateId });
    this.stats.bytes += bytes;
    let keys = this.keysByAggregate.get(aggregateId);
    if (!keys) this.keysByAggregate.set(aggregateId, (keys = new Set()));
    keys.add(key);
    // The oldest go first.
    while (this.entries.size > this.maxEntries || this.stats.bytes > this.maxBytes) {
      const [oldestKey, oldest] = this.entries.entries().next().value as [string, Entry];
      this.delete(oldestKey, oldest);
    }
    this.stats.entries = this.entries.size;
  }

  /** What it holds now (entries, and their bodies' bytes), its expired entries dropped first so an idle cache does not count them. */
  held(): { entries: number; bytes: number } {
    this.dropExpired();
    return { entries: this.stats.entries, bytes: this.stats.bytes };
  }

  /**
   * Drops the entries that have expired, and answers the time it went by. Entries expire about in insertion order (one TTL
   * from when each one's fetch asked; a suspension shortens those before it): the expired ones are at the head, but for one
   * behind an entry whose fetch was quicker, which waits for a later drop (a lookup drops it itself).
   */
  dropExpired(): number {
    const now = this.clock();
    for (const [oldestKey, oldest] of this.entries) {
      if (oldest.expires > now) break;
      this.delete(oldestKey, oldest);
    }
    return now;
  }

  /**
   * The answer of a fetch of `key` already in flight, to wait for instead of
   * fetching again; undefined when there is none, or when the aggregate
   * changed since it started (its answer may predate a write the caller saw).
   */
  inFlight(key: string, aggregateId: string): Promise<FetchedRead> | undefined {
    const fill = this.filling.get(key);
    return fill !== undefined && fill.generation >= this.changedAt(aggregateId) ? fill.answer : undefined;
  }

  /** Counts a lookup `get` counted as a miss as shared instead: it waits for the fetch in flight (inFlight), at no call of its own. */
  countShared(): void {
    this.stats.misses--;
    this.stats.shared++;
  }

  /** Counts a read the client asked to be answered fresh (Cache-Control: no-cache): a bypass, as one for a newer minVersion; it made no lookup. */
  countBypass(): void {
    this.stats.bypasses++;
  }

  /** Runs `fetch` as the fetch of `key` in flight (see inFlight), started at `generation`, until it settles. */
  share(key: string, generation: number, fetch: () => Promise<FetchedRead>): Promise<FetchedRead> {
    const fill: Fill = { generation, answer: fetch() };
    this.filling.set(key, fill);
    const done = () => {
      if (this.filling.get(key) === fill) this.filling.delete(key);
    };
    fill.answer.then(done, done);
    return fill.answer;
  }

  /**
   * Drops every cached read of an aggregate (an event or a write through this gateway changed it). A version (what an event
   * or a write answered) is announced: older answers are not stored from then on.
   */
  invalidate(aggregateId: string, version = 0): void {
    const seen = this.seen.get(aggregateId) ?? { generation: 0, version: 0 };
    seen.generation = ++this.changes;
    seen.version = Math.max(seen.version, version);
    // Keep this bookkeeping bounded too: an aggregate forgotten loses its announced version (fills begun before are still refused).
    this.seen.delete(aggregateId);
    this.seen.set(aggregateId, seen);
    if (this.seen.size > this.maxEntries) {
      const [forgotten, { generation }] = this.seen.entries().next().value as [string, { generation: number }];
      this.seen.delete(forgotten);
      this.floor = Math.max(this.floor, generation);
    }
    const keys = this.keysByAggregate.get(aggregateId);
    if (keys) for (const key of [...keys]) this.delete(key, this.entries.get(key));
    this.stats.invalidations++;
  }

  /** Its invalidations may be missed from now on: every entry, and every one stored until `resume`, lives at most `outageTtlMs`. */
  suspend(): void {
    if (!this.live) return;
    this.live = false;
    const latest = this.clock() + this.outageTtlMs;
    const refreshBy = latest - this.outageTtlMs * REFRESH_AHEAD_SHARE;
    for (const entry of this.entries.values()) {
      entry.expires = Math.min(entry.expires, latest);
      entry.refreshAt = Math.min(entry.refreshAt, refreshBy);
    }
  }

  /** Its invalidations arrive again: it starts empty (what it held may predate an event it missed), with the full TTL. */
  resume(): void {
    this.clear();
    this.live = true;
  }

  /** Whether it hears its invalidations (entries get the full TTL). */
  get isLive(): boolean {
    return this.live;
  }

  /** hits / (hits + misses + shared + bypasses), or 0 before any lookup. */
  hitRatio(): number {
    const lookups = this.stats.hits + this.stats.misses + this.stats.shared + this.stats.bypasses;
    return lookups === 0 ? 0 : this.stats.hits / lookups;
  }

  /** Drops every entry; fetches in flight are not stored, nor shared with later reads. The versions events announced are kept. */
  private clear(): void {
    this.entries.clear();
    this.keysByAggregate.clear();
    this.floor = ++this.changes;
    this.stats.entries = 0;
    this.stats.bytes = 0;
  }

  private delete(key: string, entry: Entry | undefined): void {
    const deleted = this.entries.delete(key);
    if (entry) {
      if (deleted) this.stats.bytes -= entry.bytes;
      const keys = this.keysByAggregate.get(entry.aggregateId);
      keys?.delete(key);
      if (keys?.size === 0) this.keysByAggregate.delete(entry.aggregateId);
    }
    this.stats.entries = this.entries.size;
  }
}
