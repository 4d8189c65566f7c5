/**
 * Counts calls by kind, so tests and the benchmark can report calls per message.
 * Every sandbox server owns one; `snapshot()` is cheap and safe to call at any time.
 */
export class CallCounter {
  private readonly counts = new Map<string, number>();

  count(kind: string, n = 1): void {
    this.counts.set(kind, (this.counts.get(kind) ?? 0) + n);
  }

  get(kind: string): number {
    return this.counts.get(kind) ?? 0;
  }

  /** Sum of every kind whose name starts with `prefix` (all kinds when omitted). */
  total(prefix = ''): number {
    let sum = 0;
    for (const [k, v] of this.counts) if (k.startsWith(prefix)) sum += v;
    return sum;
  }

  snapshot(): Record<string, number> {
    return Object.fromEntries([...this.counts].sort(([a], [b]) => a.localeCompare(b)));
  }

  reset(): void {
    this.counts.clear();
  }
}
