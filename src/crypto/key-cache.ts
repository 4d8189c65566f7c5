/**
 * Plaintext data keys held in memory, bounded by age, by number of uses and by count.
 * A key leaves the cache only through `evict`, which zeroes it: plaintext keys are never
 * dropped for the garbage collector to find later.
 */

export interface CachedKey {
  plaintext: Uint8Array;
  wrapped: Uint8Array;
  keyArn: string;
  createdAt: number;
  uses: number;
}

export interface KeyBounds {
  maxUses: number;
  maxAgeMs: number;
}

export function isFresh(k: CachedKey, bounds: KeyBounds, now: number): boolean {
  return k.uses < bounds.maxUses && now - k.createdAt < bounds.maxAgeMs && k.createdAt <= now;
}

export function zero(k: CachedKey): void {
  k.plaintext.fill(0);
}

/** Unwrapped keys for decryption, least recently used first, keyed by the wrapped blob. */
export class UnwrappedKeyCache {
  private readonly entries = new Map<string, CachedKey>();

  constructor(private readonly bounds: KeyBounds, private readonly maxEntries: number) {}

  static id(wrapped: Uint8Array): string {
    return Buffer.from(wrapped.buffer, wrapped.byteOffset, wrapped.byteLength).toString('base64');
  }

  /** A fresh key counted as used, or undefined (a stale one is evicted on the way). */
  take(id: string, now: number): CachedKey | undefined {
    const k = this.entries.get(id);
    if (!k) return undefined;
    this.entries.delete(id);
    if (!isFresh(k, this.bounds, now)) {
      zero(k);
      return undefined;
    }
    this.entries.set(id, k); // most recently used goes last
    k.uses++;
    return k;
  }

  add(id: string, k: CachedKey): void {
    const old = this.entries.get(id);
    if (old && old !== k) zero(old);
    this.entries.delete(id);
    this.entries.set(id, k);
    while (this.entries.size > this.maxEntries) {
      const [oldestId, oldest] = this.entries.entries().next().value as [string, CachedKey];
      this.entries.delete(oldestId);
      zero(oldest);
    }
  }

  get size(): number {
    return this.entries.size;
  }

  clear(): void {
    for (const k of this.entries.values()) zero(k);
    this.entries.clear();
  }
}
