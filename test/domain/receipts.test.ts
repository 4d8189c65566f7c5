import { describe, expect, it } from 'vitest';
import { mergeReceipt, toIso, type ReceiptFields } from '../../src/domain/receipts.js';

const SENT_AT = '2018-04-23T20:00:00.000Z';
const NOW = new Date('2018-04-23T21:00:00.000Z');
const sent: ReceiptFields = { Status__c: 'Sent', Sent_At__c: SENT_AT };

interface D { recipient?: string; deliveryStatus?: string | null; deliveryTime?: string | null; openedStatus?: string | null; openedTime?: string | null }

function receipt(deliveries: D[], id = '<f4a9@clinic.org>') {
  return {
    sourceTrackingId: 'trk-1',
    data: {
      message: {
        id,
        message_deliveries: deliveries.map(({ recipient, ...status }) => ({ recipient, status })),
      },
    },
  };
}

const delivered = (recipient: string, time = 'Mon, 23 Apr 2018 13:27:34 -0700'): D => ({
  recipient, deliveryStatus: 'delivered', deliveryTime: time, openedStatus: 'not opened', openedTime: null,
});

describe('mergeReceipt: status', () => {
  it.each([
    [['delivered'], 'Delivered', true],
    [['delivered via secure portal'], 'Delivered', true],
    [['hard bounced'], 'Bounced', true],
    [['delivered', 'hard bounced'], 'Partially Delivered', true],
    [['Delivered', 'DELIVERED VIA SECURE PORTAL'], 'Delivered', true],
    [['delivered', 'processing'], undefined, false],
    [['TLS not offered, sending via Secure Portal'], undefined, false],
    [['soft bounced'], undefined, false],
    [['soft bounced - mailbox full'], undefined, false],
    [['Internal error. Please check back later.'], undefined, false],
    [['something new'], undefined, false],
  ])('%j → %s', (statuses, status, final) => {
    const r = mergeReceipt(sent, receipt(statuses.map((s, i) => ({ recipient: `r${i}@x.com`, deliveryStatus: s }))), NOW);
    expect(r.final).toBe(final);
    expect(r.update?.Status__c).toBe(status);
  });

  it('counts a soft bounce still soft after the give-up window as bounced', () => {
    const r = receipt([delivered('a@x.com'), { recipient: 'b@x.com', deliveryStatus: 'soft bounced' }]);
    const later = new Date(Date.parse(SENT_AT) + 72 * 3600_000);
    expect(mergeReceipt(sent, r, new Date(later.getTime() - 1)).final).toBe(false);
    expect(mergeReceipt(sent, r, later)).toMatchObject({ final: true, update: { Status__c: 'Partially Delivered' } });
    expect(mergeReceipt(sent, r, new Date(Date.parse(SENT_AT) + 3600_000), { softBounceGiveUpMs: 3600_000 }).final).toBe(true);
  });

  it('sets Delivered_At__c to the latest final delivery time, or now', () => {
    const r = mergeReceipt(sent, receipt([
      delivered('a@x.com', 'Mon, 23 Apr 2018 13:27:34 -0700'),
      { recipient: 'b@x.com', deliveryStatus: 'hard bounced', deliveryTime: 'Mon, 23 Apr 2018 13:29:00 -0700' },
    ]), NOW);
    expect(r.update?.Delivered_At__c).toBe('2018-04-23T20:29:00.000Z');
    const noTimes = mergeReceipt(sent, receipt([{ recipient: 'a@x.com', deliveryStatus: 'delivered' }]), NOW);
    expect(noTimes.update?.Delivered_At__c).toBe(NOW.toISOString());
  });

  it('never moves a final status back to Sent, nor touches Delivered_At__c again', () => {
    const current: ReceiptFields = { Status__c: 'Delivered', Sent_At__c: SENT_AT, Delivered_At__c: '2018-04-23T20:27:34.000Z' };
    const r = mergeReceipt(current, receipt([{ recipient: 'a@x.com', deliveryStatus: 'processing' }]), NOW);
    expect(r.final).toBe(false);
    expect(r.update?.Status__c).toBeUndefined();
    expect(r.update?.Delivered_At__c).toBeUndefined();
    const again = mergeReceipt(current, receipt([delivered('a@x.com', 'Mon, 23 Apr 2018 15:00:00 -0700')]), NOW);
    expect(again.update?.Delivered_At__c).toBeUndefined();
  });

  it('does not change the status of a record that is no longer Sent (e.g. re-queued)', () => {
    const r = mergeReceipt({ ...sent, Status__c: 'Queued' }, receipt([delivered('a@x.com')]), NOW);
    expect(r.final).toBe(true);
    expect(r.update?.Status__c).toBeUndefined();
  });
});

describe('mergeReceipt: fields', () => {
  it('writes Delivery_Details__c with ISO times, absent keys omitted, and the Message-ID', () => {
    const r = mergeReceipt(sent, receipt([delivered('a@x.com'), { recipient: 'b@x.com', deliveryStatus: 'processing' }]), NOW);
    expect(JSON.parse(r.update!.Delivery_Details__c!)).toEqual([
      { recipient: 'a@x.com', deliveryStatus: 'delivered', deliveryTime: '2018-04-23T20:27:34.000Z', openedStatus: 'not opened' },
      { recipient: 'b@x.com', deliveryStatus: 'processing' },
    ]);
    expect(r.update!.Message_Identifier__c).toBe('<f4a9@clinic.org>');
  });

  it('returns only changed fields, and null when nothing changed', () => {
    const first = mergeReceipt(sent, receipt([{ recipient: 'a@x.com', deliveryStatus: 'processing' }]), NOW);
    const after = { ...sent, ...first.update };
    expect(mergeReceipt(after, receipt([{ recipient: 'a@x.com', deliveryStatus: 'processing' }]), NOW).update).toBeNull();
    const changed = mergeReceipt(after, receipt([{ recipient: 'a@x.com', deliveryStatus: 'soft bounced' }]), NOW).update;
    expect(Object.keys(changed!)).toEqual(['Delivery_Details__c']);
  });

  it('treats empty message_deliveries as no change, not final', () => {
    expect(mergeReceipt({ ...sent, Message_Identifier__c: '<f4a9@clinic.org>' }, receipt([]), NOW)).toEqual({ update: null, final: false, opened: false });
  });

  it('sets Opened_At__c from the first open, never overwrites it, and keeps the status', () => {
    const opened = (time: string): D => ({ ...delivered('a@x.com'), openedStatus: 'opened', openedTime: time });
    const current: ReceiptFields = { Status__c: 'Delivered', Sent_At__c: SENT_AT, Delivered_At__c: '2018-04-23T20:27:34.000Z' };
    const r = mergeReceipt(current, receipt([opened('Mon, 23 Apr 2018 13:27:51 -0700')]), NOW);
    expect(r.opened).toBe(true);
    expect(r.update?.Opened_At__c).toBe('2018-04-23T20:27:51.000Z');
    expect(r.update?.Status__c).toBeUndefined();
    const later = mergeReceipt({ ...current, ...r.update }, receipt([opened('Tue, 24 Apr 2018 09:00:00 -0700')]), NOW);
    expect(later.update?.Opened_At__c).toBeUndefined();
    expect(later.opened).toBe(true);
  });

  it('uses now for an open reported without a time', () => {
    const r = mergeReceipt(sent, receipt([{ ...delivered('a@x.com'), openedStatus: 'opened' }]), NOW);
    expect(r.update?.Opened_At__c).toBe(NOW.toISOString());
  });
});

describe('mergeReceipt: shape variants', () => {
  it.each([
    ['undefined', undefined],
    ['a string', 'Service OK'],
    ['no data', { sourceTrackingId: 'x' }],
    ['data null', { data: null }],
    ['message null', { data: { message: null } }],
    ['deliveries not an array', { data: { message: { message_deliveries: 'x' } } }],
    ['entries null', { data: { message: { message_deliveries: [null, 3] } } }],
  ])('%s → no change, not final', (_name, body) => {
    expect(mergeReceipt(sent, body, NOW)).toEqual({ update: null, final: false, opened: false });
  });

  it('reads a message nested one level deeper under data, and flat status fields', () => {
    const body = { data: { data: { message: { id: '<m@x>', message_deliveries: [{ recipient: 'a@x.com', deliveryStatus: 'delivered' }] } } } };
    expect(mergeReceipt(sent, body, NOW)).toMatchObject({ final: true, update: { Status__c: 'Delivered', Message_Identifier__c: '<m@x>' } });
  });

  it('tolerates a status with null fields (not final)', () => {
    const body = { data: { message: { message_deliveries: [{ recipient: 'a@x.com', status: { deliveryStatus: null } }] } } };
    const r = mergeReceipt(sent, body, NOW);
    expect(r.final).toBe(false);
    expect(JSON.parse(r.update!.Delivery_Details__c!)).toEqual([{ recipient: 'a@x.com' }]);
  });

  it('keeps Delivery_Details__c within 32768 characters as valid JSON', () => {
    const many = Array.from({ length: 100 }, (_, i) => ({ recipient: `${'x'.repeat(300)}${i}@x.com`, deliveryStatus: 'processing' }));
    const json = mergeReceipt(sent, receipt(many), NOW).update!.Delivery_Details__c!;
    expect(json.length).toBeLessThanOrEqual(32768);
    expect(JSON.parse(json).length).toBeGreaterThan(50);
  });
});

describe('toIso', () => {
  it.each([
    ['Mon, 23 Apr 2018 13:27:34 -0700', '2018-04-23T20:27:34.000Z'],
    ['2018-04-23T20:27:34Z', '2018-04-23T20:27:34.000Z'],
    ['yesterday-ish', 'yesterday-ish'],
  ])('%s → %s', (input, output) => {
    expect(toIso(input)).toBe(output);
  });
});
