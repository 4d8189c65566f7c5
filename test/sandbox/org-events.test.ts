import { afterEach, describe, expect, it } from 'vitest';
import { StreamingExtension } from 'jsforce/api/streaming';
import type { ChangeEventData } from '../../src/sandbox/org/events.js';
import type { SalesforceOrg } from '../../src/sandbox/org/server.js';
import { ATTEMPT, MESSAGE, closeOrgs, connect, draft, startOrg } from './org-helpers.js';

afterEach(closeOrgs);

const CHANNEL = '/data/Secure_EmailMessage__ChangeEvent';

function events(org: SalesforceOrg): ChangeEventData[] {
  const all = org.events.replayFrom(CHANNEL, -2);
  return all === 'invalid' ? [] : all.map((e) => e.data);
}

describe('sandbox org change events', () => {
  it('publishes a UI-made CREATE with every non-empty field and an empty changeOrigin', async () => {
    const org = await startOrg();
    const id = draft(org, { Subject__c: 'Hello' });
    const [e] = events(org);
    expect(e!.schema).toMatch(/^[\w-]{22}$/);
    expect(e!.event.replayId).toBe(1);
    expect(e!.payload.ChangeEventHeader).toMatchObject({
      entityName: MESSAGE, recordIds: [id], changeType: 'CREATE', changeOrigin: '', commitUser: org.adminUserId,
      sequenceNumber: 1, commitNumber: 1, changedFields: [],
    });
    expect(e!.payload).toMatchObject({ Status__c: 'Draft', Subject__c: 'Hello', Name: 'SEM-00000001', CreatedById: org.adminUserId });
    expect(e!.payload.CreatedDate).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.000Z$/);
    expect(e!.payload).not.toHaveProperty('Error__c');
  });

  it('tags a REST write made with Sforce-Call-Options client=sdt-worker, and carries only the changed fields', async () => {
    const org = await startOrg();
    const id = draft(org, { Error__c: 'old error' });
    const conn = await connect(org, { client: 'sdt-worker' });
    await conn.sobject(MESSAGE).update({ Id: id, Status__c: 'Queued', Error__c: null, Subject__c: 'Lab results' });
    const update = events(org)[1]!;
    const h = update.payload.ChangeEventHeader;
    expect(h.changeType).toBe('UPDATE');
    expect(h.changeOrigin).toBe(`com/salesforce/api/rest/${org.apiVersion};client=sdt-worker`);
    expect(h.commitUser).toBe(org.integrationUserId);
    expect(h.changedFields).toEqual(expect.arrayContaining(['Status__c', 'Error__c', 'LastModifiedDate']));
    expect(h.changedFields).not.toContain('Subject__c');
    expect(update.payload).toMatchObject({ Status__c: 'Queued', Error__c: null });
    expect(update.payload).not.toHaveProperty('Subject__c');
    expect(update.payload.LastModifiedDate).toBeTruthy();
  });

  it('merges a collections update that sets the same values on 3 records into one event with 3 recordIds', async () => {
    const org = await startOrg();
    const ids = [draft(org), draft(org), draft(org)];
    const conn = await connect(org, { client: 'sdt-worker' });
    await conn.sobject(MESSAGE).update(ids.map((Id) => ({ Id, Status__c: 'Queued' })));
    const updates = events(org).filter((e) => e.payload.ChangeEventHeader.changeType === 'UPDATE');
    expect(updates).toHaveLength(1);
    expect(updates[0]!.payload.ChangeEventHeader.recordIds).toEqual(ids);

    // Different values in one transaction: one event each, same transaction key, numbered.
    await conn.sobject(MESSAGE).update(ids.map((Id, i) => ({ Id, Attempts__c: i })));
    const last = events(org).slice(-3).map((e) => e.payload.ChangeEventHeader);
    expect(last.map((h) => h.sequenceNumber)).toEqual([1, 2, 3]);
    expect(new Set(last.map((h) => h.transactionKey)).size).toBe(1);
    expect(new Set(last.map((h) => h.commitNumber)).size).toBe(1);
  });

  it('honours client= in a composite subrequest\'s httpHeaders', async () => {
    const org = await startOrg();
    const id = draft(org);
    const conn = await connect(org);
    await conn.requestPost('/composite', {
      compositeRequest: [{
        method: 'PATCH', url: `/services/data/v${org.apiVersion}/sobjects/${MESSAGE}/${id}`, referenceId: 'u',
        body: { Status__c: 'Queued' }, httpHeaders: { 'Sforce-Call-Options': 'client=other-app' },
      }],
    });
    expect(events(org).at(-1)!.payload.ChangeEventHeader.changeOrigin).toBe(`com/salesforce/api/rest/${org.apiVersion};client=other-app`);
  });

  it('publishes DELETE without fields, and nothing for objects without CDC', async () => {
    const org = await startOrg();
    const id = draft(org);
    const conn = await connect(org);
    await conn.sobject(ATTEMPT).create({ Message__c: id, Attempt_Key__c: `${id}:1`, Outcome__c: 'Claimed' });
    expect(events(org)).toHaveLength(1);
    await conn.sobject(MESSAGE).destroy(id);
    const del = events(org)[1]!;
    expect(del.payload.ChangeEventHeader).toMatchObject({ changeType: 'DELETE', recordIds: [id] });
    expect(Object.keys(del.payload)).toEqual(['ChangeEventHeader']);
    // Master-detail: the attempt went with its message.
    expect(org.query(`SELECT Id FROM ${ATTEMPT}`)).toHaveLength(0);
  });

  it('sends long text in an UPDATE as {diff} when diffLongText is on', async () => {
    const org = await startOrg();
    const id = draft(org);
    const conn = await connect(org);
    const long = 'line\n'.repeat(400);
    await conn.sobject(MESSAGE).update({ Id: id, Html_Body__c: long });
    expect(events(org).at(-1)!.payload.Html_Body__c).toBe(long);
    org.control.diffLongText = true;
    await conn.sobject(MESSAGE).update({ Id: id, Html_Body__c: long + 'more' });
    expect(events(org).at(-1)!.payload.Html_Body__c).toEqual({ diff: expect.any(String) });
  });

  it('reaches a jsforce streaming subscriber on the same server (CometD attached to the org)', async () => {
    const org = await startOrg();
    const conn = await connect(org, { client: 'sdt-worker' });
    const received: ChangeEventData[] = [];
    const client = conn.streaming.createClient([new StreamingExtension.Replay(CHANNEL, -1)]) as unknown as {
      subscribe(channel: string, cb: (d: ChangeEventData) => void): PromiseLike<void>;
      disconnect(): void;
    };
    try {
      await client.subscribe(CHANNEL, (d) => received.push(d));
      const { id } = await conn.sobject(MESSAGE).create({ Status__c: 'Queued' });
      await expect.poll(() => received.length, { timeout: 10_000 }).toBe(1);
      expect(received[0]!.payload.ChangeEventHeader).toMatchObject({ recordIds: [id], changeType: 'CREATE' });
      expect(org.apiCalls()).toBe(1); // CometD does not count against the API allocation
    } finally {
      client.disconnect();
    }
  });
});
