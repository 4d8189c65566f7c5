/**
 * When to read a sent message's Paubox receipt next (contract §2, §4 `POLL_INTERVAL_MS`,
 * `OPEN_TRACKING_HOURS`). Pure: the caller stores the returned time.
 *
 * - Not final yet: every `pollIntervalMs` for the first {@link FAST_POLLS} polls (most
 *   messages are delivered within seconds), then doubling, capped at 30 minutes (soft
 *   bounces and portal deliveries take hours). After `maxTrackingMs` (7 days, well past
 *   the 72 h soft-bounce give-up) polling stops.
 * - Final: stop, unless opens can still be caught — single recipient, no open yet, and
 *   within `openTrackingHours` after `finalAt`. Then the reads decay: 1 min after finalAt,
 *   then 2, 4, 8, 16, 32 min apart, then hourly until the window closes. The schedule is
 *   anchored on `finalAt`, so it needs no counter and survives restarts.
 *
 * Worst case for open tracking with the default 24 h: {@link openTrackingPollCount}(24)
 * = 28 receipt reads per single-recipient message that is never opened.
 */

export const FAST_POLLS = 10;
export const SLOW_POLL_CAP_MS = 30 * 60_000;
export const MAX_TRACKING_MS = 7 * 24 * 3600_000;
export const OPEN_FIRST_DELAY_MS = 60_000;
export const OPEN_MAX_DELAY_MS = 60 * 60_000;

export interface PollState {
  /** receipt reads made so far */
  polls: number;
  /** epoch ms Paubox accepted the message */
  sentAt: number;
  /** epoch ms every recipient became final; absent while not final */
  finalAt?: number | null;
  now: number;
  pollIntervalMs: number;
  openTrackingHours: number;
  singleRecipient: boolean;
  opened: boolean;
  /** stop polling a message that never becomes final after this long (default 7 days) */
  maxTrackingMs?: number;
}

/** Epoch ms of the next receipt read, or null to stop. */
export function nextPoll(s: PollState): number | null {
  if (s.finalAt == null) return nextDeliveryPoll(s);
  if (!tracksOpens(s)) return null;
  const windowEnd = s.finalAt + s.openTrackingHours * 3600_000;
  const next = nextOpenPollAt(s.finalAt, s.now);
  return next <= windowEnd ? next : null;
}

function nextDeliveryPoll(s: PollState): number | null {
  if (s.now - s.sentAt >= (s.maxTrackingMs ?? MAX_TRACKING_MS)) return null;
  const interval = Math.max(1, s.pollIntervalMs);
  if (s.polls < FAST_POLLS) return s.now + interval;
  const doublings = Math.min(s.polls - FAST_POLLS + 1, 30); // 2^30 × anything ≥ the cap
  return s.now + Math.min(interval * 2 ** doublings, Math.max(interval, SLOW_POLL_CAP_MS));
}

function tracksOpens(s: PollState): boolean {
  return s.openTrackingHours > 0 && s.singleRecipient && !s.opened;
}

/** Offsets from finalAt: 1, 3, 7, 15, 31, 63 min, then every 60 min. */
function openOffset(k: number): number {
  let offset = 0;
  for (let i = 0; i <= k; i++) offset += Math.min(OPEN_FIRST_DELAY_MS * 2 ** i, OPEN_MAX_DELAY_MS);
  return offset;
}

/** The first point of the open schedule strictly after `now`. */
function nextOpenPollAt(finalAt: number, now: number): number {
  const elapsed = now - finalAt;
  // Jump over the decaying part in O(1): past it, points are hourly.
  const decaySteps = Math.ceil(Math.log2(OPEN_MAX_DELAY_MS / OPEN_FIRST_DELAY_MS));
  const decayEnd = openOffset(decaySteps - 1);
  if (elapsed >= decayEnd) {
    const hours = Math.floor((elapsed - decayEnd) / OPEN_MAX_DELAY_MS) + 1;
    return finalAt + decayEnd + hours * OPEN_MAX_DELAY_MS;
  }
  let k = 0;
  while (openOffset(k) <= elapsed) k++;
  return finalAt + openOffset(k);
}

/** Receipt reads a never-opened single-recipient message costs after it became final. */
export function openTrackingPollCount(openTrackingHours: number): number {
  const windowMs = openTrackingHours * 3600_000;
  let count = 0;
  while (windowMs > 0 && openOffset(count) <= windowMs) count++;
  return count;
}
