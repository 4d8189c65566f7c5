import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { checksum, normalizeId, IdAllocator } from '../../src/sandbox/org/ids.js';
import { OrgDb } from '../../src/sandbox/org/db.js';
import { SaveFailure } from '../../src/sandbox/org/fields.js';
import { loadSchema } from '../../src/sandbox/org/schema.js';
import { SandboxClock } from '../../src/sandbox/clock.js';
import { ChangeEventLog } from '../../src/sandbox/org/events.js';

const UI = { userId: '005000000000001AAA', changeOrigin: '' };

describe('record ids', () => {
  it('adds the real checksum suffix (0015000000Gv7qJ → …AAR)', () => {
    expect(checksum('0015000000Gv7qJ')).toBe('AAR');
    expect(normalizeId('0015000000Gv7qJ')).toBe('0015000000Gv7qJAAR');
    expect(normalizeId('0015000000Gv7qJaar')).toBe('0015000000Gv7qJAAR');
    expect(normalizeId('0015000000Gv7qJAAA')).toBeUndefined();
    expect(normalizeId('not-an-id')).toBeUndefined();
  });

  it('hands out distinct 18-character ids whose 15-character forms differ only by case at most', () => {
    const ids = new IdAllocator();
    const seen = new Set<string>();
    fc.assert(fc.property(fc.constant(null), () => {
      const id = ids.allocate('a0S');
      expect(id).toMatch(/^a0S[0-9A-Za-z]{12}[A-Z0-5]{3}$/);
      expect(normalizeId(id.slice(0, 15))).toBe(id);
      expect(seen.has(id.toLowerCase())).toBe(false);
      seen.add(id.toLowerCase());
    }), { numRuns: 500 });
  });
});

describe('record store transactions', () => {
  const db = () => new OrgDb(loadSchema(), { clock: new SandboxClock(), events: new ChangeEventLog() });

  it('undoes every write, unique key and change event of a transaction that throws', () => {
    const store = db();
    const msg = store.transaction(UI, (tx) => tx.insert('Secure_EmailMessage__c', { Status__c: 'Draft' }));
    expect(() =>
      store.transaction(UI, (tx) => {
        tx.insert('Secure_Email_Attempt__c', { Message__c: msg, Attempt_Key__c: 'k' });
        tx.update('Secure_EmailMessage__c', msg, { Status__c: 'Sending' });
        throw new Error('crash');
      }),
    ).toThrow('crash');
    expect([...store.rows('Secure_Email_Attempt__c')]).toHaveLength(0);
    expect(store.find(msg)?.row.Status__c).toBe('Draft');
    // The key is free again.
    store.transaction(UI, (tx) => tx.insert('Secure_Email_Attempt__c', { Message__c: msg, Attempt_Key__c: 'k' }));
    expect(() => store.transaction(UI, (tx) => tx.insert('Secure_Email_Attempt__c', { Message__c: msg, Attempt_Key__c: 'k' })))
      .toThrow(SaveFailure);
  });

  it('frees a unique value when the record holding it changes it', () => {
    const store = db();
    const a = store.transaction(UI, (tx) => tx.insert('Secure_EmailMessage__c', { Tracking_Id__c: 't1' }));
    store.transaction(UI, (tx) => tx.update('Secure_EmailMessage__c', a, { Tracking_Id__c: 't2' }));
    const b = store.transaction(UI, (tx) => tx.insert('Secure_EmailMessage__c', { Tracking_Id__c: 't1' }));
    expect(store.find(b)?.row.Tracking_Id__c).toBe('t1');
  });
});
