/**
 * The failures Salesforce streaming consumers are known for, and Paubox's bad days:
 * every message must still go out exactly once.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { CHANGE_CHANNEL } from '../../src/domain/record.js';
import {
  acceptedCountBySubject, queue, spawnWorker, startStack, statusOf, waitFor, type Stack, type WorkerProcess,
} from '../support/harness.js';

let stack: Stack | undefined;
const children: WorkerProcess[] = [];
afterEach(async () => {
  for (const c of children.splice(0)) {
    c.kill('SIGKILL');
    await c.exited;
  }
  await stack?.close();
  stack = undefined;
});

const burst = (prefix: string, n: number) => Array.from({ length: n }, (_, i) => ({ Subject__c: `${prefix} ${i}` }));

function expectEachSentOnce(s: Stack, prefix: string, n: number): void {
  const counts = acceptedCountBySubject(s.sandbox);
  const mine = [...counts].filter(([subject]) => subject.startsWith(prefix));
  expect(mine.length).toBe(n);
  expect(mine.filter(([, c]) => c !== 1)).toEqual([]);
}

const allSent = (s: Stack, ids: string[]) => () => statusOf(s.sandbox, ids).every((x) => x === 'Sent' || x === 'Delivered');

describe('stream faults', () => {
  it('resubscribes at -1 and reconciles when the stored replay id fell out of retention', async () => {
    stack = await startStack();
    const s = stack;
    await s.startWorker();
    const first = queue(s.sandbox, ...burst('before', 3));
    await waitFor(allSent(s, first), 'first batch');
    await s.stopWorker(); // the checkpoint is stored
    const missed = queue(s.sandbox, ...burst('missed', 5));
    s.sandbox.org.events.expireAll(CHANGE_CHANNEL); // 72 h pass
    await s.startWorker();
    await waitFor(allSent(s, missed), 'missed batch');
    expect(s.logs.events('stream.replay_invalid').length).toBeGreaterThan(0);
    expectEachSentOnce(s, 'missed', 5);
    expectEachSentOnce(s, 'before', 3);
  });

  it('re-authenticates when the session expires mid-stream, and keeps hearing events', async () => {
    stack = await startStack({ env: { RECONCILE_INTERVAL_MS: '600000' } }); // events only
    const s = stack;
    await s.startWorker();
    await waitFor(() => s.logs.events('stream.subscribed').length > 0, 'subscribed');
    s.sandbox.org.control.expireSessions();
    await waitFor(() => s.logs.events('stream.auth_expired').length > 0, 'the stream noticed');
    await waitFor(() => s.logs.events('stream.subscribed').length > 1, 'resubscribed');
    const ids = queue(s.sandbox, ...burst('after expiry', 4));
    await waitFor(allSent(s, ids), 'sent after expiry');
    expectEachSentOnce(s, 'after expiry', 4);
  });

  it('carries on after 403::Unknown client (faye re-handshakes)', async () => {
    stack = await startStack({ env: { RECONCILE_INTERVAL_MS: '600000' } });
    const s = stack;
    await s.startWorker();
    await waitFor(() => s.logs.events('stream.subscribed').length > 0, 'subscribed');
    s.sandbox.org.cometd.forgetClients();
    await waitFor(() => s.logs.events('stream.rehandshake').length > 0, 'rehandshake');
    const ids = queue(s.sandbox, ...burst('after forget', 4));
    await waitFor(allSent(s, ids), 'sent after forget');
    expectEachSentOnce(s, 'after forget', 4);
  });

  it('tears down a stream that went silent, and reconciliation sends meanwhile', async () => {
    stack = await startStack();
    const s = stack;
    await s.startWorker();
    await waitFor(() => s.logs.events('stream.subscribed').length > 0, 'subscribed');
    s.sandbox.org.cometd.stall(true);
    const during = queue(s.sandbox, ...burst('during stall', 3));
    await waitFor(allSent(s, during), 'sent through reconciliation', 20_000);
    await waitFor(() => s.logs.events('stream.silent').length > 0, 'the watchdog fired', 20_000);
    s.sandbox.org.cometd.stall(false);
    await waitFor(() => s.logs.events('stream.subscribed').length > 1, 'resubscribed', 20_000);
    expectEachSentOnce(s, 'during stall', 3);
  });

  it('keeps sending through reconciliation when the daily event allocation is exhausted, and says why', async () => {
    stack = await startStack();
    const s = stack;
    s.sandbox.org.cometd.setDailyDeliveryLimit(0);
    await s.startWorker();
    const ids = queue(s.sandbox, ...burst('no events', 6));
    await waitFor(allSent(s, ids), 'sent through reconciliation', 20_000);
    const down = s.logs.events('stream.unavailable');
    expect(down.length).toBeGreaterThan(0);
    expect(down[0]).toMatchObject({ reason: 'daily-event-limit' });
    expectEachSentOnce(s, 'no events', 6);
  });
});

describe('Paubox faults', () => {
  it('retries 500 and 429 storms with backoff and sends every message exactly once', async () => {
    stack = await startStack();
    const s = stack;
    s.sandbox.paubox.control.failNext(4, 500);
    await s.startWorker();
    const a = queue(s.sandbox, ...burst('storm500', 5));
    await waitFor(allSent(s, a), '500 storm over', 30_000);
    s.sandbox.paubox.control.failNext(4, 429);
    const b = queue(s.sandbox, ...burst('storm429', 5));
    await waitFor(allSent(s, b), '429 storm over', 30_000);
    expectEachSentOnce(s, 'storm500', 5);
    expectEachSentOnce(s, 'storm429', 5);
    expect(s.logs.events('paubox.retry').length).toBeGreaterThan(0);
  });
});

describe('several workers', () => {
  it('two worker processes on one org send every message exactly once', async () => {
    stack = await startStack();
    const s = stack;
    const env = (n: number) => ({ ...s.env, DATA_DIR: `${s.dataDir}/w${n}`, WORKER_NAME: `worker-${n}` });
    children.push(spawnWorker(env(1)), spawnWorker(env(2)));
    await waitFor(() => children.every((c) => c.logs.events('stream.subscribed').length > 0), 'both subscribed', 20_000);
    const ids = queue(s.sandbox, ...burst('pair', 100));
    await waitFor(allSent(s, ids), 'all sent', 30_000);
    expectEachSentOnce(s, 'pair', 100);
    // Each worker logged its own share of the sends, and together exactly the 100.
    const total = () => children.map((c) => c.logs.events('message.sent').length).reduce((a, b) => a + b, 0);
    await waitFor(() => total() >= 100, 'the sends logged');
    expect(total()).toBe(100);
  });
});

describe('gap events', () => {
  it('re-reads the records a GAP event names, and sends those that are Queued', async () => {
    stack = await startStack({ env: { RECONCILE_INTERVAL_MS: '600000' } }); // no sweep to hide behind
    const s = stack;
    await s.startWorker();
    await waitFor(() => s.logs.events('stream.subscribed').length > 0, 'subscribed');
    const [id] = queue(s.sandbox, { Status__c: 'Draft', Subject__c: 'gap one' });
    // A database-level change: Salesforce publishes GAP_UPDATE with the id and no fields.
    s.sandbox.org.update('Secure_EmailMessage__c', id!, { Status__c: 'Queued' }, { gap: true });
    await waitFor(allSent(s, [id!]), 'sent after the gap');
    expectEachSentOnce(s, 'gap one', 1);
  });

  it('re-syncs the whole object on GAP_OVERFLOW', async () => {
    stack = await startStack({ env: { RECONCILE_INTERVAL_MS: '600000' } });
    const s = stack;
    await s.startWorker();
    await waitFor(() => s.logs.events('stream.subscribed').length > 0, 'subscribed');
    const ids = queue(s.sandbox, ...burst('overflow', 3).map((r) => ({ ...r, Status__c: 'Draft' })));
    // Too many changes in one transaction to list: one GAP_OVERFLOW, no per-record events.
    for (const id of ids) s.sandbox.org.update('Secure_EmailMessage__c', id, { Status__c: 'Queued' }, { gap: 'overflow' });
    await waitFor(allSent(s, ids), 'sent after the overflow');
    expectEachSentOnce(s, 'overflow', 3);
  });
});

describe('start-up', () => {
  it('waits for an unreachable Salesforce instead of crashing, then sends', async () => {
    stack = await startStack();
    const s = stack;
    s.sandbox.org.control.restOutage(true); // OAuth answers 503 too
    const starting = s.startWorker();
    await waitFor(() => s.logs.events('salesforce.unreachable').length > 0, 'the wait logged');
    const ids = queue(s.sandbox, ...burst('after outage', 2));
    s.sandbox.org.control.restOutage(false);
    await starting;
    await waitFor(allSent(s, ids), 'sent once Salesforce is back');
    expectEachSentOnce(s, 'after outage', 2);
  });
});
