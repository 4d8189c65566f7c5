/**
 * Delivery receipts: every message this worker sent is read back from Paubox on the
 * schedule of domain/schedule.ts (fast at first, backing off, then a decaying tail for
 * first opens) and merged onto its record (domain/receipts.ts). The schedule lives in the
 * store so a restart resumes it; a lost store is rebuilt from Salesforce.
 *
 * Paubox is protected by a global bound: a token bucket of `ratePerSecond` reads (one
 * second of burst), at most `concurrency` at once, and a 429 pauses the whole stream with
 * backoff and halves the rate until clean rounds restore it. Only records whose fields
 * changed are written, through sObject Collections; a record's schedule moves on only
 * once its write succeeded, so a failed write is repeated by the next read.
 *
 * The stream is RxJS on a `SchedulerLike`: the scheduler paces the rounds and is the
 * schedule's clock. Every neighbour may answer with a value, a promise or an Observable,
 * which lets the marble tests run the same code on virtual time.
 */
import { EMPTY, Observable, asyncScheduler, defer, from, isObservable, lastValueFrom, of, timer, type SchedulerLike } from 'rxjs';
import { catchError, concatMap, exhaustMap, map, mergeMap, toArray } from 'rxjs/operators';
import { mergeReceipt, type ReceiptFields } from '../domain/receipts.js';
import { nextPoll } from '../domain/schedule.js';
import { backoffDelay, DEFAULT_BACKOFF, type BackoffPolicy } from '../domain/backoff.js';
import { PauboxError } from '../paubox/errors.js';
import type { ReceiptResult } from '../paubox/client.js';
import type { MessageUpdate, SaveOutcome } from '../salesforce/records.js';
import type { SecureEmailMessage } from '../domain/record.js';
import type { ReceiptSchedule } from '../store/store.js';
import type { Log } from '../log.js';

/** A neighbour's answer: a value at once, a promise, or an Observable. */
export type Answer<T> = T | PromiseLike<T> | Observable<T>;

/** The slices of Store, Envelope, PauboxClient and SalesforceRecords the poller uses. */
export interface ReceiptDeps {
  store: {
    receipts: {
      putMany(s: ReceiptSchedule[]): Answer<void>;
      due(now: number, limit: number): Answer<ReceiptSchedule[]>;
      delete(trackingId: string): Answer<void>;
      deleteForRecords(recordIds: string[]): Answer<void>;
      count(): Answer<number>;
    };
  };
  envelope: {
    seal(recordId: string, purpose: string, plaintext: Uint8Array): Answer<Uint8Array>;
    open(recordId: string, purpose: string, sealed: Uint8Array): Answer<Uint8Array>;
  };
  paubox: { receipt(trackingId: string): Answer<ReceiptResult> };
  sf: {
    updateMessages(rows: MessageUpdate[]): Answer<SaveOutcome[]>;
    findAwaitingReceipts(since: Date, limit: number): Answer<SecureEmailMessage[]>;
  };
  log: Log;
  pollIntervalMs: number;
  openTrackingHours: number;
  softBounceGiveUpMs: number;
  /** Paubox receipt reads a second, across every message (default 50). */
  ratePerSecond?: number;
  /** Receipt reads at once (default 16). */
  concurrency?: number;
  /** The pause after a 429 (default: the worker's one retry policy). */
  throttleBackoff?: BackoffPolicy;
  /** The schedule's clock and the rounds' pace; the wall clock (asyncScheduler) by default. */
  scheduler?: SchedulerLike;
}

export interface SentMessage {
  recordId: string;
  trackingId: string;
  sentAt: number;
  singleRecipient: boolean;
}

/** What one round did (the stream emits one per tick). */
export interface RoundReport {
  at: number;
  /** tracking ids read from Paubox, in the order they were read */
  polled: string[];
  /** records written to Salesforce (successfully) */
  written: number;
  /** schedules that ended: final and nothing more to learn, or given up */
  finished: number;
  throttled: boolean;
}

/** What is remembered (sealed) between two reads: the record's receipt fields. */
interface Seen extends ReceiptFields {
  single?: boolean;
}

type Read =
  /** the stream was paused before this one was read: it stays due */
  | { kind: 'skipped'; s: ReceiptSchedule }
  | { kind: 'failed'; s: ReceiptSchedule; throttled: boolean }
  | { kind: 'read'; s: ReceiptSchedule; seen: Seen; after: Seen; changed: boolean; update?: MessageUpdate; final: boolean; opened: boolean };

/** What happens to a schedule after a round. */
type Plan = { put: ReceiptSchedule } | { drop: string } | { keep: true };

const PURPOSE = 'receipt';
const DELETED = new Set(['ENTITY_IS_DELETED', 'INVALID_CROSS_REFERENCE_KEY']);
/** The rate after repeated 429s never falls below this share of `ratePerSecond`. */
const MIN_RATE_FACTOR = 1 / 16;
const RATE_RECOVERY = 1.25;

export class ReceiptPoller {
  readonly stats = { polls: 0, merged: 0, writes: 0, writeFailures: 0, final: 0, throttled: 0 };
  private clock: SchedulerLike;
  private pausedUntil = 0;
  private throttles = 0;
  private rateFactor = 1;
  private tokens = 0;
  private tickMs = 1000;
  private refilledAt: number | undefined;

  constructor(private readonly deps: ReceiptDeps) {
    this.clock = deps.scheduler ?? asyncScheduler;
  }

  private now(): number {
    return this.clock.now();
  }

  /** Starts tracking messages Paubox just accepted. */
  async track(sent: SentMessage[]): Promise<void> {
    const rows = await Promise.all(sent.map(async (s): Promise<ReceiptSchedule> => ({
      trackingId: s.trackingId, recordId: s.recordId, polls: 0, sentAt: s.sentAt,
      nextPollAt: s.sentAt + this.deps.pollIntervalMs,
      lastSeen: await lastValueFrom(this.seal(s.recordId, {
        Status__c: 'Sent', Sent_At__c: new Date(s.sentAt).toISOString(), single: s.singleRecipient,
      })),
    })));
    // A resend replaces the record's earlier tracking id: its receipts must not land here.
    await lastValueFrom(io(() => this.deps.store.receipts.deleteForRecords(sent.map((s) => s.recordId))), { defaultValue: undefined });
    await lastValueFrom(io(() => this.deps.store.receipts.putMany(rows)), { defaultValue: undefined });
  }

  /** A lost or new store: schedule every message Salesforce says still awaits receipts. */
  async rebuildIfEmpty(): Promise<number> {
    if ((await lastValueFrom(io(() => this.deps.store.receipts.count()))) > 0) return 0;
    const now = this.now();
    const since = new Date(now - this.deps.openTrackingHours * 3600_000);
    const records = await lastValueFrom(io(() => this.deps.sf.findAwaitingReceipts(since, 50_000)));
    const rows = await Promise.all(records.filter((r) => r.Tracking_Id__c).map(async (r): Promise<ReceiptSchedule> => {
      const seen: Seen = {
        Status__c: r.Status__c, Sent_At__c: r.Sent_At__c ?? null, Delivered_At__c: r.Delivered_At__c ?? null,
        Opened_At__c: r.Opened_At__c ?? null, Message_Identifier__c: r.Message_Identifier__c ?? null,
        Delivery_Details__c: r.Delivery_Details__c ?? null,
      };
      const recipients = countDetails(r.Delivery_Details__c);
      if (recipients > 0) seen.single = recipients === 1;
      return {
        trackingId: r.Tracking_Id__c!, recordId: r.Id, polls: 0, nextPollAt: now,
        sentAt: r.Sent_At__c ? Date.parse(r.Sent_At__c) : now,
        ...(r.Delivered_At__c ? { finalAt: Date.parse(r.Delivered_At__c) } : {}),
        lastSeen: await lastValueFrom(this.seal(r.Id, seen)),
      };
    }));
    await lastValueFrom(io(() => this.deps.store.receipts.putMany(rows)), { defaultValue: undefined });
    if (rows.length > 0) this.deps.log.info({ event: 'receipts.rebuilt', messages: rows.length });
    return rows.length;
  }

  /**
   * The polling stream: a round every `tickMs` on `scheduler` (which also becomes the
   * schedule's clock); a round never overlaps the previous one, and a failed round is
   * logged and tried again on the next tick, so the stream itself never errors.
   */
  stream(tickMs = this.defaultTick(), scheduler?: SchedulerLike): Observable<RoundReport> {
    if (scheduler) this.clock = scheduler;
    this.tickMs = tickMs;
    return timer(0, tickMs, this.clock).pipe(
      exhaustMap(() => this.round().pipe(
        catchError((err: unknown) => (this.deps.log.warn({ event: 'receipts.round_failed', err }), EMPTY)),
      )),
    );
  }

  /** One round: read what is due (within the rate budget), merge, write back, reschedule. */
  round(): Observable<RoundReport> {
    return defer(() => {
      const now = this.now();
      const budget = this.refill(now);
      if (now < this.pausedUntil || budget < 1) return of(idle(now));
      return io(() => this.deps.store.receipts.due(now, budget)).pipe(
        concatMap((due) => from(due).pipe(mergeMap((s) => this.read(s), this.deps.concurrency ?? 16), toArray())),
        concatMap((reads) => this.commit(now, reads)),
      );
    });
  }

  /**
   * Rounds every few seconds rather than every second: the reads are the same, but a
   * round's merges go to Salesforce in one collections call of up to 200 records instead
   * of many small ones (the org's API budget), at most a third of a poll interval late.
   */
  private defaultTick(): number {
    return Math.max(250, Math.min(4000, Math.floor(this.deps.pollIntervalMs / 3)));
  }

  /** Token bucket: refilled at the current rate, at most one round's worth banked. */
  private refill(now: number): number {
    const rate = Math.max(1, (this.deps.ratePerSecond ?? 50) * this.rateFactor);
    const bank = Math.max(rate, (rate * this.tickMs) / 1000);
    this.tokens = this.refilledAt === undefined ? bank : Math.min(bank, this.tokens + ((now - this.refilledAt) * rate) / 1000);
    this.refilledAt = now;
    return Math.floor(this.tokens);
  }

  private read(s: ReceiptSchedule): Observable<Read> {
    return defer(() => {
      if (this.now() < this.pausedUntil) return of<Read>({ kind: 'skipped', s });
      this.tokens--;
      this.stats.polls++;
      return this.open(s).pipe(
        concatMap((seen) => io(() => this.deps.paubox.receipt(s.trackingId)).pipe(map((r) => this.merge(s, seen, r)))),
        catchError((err: unknown) => of(this.failed(s, err))),
      );
    });
  }

  private merge(s: ReceiptSchedule, seen: Seen, r: ReceiptResult): Read {
    // A 404 shortly after sending is normal (Paubox has not indexed it yet): read again.
    if (r.notFound) return { kind: 'read', s, seen, after: seen, changed: false, final: false, opened: Boolean(seen.Opened_At__c) };
    const merged = mergeReceipt(seen, r.receipt, new Date(this.now()), { softBounceGiveUpMs: this.deps.softBounceGiveUpMs });
    const after: Seen = { ...seen, ...(merged.update as Partial<Seen> | null) };
    let changed = merged.update !== null;
    const recipients = countDetails(after.Delivery_Details__c);
    if (after.single === undefined && recipients > 0) {
      after.single = recipients === 1;
      changed = true;
    }
    return {
      kind: 'read', s, seen, after, changed, final: merged.final, opened: merged.opened,
      ...(merged.update ? { update: { Id: s.recordId, ...merged.update } } : {}),
    };
  }

  private failed(s: ReceiptSchedule, err: unknown): Read {
    if (err instanceof PauboxError && err.kind === 'throttled') {
      this.throttle(err.retryAfterMs);
      return { kind: 'failed', s, throttled: true };
    }
    this.deps.log.warn({ event: 'receipt.error', trackingId: s.trackingId, err });
    return { kind: 'failed', s, throttled: false };
  }

  /** A 429 slows the whole stream: a pause with backoff, and half the rate for a while. */
  private throttle(retryAfterMs?: number): void {
    const delay = Math.max(retryAfterMs ?? 0, backoffDelay(this.throttles++, this.deps.throttleBackoff ?? DEFAULT_BACKOFF));
    this.pausedUntil = Math.max(this.pausedUntil, this.now() + delay);
    this.rateFactor = Math.max(MIN_RATE_FACTOR, this.rateFactor / 2);
    this.stats.throttled++;
    this.deps.log.warn({ event: 'receipt.throttled', pauseMs: delay, ratePerSecond: (this.deps.ratePerSecond ?? 50) * this.rateFactor });
  }

  private commit(now: number, reads: Read[]): Observable<RoundReport> {
    const throttled = reads.some((r) => r.kind === 'failed' && r.throttled);
    if (!throttled && reads.some((r) => r.kind !== 'skipped')) {
      this.throttles = 0;
      this.rateFactor = Math.min(1, this.rateFactor * RATE_RECOVERY);
    }
    const updates = reads.flatMap((r) => (r.kind === 'read' && r.update ? [r.update] : []));
    return this.write(updates).pipe(
      concatMap((failures) => from(reads).pipe(
        concatMap((r) => this.plan(r, failures, now)),
        toArray(),
        concatMap((plans) => this.persist(plans).pipe(map((): RoundReport => ({
          at: now,
          polled: reads.filter((r) => r.kind !== 'skipped').map((r) => r.s.trackingId),
          written: updates.filter((u) => !failures.has(u.Id)).length,
          finished: plans.filter((p) => 'drop' in p).length,
          throttled,
        })))),
      )),
    );
  }

  /** Writes the changed records; returns the record ids whose write failed, with the code. */
  private write(updates: MessageUpdate[]): Observable<Map<string, string | undefined>> {
    const failed = new Map<string, string | undefined>();
    if (updates.length === 0) return of(failed);
    this.stats.writes += Math.ceil(updates.length / 200);
    return io(() => this.deps.sf.updateMessages(updates)).pipe(
      map((results) => {
        updates.forEach((u, i) => {
          const r = results[i];
          if (r?.ok) return;
          failed.set(u.Id, r?.error?.code);
          this.deps.log.warn({ event: 'receipt.write_failed', recordId: u.Id, code: r?.error?.code });
        });
        return failed;
      }),
      catchError((err: unknown) => {
        this.deps.log.warn({ event: 'receipt.write_failed', records: updates.length, err });
        updates.forEach((u) => failed.set(u.Id, undefined));
        return of(failed);
      }),
      map((f) => {
        this.stats.writeFailures += f.size;
        this.stats.merged += updates.length - f.size;
        return f;
      }),
    );
  }

  /** The schedule after a read: onward only from what Salesforce now holds. */
  private plan(r: Read, failures: Map<string, string | undefined>, now: number): Observable<Plan> {
    if (r.kind === 'skipped' || (r.kind === 'failed' && r.throttled)) return of({ keep: true });
    const { s } = r;
    const polls = s.polls + 1;
    if (r.kind === 'failed') return of(this.reschedule(s, polls, now, s.finalAt, s.lastSeen, this.poll(s, polls, now)));
    if (r.update && failures.has(s.recordId)) {
      if (DELETED.has(failures.get(s.recordId) ?? '')) return of({ drop: s.trackingId });
      // Not written: keep what Salesforce holds (lastSeen), so the next read merges it again.
      return of(this.reschedule(s, polls, now, s.finalAt, s.lastSeen, this.poll(s, polls, now, r.seen)));
    }
    const finalAt = s.finalAt ?? (r.final ? now : undefined);
    if (r.final && s.finalAt === undefined) this.stats.final++;
    if (r.update) {
      this.deps.log.info({ event: 'receipt.merged', recordId: s.recordId, trackingId: s.trackingId, status: r.after.Status__c, final: r.final, opened: r.opened });
    }
    const at = nextPoll({
      polls, sentAt: s.sentAt, finalAt, now, pollIntervalMs: this.deps.pollIntervalMs,
      openTrackingHours: this.deps.openTrackingHours, singleRecipient: r.after.single ?? true,
      opened: r.opened, bounced: r.after.Status__c === 'Bounced',
    });
    if (at === null) return of({ drop: s.trackingId });
    const sealed = r.changed ? this.seal(s.recordId, r.after) : of(s.lastSeen);
    return sealed.pipe(map((lastSeen) => this.reschedule(s, polls, now, finalAt, lastSeen, at)));
  }

  /** When to read again from what is known before this read (a failed read or write). */
  private poll(s: ReceiptSchedule, polls: number, now: number, seen?: Seen): number | null {
    return nextPoll({
      polls, sentAt: s.sentAt, finalAt: s.finalAt, now, pollIntervalMs: this.deps.pollIntervalMs,
      openTrackingHours: this.deps.openTrackingHours, singleRecipient: seen?.single ?? true,
      opened: Boolean(seen?.Opened_At__c), bounced: seen?.Status__c === 'Bounced',
    });
  }

  private reschedule(s: ReceiptSchedule, polls: number, now: number, finalAt: number | undefined, lastSeen: Uint8Array | undefined, at: number | null): Plan {
    if (at === null) {
      this.deps.log.warn({ event: 'receipt.given_up', trackingId: s.trackingId, recordId: s.recordId, polls, ageMs: now - s.sentAt });
      return { drop: s.trackingId };
    }
    const next: ReceiptSchedule = { trackingId: s.trackingId, recordId: s.recordId, sentAt: s.sentAt, polls, nextPollAt: at };
    if (finalAt !== undefined) next.finalAt = finalAt;
    if (lastSeen !== undefined) next.lastSeen = lastSeen;
    return { put: next };
  }

  private persist(plans: Plan[]): Observable<void> {
    const puts = plans.flatMap((p) => ('put' in p ? [p.put] : []));
    const drops = plans.flatMap((p) => ('drop' in p ? [p.drop] : []));
    return io(() => this.deps.store.receipts.putMany(puts)).pipe(
      concatMap(() => from(drops).pipe(concatMap((id) => io(() => this.deps.store.receipts.delete(id))), toArray())),
      map(() => undefined),
    );
  }

  private seal(recordId: string, seen: Seen): Observable<Uint8Array> {
    return io(() => this.deps.envelope.seal(recordId, PURPOSE, Buffer.from(JSON.stringify(seen))));
  }

  private open(s: ReceiptSchedule): Observable<Seen> {
    if (!s.lastSeen) return of({ Status__c: 'Sent' });
    return io(() => this.deps.envelope.open(s.recordId, PURPOSE, s.lastSeen!)).pipe(
      map((plain) => JSON.parse(Buffer.from(plain).toString('utf8')) as Seen),
    );
  }
}

/** A neighbour's answer as an Observable; a synchronous throw becomes an error. */
function io<T>(call: () => Answer<T>): Observable<T> {
  return defer(() => {
    const answer = call();
    if (isObservable(answer)) return answer;
    if (isThenable(answer)) return from(answer);
    return of(answer);
  });
}

function isThenable<T>(v: Answer<T>): v is PromiseLike<T> {
  return typeof (v as PromiseLike<T> | null)?.then === 'function';
}

function idle(at: number): RoundReport {
  return { at, polled: [], written: 0, finished: 0, throttled: false };
}

/** Recipients in a `Delivery_Details__c` value (0 when absent or unreadable). */
function countDetails(json: string | null | undefined): number {
  if (!json) return 0;
  try {
    const parsed: unknown = JSON.parse(json);
    return Array.isArray(parsed) ? parsed.length : 0;
  } catch {
    return 0;
  }
}
