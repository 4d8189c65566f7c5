import { afterEach, describe, expect, it } from 'vitest';
import type { SaveResult } from 'jsforce';
import { ATTEMPT, MESSAGE, closeOrgs, connect, draft, failure, startOrg } from './org-helpers.js';

afterEach(closeOrgs);

type Rec = Record<string, unknown>;
type Failed = { success: false; errors: Array<{ statusCode: string; message: string; fields: string[] }> };

const attempt = (messageId: string, key: string) => ({ Message__c: messageId, Attempt_Key__c: key, Outcome__c: 'Claimed' });

describe('sandbox org sObject Collections', () => {
  it('creates and updates records in batches, one result per record', async () => {
    const org = await startOrg();
    const conn = await connect(org);
    const msg = draft(org);
    const created = await conn.sobject(ATTEMPT).create([attempt(msg, `${msg}:1`), attempt(msg, `${msg}:2`)], { allOrNone: false });
    expect(created.map((r) => r.success)).toEqual([true, true]);
    const ids = created.map((r) => (r as { id: string }).id);
    const updated = await conn.sobject(ATTEMPT).update(ids.map((Id) => ({ Id, Outcome__c: 'Posting' })));
    expect(updated).toEqual(ids.map((id) => ({ id, success: true, errors: [] })));
    const rows = await conn.query<Rec>(`SELECT Outcome__c, Message__r.Status__c FROM ${ATTEMPT} WHERE Message__c = '${msg}'`);
    expect(rows.records.map((r) => r.Outcome__c)).toEqual(['Posting', 'Posting']);
    expect(org.counter.snapshot()).toMatchObject({ 'rest.collections.create': 1, 'rest.collections.update': 1 });
  });

  it('lets exactly one of two connections claim the same Attempt_Key__c at once', async () => {
    const org = await startOrg();
    const msg = draft(org);
    const [a, b] = await Promise.all([connect(org), connect(org)]);
    const results = await Promise.all(
      [a, b].map((c) => c.sobject(ATTEMPT).create([attempt(msg, `${msg}:1`)], { allOrNone: false })),
    );
    const flat = results.flat() as SaveResult[];
    const winners = flat.filter((r) => r.success) as Array<{ id: string }>;
    const losers = flat.filter((r) => !r.success) as unknown as Failed[];
    expect(winners).toHaveLength(1);
    expect(losers).toHaveLength(1);
    expect(losers[0]!.errors[0]).toMatchObject({
      statusCode: 'DUPLICATE_VALUE',
      message: `duplicate value found: Attempt_Key__c duplicates value on record with id: ${winners[0]!.id.slice(0, 15)}`,
    });
    expect(org.query(`SELECT Id FROM ${ATTEMPT}`)).toHaveLength(1);
  });

  it('finds duplicates inside one batch too, and compares keys case-sensitively as the metadata says', async () => {
    const org = await startOrg();
    const conn = await connect(org);
    const msg = draft(org);
    const res = await conn.sobject(ATTEMPT).create([attempt(msg, 'k:1'), attempt(msg, 'k:1'), attempt(msg, 'K:1')], { allOrNone: false });
    expect(res.map((r) => r.success)).toEqual([true, false, true]);
    expect((res[1] as unknown as Failed).errors[0]!.statusCode).toBe('DUPLICATE_VALUE');
    // Tracking_Id__c is unique but case-insensitive.
    org.insert(MESSAGE, { Tracking_Id__c: 'abc' });
    const dup = await failure(conn.sobject(MESSAGE).create({ Tracking_Id__c: 'ABC' }));
    expect(dup.errorCode).toBe('DUPLICATE_VALUE');
  });

  it('rolls the whole batch back with allOrNone, reporting ALL_OR_NONE_OPERATION_ROLLED_BACK on the good records', async () => {
    const org = await startOrg();
    const conn = await connect(org);
    const msg = draft(org);
    const res = await conn.sobject(ATTEMPT).create([attempt(msg, 'a'), { ...attempt(msg, 'b'), Outcome__c: 'Bogus' }], { allOrNone: true });
    const body = res as unknown as Failed[];
    expect(body.map((r) => r.errors[0]?.statusCode)).toEqual(['ALL_OR_NONE_OPERATION_ROLLED_BACK', 'INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST']);
    expect(org.query(`SELECT Id FROM ${ATTEMPT}`)).toHaveLength(0);
    expect(org.events.latestReplayId('/data/Secure_EmailMessage__ChangeEvent')).toBe(1); // only the draft's CREATE
  });

  it('refuses more than 200 records in one call', async () => {
    const org = await startOrg();
    const conn = await connect(org);
    const many = Array.from({ length: 201 }, () => ({ Status__c: 'Draft' }));
    const err = await failure(conn.sobject(MESSAGE).create(many, { allOrNone: false }));
    expect(err.errorCode).toBe('EXCEEDED_ID_LIMIT');
    expect(org.query(`SELECT Id FROM ${MESSAGE}`)).toHaveLength(0);
  });
});

describe('sandbox org Composite', () => {
  it('runs subrequests in order, resolving @{ref.id} and @{ref.records[0].Id}', async () => {
    const org = await startOrg();
    const conn = await connect(org);
    const base = `/services/data/v${org.apiVersion}`;
    const res = await conn.requestPost<{ compositeResponse: Array<{ body: any; httpStatusCode: number; referenceId: string; httpHeaders: Rec }> }>('/composite', {
      compositeRequest: [
        { method: 'POST', url: `${base}/sobjects/${MESSAGE}`, referenceId: 'msg', body: { Status__c: 'Draft' } },
        { method: 'POST', url: `${base}/sobjects/${ATTEMPT}`, referenceId: 'att', body: { Message__c: '@{msg.id}', Attempt_Key__c: '@{msg.id}:1', Outcome__c: 'Claimed' } },
        { method: 'GET', url: `${base}/query?q=SELECT+Id,Attempt_Key__c+FROM+${ATTEMPT}`, referenceId: 'q' },
        { method: 'PATCH', url: `${base}/sobjects/${ATTEMPT}/@{q.records[0].Id}`, referenceId: 'upd', body: { Outcome__c: 'Posting' } },
      ],
    });
    const [msg, att, q, upd] = res.compositeResponse;
    expect(msg).toMatchObject({ httpStatusCode: 201, referenceId: 'msg', body: { success: true } });
    expect(att!.httpStatusCode).toBe(201);
    expect(q!.body.records[0].Attempt_Key__c).toBe(`${msg!.body.id}:1`);
    expect(upd).toMatchObject({ httpStatusCode: 204, body: null });
    expect(org.get(ATTEMPT, att!.body.id)?.Outcome__c).toBe('Posting');
    expect(org.counter.get('rest.composite')).toBe(1);
    expect(org.apiCalls()).toBe(1);
  });

  it('with allOrNone, rolls every subrequest back when one fails', async () => {
    const org = await startOrg();
    const conn = await connect(org);
    const base = `/services/data/v${org.apiVersion}`;
    const res = await conn.requestPost<{ compositeResponse: Array<{ body: any; httpStatusCode: number }> }>('/composite', {
      allOrNone: true,
      compositeRequest: [
        { method: 'POST', url: `${base}/sobjects/${MESSAGE}`, referenceId: 'ok', body: { Status__c: 'Draft' } },
        { method: 'POST', url: `${base}/sobjects/${MESSAGE}`, referenceId: 'bad', body: { Status__c: 'Nope' } },
        { method: 'POST', url: `${base}/sobjects/${MESSAGE}`, referenceId: 'after', body: { Status__c: 'Draft' } },
      ],
    });
    expect(res.compositeResponse.map((r) => [r.httpStatusCode, r.body[0]?.errorCode])).toEqual([
      [400, 'PROCESSING_HALTED'],
      [400, 'INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST'],
      [400, 'PROCESSING_HALTED'],
    ]);
    expect(org.query(`SELECT Id FROM ${MESSAGE}`)).toHaveLength(0);
    expect(org.events.latestReplayId('/data/Secure_EmailMessage__ChangeEvent')).toBe(0);
  });
});
