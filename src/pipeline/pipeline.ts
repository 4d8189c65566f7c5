/**
 * The whole pipeline on one screen.
 *
 *   change events ─┐
 *                  ├─> candidates ─> batch (≤200) ─> claim ─> send ─> write back ─> track receipts
 *   reconcile ─────┘                                                                  │
 *   receipts poll (every ~12 s per message, globally rate-bounded) ─> merge onto records
 *
 * Change events are the fast path; the reconcile sweep (start-up, after every resubscribe
 * or gap, and every RECONCILE_INTERVAL_MS) makes Salesforce the truth. A record is never
 * processed twice at once (`inFlight`), and the checkpoint advances only past events whose
 * work is done.
 */
import { Subject, merge, timer, from, EMPTY } from 'rxjs';
import { bufferTime, filter, mergeMap, concatMap, catchError, exhaustMap, tap, ignoreElements } from 'rxjs/operators';
import { decideTrigger } from '../domain/trigger.js';
import { CHANGE_CHANNEL } from '../domain/record.js';
import { changeStream, type StreamSignal } from '../salesforce/stream.js';
import { claimQueued, takeOver, type Claim, type ClaimDeps } from './claim.js';
import { sendClaims, type SendDeps } from './send.js';
import { recover, sweepStale } from './recover.js';
import { CheckpointTracker } from './checkpoint.js';
import type { ReceiptPoller } from './receipts.js';
import type { SalesforceSession } from '../salesforce/connection.js';

export interface PipelineDeps extends ClaimDeps, SendDeps {
  session: SalesforceSession;
  receipts: ReceiptPoller;
  clientName: string;
  reconcileIntervalMs: number;
  claimLeaseMs: number;
  /** Claim batches in flight at once (each ≤200 records). */
  claimConcurrency?: number;
  /** How long candidates gather before a batch is claimed. */
  batchWindowMs?: number;
  /** False: no CDC subscription; this worker sends from the reconcile sweep alone. */
  subscribe?: boolean;
  /** Passed to the stream (tests shorten them). */
  watchdogMarginMs?: number;
  dailyLimitBackoffMs?: number;
}

interface Candidate { recordId: string; replayId?: number }

export interface Pipeline {
  stats: {
    received: number; sent: number; failed: number;
    inFlight: () => number; streamDown: () => boolean; oldestQueuedAgeMs: () => number | null;
  };
  stop(): Promise<void>;
}

export async function startPipeline(deps: PipelineDeps): Promise<Pipeline> {
  const { log, store } = deps;
  const checkpoint = new CheckpointTracker(await store.getCheckpoint(CHANGE_CHANNEL));
  const inFlight = new Set<string>();
  const running = new Set<Promise<void>>();
  const abort = new AbortController();
  deps = { ...deps, signal: anySignal(deps.signal, abort.signal) };
  const reconcileNow = new Subject<string>();
  let streamDown = false;
  let oldestQueuedAt: number | null = null;
  const stats = {
    received: 0, sent: 0, failed: 0, inFlight: () => inFlight.size, streamDown: () => streamDown,
    oldestQueuedAgeMs: () => (oldestQueuedAt === null ? null : Date.now() - oldestQueuedAt),
  };

  await recover(deps);                       // finish what the last run left in the journal
  await deps.receipts.rebuildIfEmpty();

  if (deps.subscribe === false) log.info({ event: 'stream.disabled', reason: 'CDC_SUBSCRIBE', msg: 'not subscribing to change events; sending from the reconcile sweep' });
  const events$ = deps.subscribe === false ? EMPTY : changeStream({
    session: deps.session, channel: CHANGE_CHANNEL, checkpoint: () => checkpoint.current(), log,
    watchdogMarginMs: deps.watchdogMarginMs, dailyLimitBackoffMs: deps.dailyLimitBackoffMs,
  }).pipe(concatMap((signal) => from(onSignal(signal))), mergeMap((candidates) => from(candidates)));

  // Salesforce is the truth: Queued records the events missed, and claims gone stale.
  // While change events are unavailable, the sweep runs often enough to carry the load.
  const reconcile$ = merge(timer(0, deps.reconcileIntervalMs), reconcileNow).pipe(
    exhaustMap(() => from(reconcile()).pipe(catchError((err) => (log.warn({ event: 'reconcile.failed', err }), EMPTY)))),
    mergeMap((ids) => from(ids.map((recordId): Candidate => ({ recordId })))),
  );
  const degraded$ = timer(0, Math.min(deps.reconcileIntervalMs, 15_000)).pipe(
    filter(() => streamDown), tap(() => reconcileNow.next('stream down')), ignoreElements(),
  );

  const sends = merge(events$, reconcile$, degraded$).pipe(
    filter((c) => admit(c)),
    // A tenth of a second gathers fuller batches in a burst (fewer calls per message) and
    // costs a single queued message no more than that.
    bufferTime(deps.batchWindowMs ?? 100, null, 200),
    filter((batch) => batch.length > 0),
    // Each batch spends most of its time waiting on round trips (about ten, sequential):
    // enough of them in flight keeps a burst moving at REST latencies of ~100 ms.
    mergeMap((batch) => from(claimAndSend(batch)), deps.claimConcurrency ?? 8),
  ).subscribe();

  const receipts = deps.receipts.stream().pipe(
    catchError((err, caught) => (log.warn({ event: 'receipts.failed', err }), caught)),
  ).subscribe();

  const saveCheckpoint = setInterval(() => void persistCheckpoint(), 1000);

  async function onSignal(signal: StreamSignal): Promise<Candidate[]> {
    if (signal.type === 'subscribed') {
      streamDown = false;
      reconcileNow.next('resubscribed');
      return [];
    }
    if (signal.type === 'down') {
      streamDown = true;
      return [];
    }
    const decision = decideTrigger(signal.data, { clientName: deps.clientName });
    const replayId = decision.replayId ?? undefined;
    if (decision.kind === 'resync') reconcileNow.next('gap overflow');
    const ids = decision.kind === 'send' || decision.kind === 'reread' ? decision.recordIds : [];
    stats.received++;
    const level = decision.kind === 'ignore' ? 'debug' : 'info'; // our own writes' events are noise
    log[level]({ event: 'change.received', replayId, kind: decision.kind, records: ids.length });
    if (replayId !== undefined) checkpoint.begin(replayId, ids.length);
    return ids.map((recordId) => ({ recordId, ...(replayId !== undefined ? { replayId } : {}) }));
  }

  function admit(c: Candidate): boolean {
    if (!inFlight.has(c.recordId)) {
      inFlight.add(c.recordId);
      return true;
    }
    release(c, false);
    return false;
  }

  function release(c: Candidate, clear = true): void {
    if (clear) inFlight.delete(c.recordId);
    if (c.replayId !== undefined) checkpoint.done(c.replayId);
  }

  /** Shutdown waits for every batch from its claim on, not only once it is sending. */
  function claimAndSend(batch: Candidate[]): Promise<void> {
    const work = (async () => {
      try {
        if (abort.signal.aborted) return; // stopping: leave them Queued for the next worker
        await sendAndTrack(await claimQueued(batch.map((c) => c.recordId), deps));
      } catch (err) {
        // The records stay Queued (or their claims go stale): the next sweep picks them up.
        log.error({ event: 'batch.failed', records: batch.length, err });
      } finally {
        batch.forEach((c) => release(c));
      }
    })();
    return remember(work);
  }

  function sendAndTrack(claims: Claim[]): Promise<void> {
    return remember(sendClaims(claims, deps).then(trackSent));
  }

  function remember(work: Promise<void>): Promise<void> {
    running.add(work);
    void work.catch(() => undefined).finally(() => running.delete(work));
    return work;
  }

  async function trackSent(outcomes: Awaited<ReturnType<typeof sendClaims>>): Promise<void> {
    const sent = outcomes.flatMap((o) => (o.kind === 'sent'
      ? [{ recordId: o.claim.record.Id, trackingId: o.trackingId, sentAt: o.sentAt, singleRecipient: o.singleRecipient }]
      : []));
    stats.sent += sent.length;
    stats.failed += outcomes.filter((o) => o.kind === 'failed').length;
    if (sent.length > 0) await deps.receipts.track(sent);
  }

  async function reconcile(): Promise<string[]> {
    const queued = await deps.sf.findQueued(2000);
    oldestQueuedAt = queued[0]?.queuedAt ?? null;
    // A failing stale sweep must not hold back the Queued records already found.
    const rescued = await sweepStale(deps, (stale) => takeOver(stale, deps), (id) => inFlight.has(id))
      .catch((err) => (log.warn({ event: 'reconcile.stale_failed', err }), [] as Claim[]));
    const claims = rescued.filter((c) => !inFlight.has(c.record.Id));
    if (claims.length > 0) {
      claims.forEach((c) => inFlight.add(c.record.Id));
      void sendAndTrack(claims)
        .catch((err) => log.error({ event: 'batch.failed', records: claims.length, err }))
        .finally(() => claims.forEach((c) => inFlight.delete(c.record.Id)));
    }
    log.debug({ event: 'reconcile.swept', queued: queued.length, rescued: rescued.length });
    return queued.map((q) => q.id).filter((id) => !inFlight.has(id));
  }

  async function persistCheckpoint(): Promise<void> {
    const id = checkpoint.current();
    if (id !== undefined) await store.setCheckpoint(CHANGE_CHANNEL, id).catch(() => undefined);
  }

  return {
    stats,
    async stop() {
      // Stop taking work; cut retry waits short (their claims are handed back); wait for
      // what is in flight to finish or be handed back; then the last checkpoint.
      sends.unsubscribe();
      receipts.unsubscribe();
      abort.abort();
      await Promise.allSettled([...running]);
      clearInterval(saveCheckpoint);
      await persistCheckpoint();
    },
  };
}

function anySignal(...signals: Array<AbortSignal | undefined>): AbortSignal {
  return AbortSignal.any(signals.filter((x): x is AbortSignal => x !== undefined));
}
