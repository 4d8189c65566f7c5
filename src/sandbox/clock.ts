/**
 * The sandbox's notion of time. It follows the wall clock plus an offset that tests can
 * push forward (`advance`), so "72 hours later" or "an hour after delivery" take no real
 * time. Servers read `now()` instead of `Date.now()` wherever behaviour depends on time
 * (receipt progression, retention, session expiry).
 */
export class SandboxClock {
  private offsetMs = 0;

  now(): number {
    return Date.now() + this.offsetMs;
  }

  date(): Date {
    return new Date(this.now());
  }

  advance(ms: number): void {
    if (!(ms >= 0)) throw new RangeError('advance takes a non-negative number of ms');
    this.offsetMs += ms;
  }
}
