/**
 * The receipt stream's timing, on virtual time (RxJS TestScheduler): the real
 * ReceiptPoller over in-memory neighbours that answer synchronously. One frame is one ms;
 * the poll interval is 1 s and the stream ticks every second.
 */
import { describe, expect, it } from 'vitest';
import { TestScheduler } from 'rxjs/testing';
import { filter, map } from 'rxjs/operators';
import { ReceiptPoller, type ReceiptDeps } from '../../src/pipeline/receipts.js';
import { PauboxError } from '../../src/paubox/errors.js';
import { createLogger } from '../../src/log.js';
import type { ReceiptResult } from '../../src/paubox/client.js';
import type { MessageUpdate, SaveOutcome } from '../../src/salesforce/records.js';
import type { ReceiptSchedule } from '../../src/store/store.js';

const SECOND = 1000;

/** The schedule table, ordered like the SQLite one (soonest first, then tracking id). */
class MemorySchedules {
  readonly rows = new Map<string, ReceiptSchedule>();
  putMany(ss: ReceiptSchedule[]): void { for (const s of ss) this.rows.set(s.trackingId, { ...s }); }
  due(now: number, limit: number): ReceiptSchedule[] {
    return [...this.rows.values()].filter((s) => s.nextPollAt <= now)
      .sort((a, b) => a.nextPollAt - b.nextPollAt || a.trackingId.localeCompare(b.trackingId)).slice(0, limit);
  }
  delete(id: string): void { this.rows.delete(id); }
  deleteForRecords(ids: string[]): void { for (const [k, r] of this.rows) if (ids.includes(r.recordId)) this.rows.delete(k); }
  count(): number { return this.rows.size; }
}

/** What Paubox answers for a tracking id at virtual time `now` (a throw is an HTTP error). */
type Script = (trackingId: string, now: number) => ReceiptResult;

const receipt = (...statuses: string[]): ReceiptResult => ({
  notFound: false,
  receipt: {
    data: {
      message: {
        id: '<id-1@clinic.example>',
        message_deliveries: statuses.map((deliveryStatus, i) => ({
          recipient: `r${i}@example.org`,
          status: { deliveryStatus, deliveryTime: 'Mon, 01 Jan 2024 00:00:02 +0000', openedStatus: null, openedTime: null },
        })),
      },
    },
  },
});

const singleOpened = (opened: boolean): ReceiptResult => ({
  notFound: false,
  receipt: { data: { message: {
    id: '<id-1@clinic.example>', total_opens: opened ? 1 : 0,
    message_deliveries: [{ recipient: 'pat@example.org', status: {
      deliveryStatus: 'delivered', deliveryTime: 'Mon, 01 Jan 2024 00:00:02 +0000',
      openedStatus: opened ? 'opened' : 'not opened', openedTime: opened ? 'Mon, 01 Jan 2024 00:00:40 +0000' : null,
    } }],
  } } },
});

interface Harness {
  poller: ReceiptPoller;
  schedules: MemorySchedules;
  writes: Array<{ at: number; rows: MessageUpdate[] }>;
}

function harness(scheduler: TestScheduler, script: Script, opts: {
  schedules?: MemorySchedules; failWrites?: (now: number) => boolean; deps?: Partial<ReceiptDeps>;
} = {}): Harness {
  const schedules = opts.schedules ?? new MemorySchedules();
  const writes: Harness['writes'] = [];
  const poller = new ReceiptPoller({
    store: { receipts: schedules },
    envelope: { seal: (_id, _p, plain) => Uint8Array.from(plain), open: (_id, _p, sealed) => sealed },
    paubox: { receipt: (id) => script(id, scheduler.now()) },
    sf: {
      updateMessages(rows): SaveOutcome[] {
        if (opts.failWrites?.(scheduler.now())) throw new Error('REST outage');
        writes.push({ at: scheduler.now(), rows });
        return rows.map((r) => ({ id: r.Id, ok: true, duplicate: false }));
      },
      findAwaitingReceipts: () => [],
    },
    log: createLogger('silent'),
    pollIntervalMs: SECOND, openTrackingHours: 24, softBounceGiveUpMs: 72 * 3600_000,
    throttleBackoff: { initialMs: 5 * SECOND, maxMs: 60 * SECOND, factor: 2, jitter: 0 },
    scheduler,
    ...opts.deps,
  });
  return { poller, schedules, writes };
}

/** Sends `ids` at virtual time 0 (first read due after one poll interval). */
async function sent(h: Harness, ids: string[], singleRecipient = false): Promise<void> {
  await h.poller.track(ids.map((id) => ({ recordId: `a0X00000000000${id.slice(1)}`.slice(0, 18), trackingId: id, sentAt: 0, singleRecipient })));
}

/** The rounds that read something, as "m1,m2" (and " 429" when Paubox throttled). */
const polls = (h: Harness, scheduler: TestScheduler) => h.poller.stream(SECOND, scheduler).pipe(
  filter((r) => r.polled.length > 0),
  map((r) => r.polled.join(',') + (r.throttled ? ' 429' : '')),
);

const newScheduler = () => new TestScheduler((actual, expected) => expect(actual).toEqual(expected));

describe('receipt stream timing (marbles)', () => {
  it('reads every interval, backs off after 10 reads, and stops once every recipient is final', async () => {
    const ts = newScheduler();
    const h = harness(ts, (_id, now) => (now >= 15 * SECOND ? receipt('delivered', 'hard bounced') : receipt('processing', 'soft bounced')));
    await sent(h, ['m1']);
    ts.run(({ expectObservable }) => {
      expectObservable(polls(h, ts), '^ 60s !').toBe(
        '1s a 999ms a 999ms a 999ms a 999ms a 999ms a 999ms a 999ms a 999ms a 999ms a 1999ms a 3999ms a',
        { a: 'm1' },
      );
    });
    expect(h.writes.at(-1)).toMatchObject({ at: 16 * SECOND, rows: [{ Status__c: 'Partially Delivered' }] });
    expect(h.schedules.count()).toBe(0);
  });

  it('after delivery reads a single-recipient message less and less often, and stops at the first open', async () => {
    const ts = newScheduler();
    const h = harness(ts, (_id, now) => (now < 2 * SECOND ? receipt('processing') : singleOpened(now >= 40 * SECOND)));
    await sent(h, ['m1'], true);
    ts.run(({ expectObservable }) => {
      // delivered at 2 s; open tracking at +5, +15, +35, +75 s (5 intervals, doubling)
      expectObservable(polls(h, ts), '^ 300s !').toBe('1s a 999ms a 4999ms a 9999ms a 19999ms a 39999ms a', { a: 'm1' });
    });
    expect(h.writes.map((w) => [w.at, Object.keys(w.rows[0]!).filter((k) => k.endsWith('At__c') || k === 'Status__c').sort()])).toEqual([
      [1 * SECOND, []],
      [2 * SECOND, ['Delivered_At__c', 'Status__c']],
      [77 * SECOND, ['Opened_At__c']],
    ]);
    expect(h.writes[2]!.rows[0]!.Opened_At__c).toBe('2024-01-01T00:00:40.000Z');
    expect(h.schedules.count()).toBe(0);
  });

  it('reads at most ratePerSecond messages a second, soonest due first', async () => {
    const ts = newScheduler();
    const h = harness(ts, () => receipt('delivered', 'delivered'), { deps: { ratePerSecond: 2 } });
    await sent(h, ['m1', 'm2', 'm3', 'm4', 'm5']);
    ts.run(({ expectObservable }) => {
      expectObservable(polls(h, ts), '^ 10s !').toBe('1s a 999ms b 999ms c', { a: 'm1,m2', b: 'm3,m4', c: 'm5' });
    });
  });

  it('a 429 pauses the whole stream with backoff, then resumes at a lower rate that recovers', async () => {
    const ts = newScheduler();
    const h = harness(ts, (_id, now) => {
      if (now === 2 * SECOND) throw new PauboxError('throttled', 'Paubox throttled the request (HTTP 429)', { status: 429 });
      return receipt('processing', 'processing');
    }, { deps: { ratePerSecond: 4, concurrency: 1 } });
    await sent(h, ['m1', 'm2', 'm3']);
    ts.run(({ expectObservable }) => {
      // 3 reads at 1 s; the 429 at 2 s stops that round; nothing until 7 s (5 s backoff);
      // then 2 a second (half of 4), 2.5, 3.1 … as clean rounds restore the rate.
      expectObservable(polls(h, ts), '^ 9500ms !').toBe('1s a 999ms b 4999ms c 999ms d 999ms e', {
        a: 'm1,m2,m3', b: 'm1 429', c: 'm1,m2', d: 'm3,m1', e: 'm2,m1,m3',
      });
    });
    expect(h.poller.stats.throttled).toBe(1);
  });

  it('a restarted poller resumes the stored schedule instead of starting over', async () => {
    const ts = newScheduler();
    const schedules = new MemorySchedules();
    const script: Script = () => receipt('soft bounced');
    const first = harness(ts, script, { schedules });
    await sent(first, ['m1']);
    const second = harness(ts, script, { schedules });
    ts.run(({ expectObservable }) => {
      expectObservable(polls(first, ts), '^ 12500ms !').toBe(
        '1s a 999ms a 999ms a 999ms a 999ms a 999ms a 999ms a 999ms a 999ms a 999ms a 1999ms a', { a: 'm1' });
      // down from 12.5 s to 14 s; the next read was stored for 16 s, then 8 s later
      expectObservable(polls(second, ts), '14s ^ 20s !').toBe('16s a 7999ms a', { a: 'm1' });
    });
  });

  it('keeps a message scheduled through 404s, empty deliveries, Paubox errors and unknown statuses', async () => {
    const ts = newScheduler();
    const h = harness(ts, (_id, now) => {
      if (now === 1 * SECOND) return { notFound: true };
      if (now === 2 * SECOND) return receipt();
      if (now === 3 * SECOND) throw new PauboxError('unavailable', 'Paubox is unavailable (HTTP 503)', { status: 503 });
      if (now === 4 * SECOND) return receipt('queued at the edge');
      return receipt('delivered');
    });
    await sent(h, ['m1']);
    ts.run(({ expectObservable }) => {
      expectObservable(polls(h, ts), '^ 30s !').toBe('1s a 999ms a 999ms a 999ms a 999ms a', { a: 'm1' });
    });
    expect(h.writes.map((w) => [w.at, w.rows[0]!.Status__c, w.rows[0]!.Message_Identifier__c])).toEqual([
      [2 * SECOND, undefined, '<id-1@clinic.example>'], // the empty list already names the Message-ID
      [4 * SECOND, undefined, undefined], // the unknown status lands in Delivery_Details__c only
      [5 * SECOND, 'Delivered', undefined],
    ]);
    expect(h.schedules.count()).toBe(0);
  });

  it('a failed write is merged and written again on the next read, not forgotten', async () => {
    const ts = newScheduler();
    const h = harness(ts, (_id, now) => (now >= 2 * SECOND ? receipt('delivered', 'delivered') : receipt('processing', 'processing')),
      { failWrites: (now) => now === 2 * SECOND });
    await sent(h, ['m1']);
    ts.run(({ expectObservable }) => {
      expectObservable(polls(h, ts), '^ 30s !').toBe('1s a 999ms a 999ms a', { a: 'm1' });
    });
    expect(h.writes.map((w) => w.at)).toEqual([1 * SECOND, 3 * SECOND]);
    expect(h.writes[1]!.rows[0]).toMatchObject({ Status__c: 'Delivered' });
    expect(h.schedules.count()).toBe(0);
  });
});
