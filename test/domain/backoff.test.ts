import { describe, expect, it } from 'vitest';
import { backoffDelay, nextRetryAt, retryUntil, type BackoffPolicy } from '../../src/domain/backoff.js';

const policy: BackoffPolicy = { initialMs: 100, maxMs: 1_000, factor: 2, jitter: 0 };

describe('backoffDelay', () => {
  it.each([[0, 100], [1, 200], [2, 400], [3, 800], [4, 1_000], [50, 1_000]])('attempt %i → %i ms without jitter', (n, ms) => {
    expect(backoffDelay(n, policy)).toBe(ms);
  });

  it('jitter only shortens the delay, by at most its share', () => {
    const jittered = { ...policy, jitter: 0.5 };
    expect(backoffDelay(2, jittered, () => 0)).toBe(400);
    expect(backoffDelay(2, jittered, () => 0.999999)).toBe(200);
    expect(backoffDelay(10, jittered, () => 0.5)).toBe(750);
  });
});

describe('nextRetryAt', () => {
  it('honours Retry-After as a floor and the deadline as a limit', () => {
    expect(nextRetryAt({ attempt: 0, now: 0, deadline: 10_000, policy, retryAfterMs: 5_000 })).toBe(5_000);
    expect(nextRetryAt({ attempt: 0, now: 0, deadline: 10_000, policy })).toBe(100);
    expect(nextRetryAt({ attempt: 3, now: 9_500, deadline: 10_000, policy })).toBeNull();
  });
});

describe('retryUntil', () => {
  function fakeTime() {
    let t = 0;
    const waits: number[] = [];
    return { now: () => t, sleep: async (ms: number) => { waits.push(ms); t += ms; }, waits };
  }

  it('retries transient failures until success', async () => {
    const time = fakeTime();
    let calls = 0;
    const result = await retryUntil(async (attempt) => {
      calls++;
      if (attempt < 3) throw new Error('transient');
      return 'done';
    }, { policy, deadline: 60_000, retryable: () => true, ...time });
    expect(result).toBe('done');
    expect(calls).toBe(4);
    expect(time.waits).toEqual([100, 200, 400]);
  });

  it('gives up at once on a permanent failure', async () => {
    const time = fakeTime();
    let calls = 0;
    await expect(retryUntil(async () => { calls++; throw new Error('permanent'); }, {
      policy, deadline: 60_000, retryable: () => false, ...time,
    })).rejects.toThrow('permanent');
    expect(calls).toBe(1);
  });

  it('rethrows the last error once the deadline passes', async () => {
    const time = fakeTime();
    let calls = 0;
    await expect(retryUntil(async () => { calls++; throw new Error(`fail ${calls}`); }, {
      policy, deadline: 2_000, retryable: () => true, ...time,
    })).rejects.toThrow(/fail \d+/);
    expect(time.now()).toBeLessThanOrEqual(2_000);
    expect(calls).toBe(time.waits.length + 1);
    expect(calls).toBeGreaterThan(2);
  });

  it('waits at least what the server asked', async () => {
    const time = fakeTime();
    let calls = 0;
    await retryUntil(async () => { if (calls++ === 0) throw new Error('429'); return 1; }, {
      policy, deadline: 60_000, retryable: () => ({ retryAfterMs: 7_000 }), ...time,
    });
    expect(time.waits).toEqual([7_000]);
  });

  it('stops when the signal aborts', async () => {
    const controller = new AbortController();
    let calls = 0;
    await expect(retryUntil(async () => { calls++; controller.abort(); throw new Error('stop'); }, {
      policy, deadline: Date.now() + 60_000, retryable: () => true, signal: controller.signal,
    })).rejects.toThrow('stop');
    expect(calls).toBe(1);
  });
});
