import { describe, expect, it } from 'vitest';
import { nextPoll, openTrackingPollCount, type PollState } from '../../src/domain/schedule.js';

const MIN = 60_000;
const HOUR = 60 * MIN;
const T0 = Date.UTC(2024, 0, 1);

const state = (s: Partial<PollState>): PollState => ({
  polls: 0, sentAt: T0, now: T0, pollIntervalMs: 12_000, openTrackingHours: 24,
  singleRecipient: true, opened: false, ...s,
});

/** Simulates the poller: the times it would read, until nextPoll says stop. */
function pollTimes(s: Partial<PollState>, limit = 1000): number[] {
  const times: number[] = [];
  let st = state(s);
  for (let next = nextPoll(st); next !== null && times.length < limit; next = nextPoll(st)) {
    times.push(next);
    st = { ...st, polls: st.polls + 1, now: next };
  }
  return times;
}

describe('nextPoll before delivery is final', () => {
  it('polls every interval at first, then doubles up to 30 minutes', () => {
    const times = pollTimes({ maxTrackingMs: 3 * 24 * HOUR }, 40);
    const gaps = times.map((t, i) => t - (i === 0 ? T0 : times[i - 1]!));
    expect(gaps.slice(0, 10)).toEqual(Array(10).fill(12_000));
    expect(gaps.slice(10, 14)).toEqual([24_000, 48_000, 96_000, 192_000]);
    expect(Math.max(...gaps)).toBe(30 * MIN);
    expect(gaps.at(-1)).toBe(30 * MIN);
  });

  it('stops tracking a message that never becomes final after maxTrackingMs', () => {
    const times = pollTimes({ maxTrackingMs: 6 * HOUR });
    expect(times.at(-1)! - T0).toBeLessThan(6 * HOUR + 30 * MIN);
    expect(nextPoll(state({ polls: 40, now: T0 + 6 * HOUR, maxTrackingMs: 6 * HOUR }))).toBeNull();
  });
});

describe('nextPoll once final', () => {
  it.each([
    ['several recipients', { singleRecipient: false }],
    ['already opened', { opened: true }],
    ['open tracking off', { openTrackingHours: 0 }],
    ['window closed', { now: T0 + 25 * HOUR }],
    ['every recipient bounced', { bounced: true }],
  ])('stops: %s', (_name, s) => {
    expect(nextPoll(state({ finalAt: T0, now: T0, ...s }))).toBeNull();
  });

  it('reads less and less often (1, 2, 4 … min, then hourly) until the window closes', () => {
    const times = pollTimes({ finalAt: T0, now: T0 });
    const offsets = times.map((t) => (t - T0) / MIN);
    expect(offsets.slice(0, 8)).toEqual([1, 3, 7, 15, 31, 63, 123, 183]);
    expect(offsets.at(-1)).toBeLessThanOrEqual(24 * 60);
    expect(times).toHaveLength(openTrackingPollCount(24));
  });

  it('is anchored on finalAt, so a restarted poller resumes the same schedule', () => {
    expect(nextPoll(state({ finalAt: T0, now: T0 + 5 * MIN }))).toBe(T0 + 7 * MIN);
    expect(nextPoll(state({ finalAt: T0, now: T0 + 7 * MIN }))).toBe(T0 + 15 * MIN);
    expect(nextPoll(state({ finalAt: T0, now: T0 + 10 * HOUR }))).toBe(T0 + 10 * HOUR + 3 * MIN);
  });

  it('is paced by the poll interval: a worker polling every second reads 5 s after final', () => {
    const times = pollTimes({ finalAt: T0, now: T0, pollIntervalMs: 1000 });
    const offsets = times.map((t) => (t - T0) / 1000);
    expect(offsets.slice(0, 4)).toEqual([5, 15, 35, 75]);
    const gaps = times.map((t, i) => t - (i === 0 ? T0 : times[i - 1]!));
    expect(Math.max(...gaps)).toBe(HOUR);
    expect(times).toHaveLength(openTrackingPollCount(24, 1000));
  });
});

describe('openTrackingPollCount', () => {
  it.each([[0, 0], [1, 5], [24, 28], [72, 76]])('%i h → %i reads at most', (hours, count) => {
    expect(openTrackingPollCount(hours)).toBe(count);
  });
});
