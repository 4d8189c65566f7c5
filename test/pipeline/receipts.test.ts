/**
 * Delivery receipts end to end: a worker on its production code path sends through the
 * sandbox Paubox and polls `message_receipt`; the records are read as a Salesforce user
 * sees them. Receipt progression follows the address conventions of
 * src/sandbox/paubox-receipts.ts on the sandbox clock, which the tests push forward: the
 * worker keeps its own (wall) clock and observes the later state on its next regular read
 * (POLL_INTERVAL_MS is 1 s here, so open tracking reads 5 s, 15 s, 35 s … after delivery).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { queue, record, startStack, waitFor, acceptedCountBySubject, type Stack } from '../support/harness.js';

const MIN = 60_000;
let stack: Stack;
beforeEach(async () => {
  stack = await startStack();
});
afterEach(async () => {
  await stack?.close();
});

const rec = (id: string) => record(stack.sandbox, id);
const details = (id: string): Array<Record<string, string>> => JSON.parse(String(rec(id).Delivery_Details__c ?? '[]'));
const statusIs = (id: string, status: string) => () => rec(id).Status__c === status;
const detailsSay = (id: string, text: string) => () => String(rec(id).Delivery_Details__c ?? '').includes(text);
const ms = (v: unknown) => Date.parse(String(v));

describe('delivery receipts', () => {
  it('delivered, hard bounce and mixed recipients become Delivered, Bounced and Partially Delivered', async () => {
    await stack.startWorker();
    const [ok, bounce, mixed] = queue(stack.sandbox,
      { To_Address__c: 'pat@example.org', Subject__c: 'ok' },
      { To_Address__c: 'bounce@example.org', Subject__c: 'bounce' },
      { To_Address__c: 'pat@example.org, bounce2@example.org', Cc_Address__c: 'doc@example.org', Subject__c: 'mixed' });
    await waitFor(statusIs(ok!, 'Delivered'), 'Delivered');
    await waitFor(statusIs(bounce!, 'Bounced'), 'Bounced');
    await waitFor(statusIs(mixed!, 'Partially Delivered'), 'Partially Delivered');

    const accepted = new Map(stack.sandbox.paubox.accepted().map((a) => [a.sourceTrackingId, a]));
    const delivered = rec(ok!);
    expect(delivered.Message_Identifier__c).toBe(accepted.get(String(delivered.Tracking_Id__c))!.messageId);
    expect(details(ok!)).toEqual([expect.objectContaining({ recipient: 'pat@example.org', deliveryStatus: 'delivered', openedStatus: 'not opened' })]);
    // RFC 2822 from Paubox, ISO 8601 on the record
    expect(details(ok!)[0]!.deliveryTime).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.000Z$/);
    expect(ms(delivered.Delivered_At__c)).toBe(ms(details(ok!)[0]!.deliveryTime));
    expect(details(bounce!)[0]).toMatchObject({ deliveryStatus: 'hard bounced' });
    expect(rec(bounce!).Delivered_At__c).toBeTruthy();
    expect(details(mixed!).map((d) => [d.recipient, d.deliveryStatus])).toEqual([
      ['pat@example.org', 'delivered'], ['bounce2@example.org', 'hard bounced'], ['doc@example.org', 'delivered'],
    ]);
    for (const id of [ok, bounce, mixed]) expect(rec(id!).Opened_At__c ?? null).toBeNull();
  });

  it('a soft bounce stays Sent until Paubox delivers it half an hour later', async () => {
    await stack.startWorker();
    const [id] = queue(stack.sandbox, { To_Address__c: 'softok@example.org' });
    await waitFor(detailsSay(id!, '"soft bounced"'), 'the soft bounce on the record');
    expect(rec(id!).Status__c).toBe('Sent');
    stack.sandbox.clock.advance(30 * MIN);
    await waitFor(statusIs(id!, 'Delivered'), 'Delivered after the soft bounce');
    expect(details(id!)[0]).toMatchObject({ deliveryStatus: 'delivered' });
  });

  it('a secure-portal pickup stays Sent until the recipient collects it', async () => {
    await stack.startWorker();
    const [id] = queue(stack.sandbox, { To_Address__c: 'portal@example.org' });
    await waitFor(detailsSay(id!, 'TLS not offered, sending via Secure Portal'), 'the portal notice on the record');
    expect(rec(id!).Status__c).toBe('Sent');
    stack.sandbox.clock.advance(MIN);
    await waitFor(statusIs(id!, 'Delivered'), 'Delivered via the portal');
    expect(details(id!)[0]).toMatchObject({ deliveryStatus: 'delivered via secure portal' });
  });

  it('an open after delivery sets Opened_At__c and leaves the status Delivered', async () => {
    await stack.startWorker();
    const [id] = queue(stack.sandbox, { To_Address__c: 'open@example.org' });
    await waitFor(statusIs(id!, 'Delivered'), 'Delivered');
    expect(rec(id!).Opened_At__c ?? null).toBeNull();
    stack.sandbox.clock.advance(MIN);
    await waitFor(() => rec(id!).Opened_At__c, 'Opened_At__c');
    expect(rec(id!).Status__c).toBe('Delivered');
    expect(ms(rec(id!).Opened_At__c) - ms(rec(id!).Delivered_At__c)).toBe(MIN);
    expect(details(id!)[0]).toMatchObject({ openedStatus: 'opened' });
  });

  it('an open that comes an hour after delivery (sandbox clock) is still caught', async () => {
    await stack.startWorker();
    const [id] = queue(stack.sandbox, { To_Address__c: 'lateopen@example.org' });
    await waitFor(statusIs(id!, 'Delivered'), 'Delivered');
    stack.sandbox.clock.advance(30 * MIN);
    const reads = stack.sandbox.paubox.counter.get('paubox.message_receipt');
    await waitFor(() => stack.sandbox.paubox.counter.get('paubox.message_receipt') > reads, 'an open-tracking read half an hour on');
    expect(rec(id!).Opened_At__c ?? null).toBeNull();
    stack.sandbox.clock.advance(30 * MIN);
    await waitFor(() => rec(id!).Opened_At__c, 'Opened_At__c an hour later', 40_000);
    expect(ms(rec(id!).Opened_At__c) - ms(rec(id!).Delivered_At__c)).toBe(60 * MIN);
  }, 60_000);

  it('a restart resumes the stored schedule; a lost store is rebuilt from Salesforce', async () => {
    await stack.startWorker();
    const [id] = queue(stack.sandbox, { To_Address__c: 'portal@example.org', Subject__c: 'portal' });
    await waitFor(detailsSay(id!, 'TLS not offered'), 'the portal notice');
    await stack.stopWorker();
    await stack.startWorker();
    expect(stack.logs.events('receipts.rebuilt')).toHaveLength(0);
    const polls = stack.sandbox.paubox.counter.get('paubox.message_receipt');
    await waitFor(() => stack.sandbox.paubox.counter.get('paubox.message_receipt') > polls, 'a read by the restarted worker');
    await stack.stopWorker();

    const lost = mkdtempSync(join(tmpdir(), 'sdt-lost-'));
    try {
      stack.sandbox.clock.advance(MIN);
      await stack.startWorker({}, { DATA_DIR: lost });
      expect(stack.logs.events('receipts.rebuilt')).toEqual([expect.objectContaining({ messages: 1 })]);
      await waitFor(statusIs(id!, 'Delivered'), 'Delivered by the rebuilt schedule');
      expect(acceptedCountBySubject(stack.sandbox).get('portal')).toBe(1);
    } finally {
      await stack.stopWorker();
      rmSync(lost, { recursive: true, force: true });
    }
  });
});
