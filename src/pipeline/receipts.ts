/**
 * Delivery receipts: every message this worker sent is read back from Paubox on the
 * schedule of domain/schedule.ts (fast at first, backing off, then a decaying tail for
 * first opens) and merged onto its record (domain/receipts.ts). The schedule lives in the
 * store so a restart resumes it; a lost store is rebuilt from Salesforce.
 *
 * Paubox is protected by a global bound: at most `ratePerSecond` reads a second, at most
 * `concurrency` at once, and a 429 pauses the whole stream with backoff. Only records whose
 * fields changed are written, through sObject Collections.
 */
import { Observable, timer, exhaustMap, from } from 'rxjs';
import { mergeReceipt, type ReceiptFields } from '../domain/receipts.js';
import { nextPoll } from '../domain/schedule.js';
import { backoffDelay, DEFAULT_BACKOFF } from '../domain/backoff.js';
import { PauboxError } from '../paubox/errors.js';
import type { PauboxClient } from '../paubox/client.js';
import type { SalesforceRecords, MessageUpdate } from '../salesforce/records.js';
import type { Store, ReceiptSchedule } from '../store/store.js';
import type { Envelope } from '../crypto/envelope.js';
import type { Log } from '../log.js';

export interface ReceiptDeps {
  store: Store;
  envelope: Envelope;
  paubox: PauboxClient;
  sf: SalesforceRecords;
  log: Log;
  pollIntervalMs: number;
  openTrackingHours: number;
  softBounceGiveUpMs: number;
  ratePerSecond?: number;
  concurrency?: number;
  now?: () => number;
}

/** What is remembered (sealed) between two reads: the record's receipt fields. */
interface Seen extends ReceiptFields {
  single?: boolean;
}

const PURPOSE = 'receipt';

export class ReceiptPoller {
  private pausedUntil = 0;
  private throttles = 0;
  readonly stats = { polls: 0, merged: 0, writes: 0, final: 0 };

  constructor(private readonly deps: ReceiptDeps) {}

  private now(): number {
    return (this.deps.now ?? Date.now)();
  }

  /** Starts tracking a message Paubox just accepted. */
  async track(sent: Array<{ recordId: string; trackingId: string; sentAt: number; singleRecipient: boolean }>): Promise<void> {
    const rows = await Promise.all(sent.map(async (s) => ({
      trackingId: s.trackingId, recordId: s.recordId, polls: 0, sentAt: s.sentAt,
      nextPollAt: s.sentAt + this.deps.pollIntervalMs,
      lastSeen: await this.seal(s.recordId, {
        Status__c: 'Sent', Sent_At__c: new Date(s.sentAt).toISOString(), single: s.singleRecipient,
      }),
    })));
    await this.deps.store.receipts.putMany(rows);
  }

  /** A lost or new store: schedule every message Salesforce says still awaits receipts. */
  async rebuildIfEmpty(): Promise<number> {
    if ((await this.deps.store.receipts.count()) > 0) return 0;
    const since = new Date(this.now() - this.deps.openTrackingHours * 3600_000);
    const records = await this.deps.sf.findAwaitingReceipts(since, 50_000);
    const now = this.now();
    const rows = await Promise.all(records.filter((r) => r.Tracking_Id__c).map(async (r) => ({
      trackingId: r.Tracking_Id__c!, recordId: r.Id, polls: 0, nextPollAt: now,
      sentAt: r.Sent_At__c ? Date.parse(r.Sent_At__c) : now,
      ...(r.Delivered_At__c ? { finalAt: Date.parse(r.Delivered_At__c) } : {}),
      lastSeen: await this.seal(r.Id, {
        Status__c: r.Status__c, Sent_At__c: r.Sent_At__c ?? null, Delivered_At__c: r.Delivered_At__c ?? null,
        Opened_At__c: r.Opened_At__c ?? null, Message_Identifier__c: r.Message_Identifier__c ?? null,
        Delivery_Details__c: r.Delivery_Details__c ?? null,
      }),
    })));
    await this.deps.store.receipts.putMany(rows);
    if (rows.length > 0) this.deps.log.info({ event: 'receipts.rebuilt', messages: rows.length });
    return rows.length;
  }

  /** The polling stream: one round a second; a round never overlaps the previous one. */
  stream(tickMs = 1000): Observable<number> {
    return timer(0, tickMs).pipe(exhaustMap(() => from(this.round())));
  }

  /** One round: read what is due (within the rate budget), merge, write back. */
  async round(): Promise<number> {
    const now = this.now();
    if (now < this.pausedUntil) return 0;
    const budget = this.deps.ratePerSecond ?? 50;
    const due = await this.deps.store.receipts.due(now, budget);
    if (due.length === 0) return 0;
    const results = await mapLimit(due, this.deps.concurrency ?? 16, (s) => this.read(s));
    const updates: MessageUpdate[] = [];
    const next: ReceiptSchedule[] = [];
    const done: ReceiptSchedule[] = [];
    for (const r of results) {
      if (!r) continue;
      if (r.update) updates.push(r.update);
      if (r.next) next.push(r.next);
      else done.push(r.schedule);
    }
    if (updates.length > 0) await this.write(updates);
    await this.deps.store.receipts.putMany(next);
    for (const s of done) await this.deps.store.receipts.delete(s.trackingId);
    return due.length;
  }

  private async read(s: ReceiptSchedule): Promise<{ schedule: ReceiptSchedule; update?: MessageUpdate; next?: ReceiptSchedule } | undefined> {
    if (this.now() < this.pausedUntil) return undefined;
    const seen = await this.open(s);
    let receipt: Awaited<ReturnType<PauboxClient['receipt']>>;
    try {
      this.stats.polls++;
      receipt = await this.deps.paubox.receipt(s.trackingId);
      this.throttles = 0;
    } catch (err) {
      if (err instanceof PauboxError && err.kind === 'throttled') this.pause(err.retryAfterMs);
      else this.deps.log.warn({ event: 'receipt.error', trackingId: s.trackingId, err });
      // Never dropped: tried again later, like any other non-final read.
      return { schedule: s, next: { ...s, nextPollAt: this.now() + this.deps.pollIntervalMs } };
    }
    const now = this.now();
    // A 404 shortly after sending is normal (Paubox has not indexed it yet): poll again.
    const merged = receipt.notFound
      ? { update: null, final: false, opened: false }
      : mergeReceipt(seen, receipt.receipt, new Date(now), { softBounceGiveUpMs: this.deps.softBounceGiveUpMs });
    const after: Seen = { ...seen, ...(merged.update as Partial<Seen> | null) };
    const finalAt = s.finalAt ?? (merged.final ? now : undefined);
    const at = nextPoll({
      polls: s.polls + 1, sentAt: s.sentAt, finalAt, now,
      pollIntervalMs: this.deps.pollIntervalMs, openTrackingHours: this.deps.openTrackingHours,
      singleRecipient: seen.single ?? true, opened: merged.opened,
    });
    if (merged.update) {
      this.stats.merged++;
      this.deps.log.info({ event: 'receipt.merged', recordId: s.recordId, trackingId: s.trackingId, status: after.Status__c, final: merged.final, opened: merged.opened });
    }
    if (merged.final && !s.finalAt) this.stats.final++;
    const update = merged.update ? { Id: s.recordId, ...merged.update } : undefined;
    if (at === null) return { schedule: s, ...(update ? { update } : {}) };
    const next: ReceiptSchedule = {
      ...s, polls: s.polls + 1, nextPollAt: at, ...(finalAt ? { finalAt } : {}),
      lastSeen: merged.update ? await this.seal(s.recordId, after) : s.lastSeen,
    };
    return { schedule: s, next, ...(update ? { update } : {}) };
  }

  private async write(updates: MessageUpdate[]): Promise<void> {
    this.stats.writes += Math.ceil(updates.length / 200);
    const results = await this.deps.sf.updateMessages(updates);
    results.forEach((r, i) => {
      if (!r.ok) this.deps.log.warn({ event: 'receipt.write_failed', recordId: updates[i]!.Id, code: r.error?.code });
    });
  }

  private pause(retryAfterMs?: number): void {
    const delay = Math.max(retryAfterMs ?? 0, backoffDelay(this.throttles++, DEFAULT_BACKOFF));
    this.pausedUntil = this.now() + delay;
    this.deps.log.warn({ event: 'receipt.throttled', pauseMs: delay });
  }

  private async seal(recordId: string, seen: Seen): Promise<Uint8Array> {
    return this.deps.envelope.seal(recordId, PURPOSE, Buffer.from(JSON.stringify(seen)));
  }

  private async open(s: ReceiptSchedule): Promise<Seen> {
    if (!s.lastSeen) return { Status__c: 'Sent' };
    return JSON.parse(Buffer.from(await this.deps.envelope.open(s.recordId, PURPOSE, s.lastSeen)).toString('utf8')) as Seen;
  }
}

/** Runs `fn` over `items` with at most `limit` at once, keeping order. */
async function mapLimit<T, R>(items: T[], limit: number, fn: (t: T) => Promise<R>): Promise<R[]> {
  const out: R[] = new Array(items.length);
  let next = 0;
  const workers = Array.from({ length: Math.min(limit, items.length) }, async () => {
    while (next < items.length) {
      const i = next++;
      out[i] = await fn(items[i]!);
    }
  });
  await Promise.all(workers);
  return out;
}
