/** How many requests a client may make: a sustained rate and a burst. */
export interface RateLimit {
  /** Requests per second, sustained. */
  perSecond: number;
  /** Requests allowed at once after a quiet spell (the bucket's size). */
  burst: number;
}

interface Bucket {
  tokens: number;
  at: number;
}

/** The most clients tracked; beyond it, clients whose buckets have refilled are forgotten. */
const MAX_CLIENTS = 100_000;

/**
 * A token bucket per client (the principal's subject, or the address of an
 * unauthenticated caller): `burst` requests at once, then `perSecond`. Each
 * request takes a token; without one it is refused with the seconds until
 * the next token.
 */
export class RateLimiter {
  private readonly buckets = new Map<string, Bucket>();

  constructor(
    private readonly limit: RateLimit,
    private readonly clock: () => number = () => performance.now(),
  ) {}

  /** Takes a token for `client`: 0 when allowed, else the seconds to wait (for Retry-After). */
  take(client: string): number {
    const now = this.clock();
    let bucket = this.buckets.get(client);
    if (bucket === undefined) {
      if (this.buckets.size >= MAX_CLIENTS) this.forgetIdle(now);
      bucket = { tokens: this.limit.burst, at: now };
      this.buckets.set(client, bucket);
    } else {
      bucket.tokens = this.tokensAt(bucket, now);
      bucket.at = now;
    }
    if (bucket.tokens >= 1) {
      bucket.tokens -= 1;
      return 0;
    }
    return this.secondsUntilOne(bucket.tokens);
  }

  /** The seconds `client` would wait for its next token (0 when it has one), taking nothing. */
  wait(client: string): number {
    const bucket = this.buckets.get(client);
    if (bucket === undefined) return 0;
    const tokens = this.tokensAt(bucket, this.clock());
    return tokens >= 1 ? 0 : this.secondsUntilOne(tokens);
  }

  /** The bucket's tokens at `now`, refilled since it was last counted, at most the burst. */
  private tokensAt(bucket: Bucket, now: number): number {
    return Math.min(this.limit.burst, bucket.tokens + ((now - bucket.at) / 1000) * this.limit.perSecond);
  }

  /** Whole seconds (at least 1) until `tokens` refills to one. */
  private secondsUntilOne(tokens: number): number {
    return Math.max(1, Math.ceil((1 - tokens) / this.limit.perSecond));
  }

  private forgetIdle(now: number): void {
    const refillMs = (this.limit.burst / this.limit.perSecond) * 1000;
    for (const [client, bucket] of this.buckets) if (now - bucket.at >= refillMs) this.buckets.delete(client);
    if (this.buckets.size >= MAX_CLIENTS) this.buckets.clear();
  }
}
