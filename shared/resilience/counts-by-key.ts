/**
 * How many of something each key (a caller, say) has in progress: a count
 * per key that forgets the key once its count is back to zero, so it holds
 * only the keys busy now however many come and go.
 */
export class CountsByKey {
  private readonly counts = new Map<string, number>();

  /** The key's count (0 when it has none). */
  of(key: string): number {
    return this.counts.get(key) ?? 0;
  }

  /** One more for the key. */
  add(key: string): void {
    this.counts.set(key, this.of(key) + 1);
  }

  /** One fewer for the key (forgotten at zero). */
  remove(key: string): void {
    const left = this.of(key) - 1;
    if (left <= 0) this.counts.delete(key);
    else this.counts.set(key, left);
  }
}
