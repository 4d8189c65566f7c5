/**
 * Salesforce record ids: 3-character key prefix, 2-character instance, 1 reserved
 * character and a 9-character base-62 counter (15 characters, case-sensitive), plus the
 * 3-character checksum suffix that makes the 18-character form case-insensitive.
 */

const BASE62 = '0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz';
const SUFFIX = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ012345';
/** The sandbox's "instance" characters (a real org's pod shows up here). */
const INSTANCE = '8c0';

/** The 3 suffix characters: per 5-character chunk, one bit per upper-case letter. */
export function checksum(id15: string): string {
  let out = '';
  for (let chunk = 0; chunk < 3; chunk++) {
    let bits = 0;
    for (let i = 0; i < 5; i++) {
      const c = id15.charCodeAt(chunk * 5 + i);
      if (c >= 65 && c <= 90) bits |= 1 << i;
    }
    out += SUFFIX[bits];
  }
  return out;
}

export function to18(id15: string): string {
  return id15 + checksum(id15);
}

/** An id in 15- or 18-character form, as 18 characters; undefined when it is not an id. */
export function normalizeId(id: unknown): string | undefined {
  if (typeof id !== 'string' || !/^[0-9A-Za-z]{15}(?:[A-Z0-5]{3})?$/i.test(id)) return undefined;
  const id15 = id.slice(0, 15);
  const full = to18(id15);
  // Salesforce treats the suffix case-insensitively, but it must still match the body.
  if (id.length === 18 && id.slice(15).toUpperCase() !== full.slice(15)) return undefined;
  return full;
}

export function formatId(keyPrefix: string, n: number): string {
  let digits = '';
  for (let v = n; v > 0; v = Math.floor(v / 62)) digits = BASE62[v % 62] + digits;
  return to18(keyPrefix + INSTANCE + digits.padStart(9, '0'));
}

/** Hands out increasing ids per key prefix. */
export class IdAllocator {
  private readonly next = new Map<string, number>();

  allocate(keyPrefix: string): string {
    // Start well into the range so ids mix digits and letters of both cases, as real ones do.
    const n = this.next.get(keyPrefix) ?? 1_000_000_007;
    this.next.set(keyPrefix, n + 1);
    return formatId(keyPrefix, n);
  }
}
