/**
 * The one retry policy of the worker (in the spirit of kafkajs's retrier): exponential
 * delays with jitter, a cap, and a deadline after which a transient failure becomes a
 * permanent one (contract §2: "transient failures outlasted the retry deadline").
 * Randomness and time are injected so tests are deterministic.
 */

export interface BackoffPolicy {
  initialMs: number;
  maxMs: number;
  /** growth per attempt, e.g. 2 */
  factor: number;
  /** 0..1: the share of the delay that is randomized (0 = exact, 1 = anywhere in [0, d]) */
  jitter: number;
}

export const DEFAULT_BACKOFF: BackoffPolicy = { initialMs: 1_000, maxMs: 5 * 60_000, factor: 2, jitter: 0.2 };

/**
 * Delay before retry number `attempt` (0 = the first retry): initialMs × factor^attempt,
 * capped at maxMs, then reduced by up to `jitter` of itself so a crowd of workers spreads
 * out instead of retrying in lockstep. Never above maxMs, never negative.
 */
export function backoffDelay(attempt: number, policy: BackoffPolicy, random: () => number = Math.random): number {
  const n = Math.max(0, Math.floor(attempt));
  const base = Math.min(policy.maxMs, policy.initialMs * Math.pow(Math.max(1, policy.factor), n));
  const jitter = clamp(policy.jitter, 0, 1) * clamp(random(), 0, 1);
  return Math.max(0, Math.round(base * (1 - jitter)));
}

/**
 * When to retry a failure, or null when the deadline forbids it. `retryAfterMs` (e.g. a
 * server's Retry-After) is honoured as a floor.
 */
export function nextRetryAt(args: {
  attempt: number;
  now: number;
  /** epoch ms after which no retry starts */
  deadline: number;
  policy: BackoffPolicy;
  retryAfterMs?: number;
  random?: () => number;
}): number | null {
  const delay = Math.max(backoffDelay(args.attempt, args.policy, args.random), args.retryAfterMs ?? 0);
  const at = args.now + delay;
  return at <= args.deadline ? at : null;
}

export type RetryVerdict = false | true | { retryAfterMs?: number };

export interface RetryOptions {
  policy?: BackoffPolicy;
  /** epoch ms; no retry starts after it */
  deadline: number;
  /** false: give up at once (permanent); true or {retryAfterMs}: retry */
  retryable: (error: unknown) => RetryVerdict;
  now?: () => number;
  sleep?: (ms: number, signal?: AbortSignal) => Promise<void>;
  random?: () => number;
  signal?: AbortSignal;
  /** called before each wait, e.g. to log the attempt (no PHI in errors) */
  onRetry?: (info: { attempt: number; delayMs: number; error: unknown }) => void;
}

/**
 * Runs `fn` until it succeeds, fails permanently, or the deadline passes; then rethrows the
 * last error. `fn` gets the attempt number (0 = first try).
 */
export async function retryUntil<T>(fn: (attempt: number) => Promise<T>, opts: RetryOptions): Promise<T> {
  const now = opts.now ?? Date.now;
  const sleep = opts.sleep ?? abortableSleep;
  const policy = opts.policy ?? DEFAULT_BACKOFF;
  for (let attempt = 0; ; attempt++) {
    try {
      return await fn(attempt);
    } catch (error) {
      const verdict = opts.retryable(error);
      if (verdict === false || opts.signal?.aborted) throw error;
      const retryAfterMs = typeof verdict === 'object' ? verdict.retryAfterMs : undefined;
      const t = now();
      const at = nextRetryAt({ attempt, now: t, deadline: opts.deadline, policy, retryAfterMs, random: opts.random });
      if (at === null) throw error;
      const delayMs = at - t;
      opts.onRetry?.({ attempt, delayMs, error });
      await sleep(Math.max(0, delayMs), opts.signal);
      if (opts.signal?.aborted) throw error;
    }
  }
}

/** setTimeout as a promise that resolves early (not rejects) when the signal aborts. */
export function abortableSleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal?.aborted) return resolve();
    const done = () => { clearTimeout(timer); signal?.removeEventListener('abort', done); resolve(); };
    const timer = setTimeout(done, ms);
    signal?.addEventListener('abort', done, { once: true });
  });
}

function clamp(x: number, lo: number, hi: number): number {
  return Number.isFinite(x) ? Math.min(hi, Math.max(lo, x)) : lo;
}
