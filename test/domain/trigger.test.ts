import { describe, expect, it } from 'vitest';
import { decideTrigger } from '../../src/domain/trigger.js';

const CLIENT = 'sdt-worker';
const IDS = ['a0B000000000001AAA', 'a0B000000000002AAA'];

function event(header: Record<string, unknown>, fields: Record<string, unknown> = {}, replayId = 7) {
  return {
    schema: 'abc',
    payload: {
      ChangeEventHeader: {
        entityName: 'Secure_EmailMessage__c',
        recordIds: IDS,
        changeOrigin: 'com/salesforce/api/rest/62.0;client=someone-else',
        transactionKey: 't',
        sequenceNumber: 1,
        commitTimestamp: 1,
        commitNumber: 1,
        commitUser: '005000000000001AAA',
        changedFields: [],
        ...header,
      },
      ...fields,
    },
    event: { replayId },
  };
}

describe('decideTrigger', () => {
  it.each([
    ['CREATE as Queued', event({ changeType: 'CREATE' }, { Status__c: 'Queued', To_Address__c: 'x' }), 'send'],
    ['CREATE as Draft', event({ changeType: 'CREATE' }, { Status__c: 'Draft' }), 'ignore'],
    ['CREATE without status', event({ changeType: 'CREATE' }, {}), 'ignore'],
    ['UPDATE to Queued', event({ changeType: 'UPDATE', changedFields: ['Status__c', 'LastModifiedDate'] }, { Status__c: 'Queued' }), 'send'],
    ['UPDATE to Queued from a final status (resend)', event({ changeType: 'UPDATE', changedFields: ['Status__c'] }, { Status__c: 'Queued' }), 'send'],
    ['UPDATE to Draft', event({ changeType: 'UPDATE', changedFields: ['Status__c'] }, { Status__c: 'Draft' }), 'ignore'],
    ['UPDATE to Sent', event({ changeType: 'UPDATE', changedFields: ['Status__c'] }, { Status__c: 'Sent' }), 'ignore'],
    ['UPDATE of another field while Queued', event({ changeType: 'UPDATE', changedFields: ['Subject__c'] }, { Subject__c: 's', Status__c: 'Queued' }), 'ignore'],
    ['UPDATE with a long text diff only', event({ changeType: 'UPDATE', changedFields: ['Html_Body__c'] }, { Html_Body__c: { diff: '@@' } }), 'ignore'],
    ['UPDATE without changedFields, status in payload', event({ changeType: 'UPDATE', changedFields: undefined }, { Status__c: 'Queued' }), 'send'],
    ['UPDATE listing Status__c but no value', event({ changeType: 'UPDATE', changedFields: ['Status__c'] }, {}), 'reread'],
    ['UPDATE with a diff-encoded status', event({ changeType: 'UPDATE', changedFields: ['Status__c'] }, { Status__c: { diff: 'x' } }), 'reread'],
    ['DELETE', event({ changeType: 'DELETE' }), 'ignore'],
    ['UNDELETE', event({ changeType: 'UNDELETE' }), 'ignore'],
    ['GAP_UPDATE', event({ changeType: 'GAP_UPDATE' }), 'reread'],
    ['GAP_CREATE', event({ changeType: 'GAP_CREATE' }), 'reread'],
    ['GAP_OVERFLOW', event({ changeType: 'GAP_OVERFLOW', recordIds: ['000000000000000AAA'] }), 'resync'],
  ])('%s → %s', (_name, data, kind) => {
    const decision = decideTrigger(data, CLIENT);
    expect(decision.kind).toBe(kind);
    expect(decision.replayId).toBe(7);
    if (decision.kind === 'send' || decision.kind === 'reread') expect(decision.recordIds).toEqual(IDS);
  });

  it("never sends on the worker's own writes, even a change to Queued", () => {
    const own = event(
      { changeType: 'UPDATE', changedFields: ['Status__c'], changeOrigin: `com/salesforce/api/rest/62.0;client=${CLIENT}` },
      { Status__c: 'Queued' },
    );
    expect(decideTrigger(own, CLIENT)).toMatchObject({ kind: 'ignore', reason: "the worker's own write" });
    // another client whose name merely ends like ours is not us
    const other = event({ changeType: 'CREATE', changeOrigin: `x;client=not-${CLIENT}` }, { Status__c: 'Queued' });
    expect(decideTrigger(other, CLIENT).kind).toBe('send');
  });

  it('treats the integration user as ours only when asked to', () => {
    const data = event({ changeType: 'CREATE', changeOrigin: '', commitUser: '005INTEGRATION' }, { Status__c: 'Queued' });
    expect(decideTrigger(data, CLIENT).kind).toBe('send');
    expect(decideTrigger(data, { clientName: CLIENT, integrationUserId: '005INTEGRATION' }).kind).toBe('ignore');
  });

  it('deduplicates record ids', () => {
    const data = event({ changeType: 'CREATE', recordIds: ['a', 'a', 'b'] }, { Status__c: 'Queued' });
    expect(decideTrigger(data, CLIENT)).toMatchObject({ kind: 'send', recordIds: ['a', 'b'] });
  });

  it.each([
    ['null', null],
    ['a string', 'hello'],
    ['no payload', { event: { replayId: 1 } }],
    ['no header', { payload: { Status__c: 'Queued' } }],
    ['header is an array', { payload: { ChangeEventHeader: [] } }],
    ['changeType missing', event({ changeType: undefined }, { Status__c: 'Queued' })],
    ['recordIds not an array', event({ changeType: 'CREATE', recordIds: 'a0B' }, { Status__c: 'Queued' })],
    ['recordIds empty', event({ changeType: 'CREATE', recordIds: [] }, { Status__c: 'Queued' })],
    ['recordIds with a number', event({ changeType: 'CREATE', recordIds: ['a', 1] }, { Status__c: 'Queued' })],
    ['another object', event({ changeType: 'CREATE', entityName: 'Account' }, { Status__c: 'Queued' })],
  ])('malformed (%s) → ignore with a reason, no throw', (_name, data) => {
    const decision = decideTrigger(data, CLIENT);
    expect(decision.kind).toBe('ignore');
    if (decision.kind === 'ignore') expect(decision.reason.length).toBeGreaterThan(0);
  });

  it('reports a missing replayId as null', () => {
    const data = event({ changeType: 'CREATE' }, { Status__c: 'Queued' }) as Record<string, unknown>;
    delete data.event;
    expect(decideTrigger(data, CLIENT)).toMatchObject({ kind: 'send', replayId: null });
  });
});
