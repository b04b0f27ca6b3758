/**
 * Retry throttling as gRFC A6 defines it: a token bucket that every failed
 * attempt drains by one and every success refills by `tokenRatio`; retries
 * are allowed only while more than half the tokens remain, so a dependency
 * that fails for everyone is not hit with a multiple of the load.
 */
export class RetryBudget {
  private tokens: number;

  constructor(
    private readonly maxTokens = 10,
    private readonly tokenRatio = 0.1,
  ) {
    this.tokens = maxTokens;
  }

  /** Records a failed attempt. */
  recordFailure(): void {
    this.tokens = Math.max(0, this.tokens - 1);
  }

  /** Records a successful attempt. */
  recordSuccess(): void {
    this.tokens = Math.min(this.maxTokens, this.tokens + this.tokenRatio);
  }

  /** Whether a retry may be sent now. */
  allowsRetry(): boolean {
    return this.tokens > this.maxTokens / 2;
  }
}
