import { describe, expect, it } from 'vitest';
import { CheckpointTracker } from '../../src/pipeline/checkpoint.js';

describe('replay checkpoint', () => {
  it('advances only past events whose work is done, so a crash replays rather than skips', () => {
    const cp = new CheckpointTracker('10');
    cp.begin(11, 1);
    cp.begin(12, 2);
    cp.begin(13, 0); // an event with nothing to do (our own write)
    expect(cp.current()).toBe('10');
    cp.done(12);
    cp.done(12);
    expect(cp.current()).toBe('10'); // 11 still open
    cp.done(11);
    expect(cp.current()).toBe('13');
  });

  it('never moves backwards', () => {
    const cp = new CheckpointTracker('50');
    cp.begin(20, 1); // a replayed older event
    expect(cp.current()).toBe('50');
  });

  it('knows nothing until something is seen', () => {
    expect(new CheckpointTracker().current()).toBeUndefined();
    expect(new CheckpointTracker('junk').current()).toBeUndefined();
  });
});
