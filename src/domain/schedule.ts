/**
 * When to read a sent message's Paubox receipt next (contract §2, §4 `POLL_INTERVAL_MS`,
 * `OPEN_TRACKING_HOURS`). Pure: the caller stores the returned time.
 *
 * - Not final yet: every `pollIntervalMs` for the first {@link FAST_POLLS} polls (most
 *   messages are delivered within seconds), then doubling, capped at 30 minutes (soft
 *   bounces and portal deliveries take hours). After `maxTrackingMs` (7 days, well past
 *   the 72 h soft-bounce give-up) polling stops.
 * - Final: stop, unless opens can still be caught — single recipient, not bounced, no open
 *   yet, and within `openTrackingHours` after `finalAt`. Then the reads decay: the first
 *   {@link OPEN_FIRST_POLLS} poll intervals after finalAt (1 min with the default 12 s),
 *   then twice, four times … as far apart, then hourly until the window closes. The
 *   schedule is anchored on `finalAt`, so it needs no counter and survives restarts.
 *   It is paced by the poll interval (not a fixed minute) so a deployment that polls
 *   faster also catches opens sooner.
 *
 * Worst case for open tracking with the defaults (12 s, 24 h):
 * {@link openTrackingPollCount}(24) = 28 receipt reads per single-recipient message that is
 * never opened.
 */

export const FAST_POLLS = 10;
export const SLOW_POLL_CAP_MS = 30 * 60_000;
export const MAX_TRACKING_MS = 7 * 24 * 3600_000;
/** The first open-tracking read comes this many poll intervals after finalAt. */
export const OPEN_FIRST_POLLS = 5;
export const DEFAULT_POLL_INTERVAL_MS = 12_000;
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
  /** every recipient hard bounced (or gave up): nobody can open it */
  bounced?: boolean;
  /** stop polling a message that never becomes final after this long (default 7 days) */
  maxTrackingMs?: number;
}

/** Epoch ms of the next receipt read, or null to stop. */
export function nextPoll(s: PollState): number | null {
  if (s.finalAt == null) return nextDeliveryPoll(s);
  if (!tracksOpens(s)) return null;
  const windowEnd = s.finalAt + s.openTrackingHours * 3600_000;
  const next = nextOpenPollAt(s.finalAt, s.now, openFirstDelay(s.pollIntervalMs));
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
  return s.openTrackingHours > 0 && s.singleRecipient && !s.opened && !s.bounced;
}

function openFirstDelay(pollIntervalMs: number): number {
  return Math.min(OPEN_FIRST_POLLS * Math.max(1, pollIntervalMs), OPEN_MAX_DELAY_MS);
}

/** Offsets from finalAt (default 12 s interval): 1, 3, 7, 15, 31, 63 min, then every 60 min. */
function openOffset(k: number, first: number): number {
  let offset = 0;
  for (let i = 0; i <= k; i++) offset += Math.min(first * 2 ** i, OPEN_MAX_DELAY_MS);
  return offset;
}

/** The first point of the open schedule strictly after `now`. */
function nextOpenPollAt(finalAt: number, now: number, first: number): number {
  const elapsed = now - finalAt;
  // Jump over the decaying part in O(1): past it, points are hourly.
  const decaySteps = Math.max(1, Math.ceil(Math.log2(OPEN_MAX_DELAY_MS / first)));
  const decayEnd = openOffset(decaySteps - 1, first);
  if (elapsed >= decayEnd) {
    const hours = Math.floor((elapsed - decayEnd) / OPEN_MAX_DELAY_MS) + 1;
    return finalAt + decayEnd + hours * OPEN_MAX_DELAY_MS;
  }
  let k = 0;
  while (openOffset(k, first) <= elapsed) k++;
  return finalAt + openOffset(k, first);
}

/** Receipt reads a never-opened single-recipient message costs after it became final. */
export function openTrackingPollCount(openTrackingHours: number, pollIntervalMs = DEFAULT_POLL_INTERVAL_MS): number {
  const windowMs = openTrackingHours * 3600_000;
  const first = openFirstDelay(pollIntervalMs);
  let count = 0;
  while (windowMs > 0 && openOffset(count, first) <= windowMs) count++;
  return count;
}
