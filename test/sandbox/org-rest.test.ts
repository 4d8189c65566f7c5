import { afterEach, describe, expect, it } from 'vitest';
import { ATTEMPT, MESSAGE, closeOrgs, connect, draft, failure, startOrg } from './org-helpers.js';

afterEach(closeOrgs);

type Rec = Record<string, unknown>;

describe('sandbox org REST', () => {
  it('pages a query through nextRecordsUrl, and jsforce follows it (queryMore and autoFetch)', async () => {
    const org = await startOrg({ queryBatchSize: 5 });
    for (let i = 0; i < 12; i++) draft(org, { Subject__c: `s${i}` });
    const conn = await connect(org);

    const first = await conn.query<Rec>(`SELECT Id, Subject__c FROM ${MESSAGE} ORDER BY Name`);
    expect(first.totalSize).toBe(12);
    expect(first.done).toBe(false);
    expect(first.records).toHaveLength(5);
    expect(first.nextRecordsUrl).toMatch(/\/services\/data\/v62\.0\/query\/01g\w+-5$/);
    const second = await conn.queryMore<Rec>(first.nextRecordsUrl!);
    expect(second.records.map((r) => r.Subject__c)).toEqual(['s5', 's6', 's7', 's8', 's9']);

    const all = await conn.query<Rec>(`SELECT Id FROM ${MESSAGE}`).run({ autoFetch: true, maxFetch: 100 });
    expect(all.records).toHaveLength(12);
    expect(org.counter.get('rest.query.more')).toBeGreaterThanOrEqual(3);
  });

  it('answers a bad query with MALFORMED_QUERY or INVALID_FIELD', async () => {
    const org = await startOrg();
    const conn = await connect(org);
    expect((await failure(conn.query('SELEKT Id FROM Secure_EmailMessage__c'))).errorCode).toBe('MALFORMED_QUERY');
    expect((await failure(conn.query('SELECT Nope__c FROM Secure_EmailMessage__c'))).errorCode).toBe('INVALID_FIELD');
  });

  it('creates, reads (all fields or ?fields=), updates and deletes a record', async () => {
    const org = await startOrg();
    const conn = await connect(org);
    const created = await conn.sobject(MESSAGE).create({ Status__c: 'Draft', Subject__c: 'Hi', Attempts__c: '2' });
    expect(created).toMatchObject({ success: true, errors: [] });
    const id = created.id!;
    expect(id).toMatch(/^a0S\w{15}$/);

    const full = await conn.sobject(MESSAGE).retrieve(id) as Rec;
    expect(full).toMatchObject({ Id: id, Name: 'SEM-00000001', Status__c: 'Draft', Attempts__c: 2, Allow_Non_TLS__c: false, Error__c: null });
    const some = await conn.sobject(MESSAGE).retrieve(id, { fields: ['Status__c'] }) as Rec;
    expect(Object.keys(some).sort()).toEqual(['Status__c', 'attributes']);

    await conn.sobject(MESSAGE).update({ Id: id, Status__c: 'Queued', Subject__c: '' });
    expect(org.get(MESSAGE, id)).toMatchObject({ Status__c: 'Queued', Subject__c: null });
    expect(org.get(MESSAGE, id.slice(0, 15))?.Id).toBe(id);

    await conn.sobject(MESSAGE).destroy(id);
    const gone = await failure(conn.sobject(MESSAGE).retrieve(id));
    expect(gone.errorCode).toMatch(/NOT_FOUND|ENTITY_IS_DELETED/);
    expect(org.counter.snapshot()).toMatchObject({ 'rest.sobject.create': 1, 'rest.sobject.get': 3, 'rest.sobject.update': 1, 'rest.sobject.delete': 1 });
  });

  it('honours If-Unmodified-Since at one-second resolution (412 PRECONDITION_FAILED)', async () => {
    const org = await startOrg();
    const conn = await connect(org);
    const id = draft(org);
    const read = org.get(MESSAGE, id)!.LastModifiedDate as string;
    const readAt = new Date(Date.parse(read.replace('+0000', 'Z'))).toUTCString();

    org.clock.advance(1500);
    org.update(MESSAGE, id, { Subject__c: 'changed by a user' });
    const err = await failure(
      conn.sobject(MESSAGE).update({ Id: id, Status__c: 'Queued' }, { headers: { 'If-Unmodified-Since': readAt } }),
    );
    expect(err.errorCode).toBe('PRECONDITION_FAILED');
    expect(org.get(MESSAGE, id)?.Status__c).toBe('Draft');

    const now = new Date(Date.parse((org.get(MESSAGE, id)!.LastModifiedDate as string).replace('+0000', 'Z'))).toUTCString();
    await conn.sobject(MESSAGE).update({ Id: id, Status__c: 'Queued' }, { headers: { 'If-Unmodified-Since': now } });
    expect(org.get(MESSAGE, id)?.Status__c).toBe('Queued');
  });

  it('rejects bad values with Salesforce-shaped errors naming the field', async () => {
    const org = await startOrg();
    const conn = await connect(org);
    const create = (fields: Rec, object = MESSAGE) => failure(conn.sobject(object).create(fields));
    const cases: Array<[Rec, string, string[] | undefined]> = [
      [{ Status__c: 'Lost' }, 'INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST', ['Status__c']],
      [{ Subject__c: 'x'.repeat(256) }, 'STRING_TOO_LONG', ['Subject__c']],
      [{ From_Address__c: 'not an address' }, 'INVALID_EMAIL_ADDRESS', ['From_Address__c']],
      [{ Attempts__c: 1000 }, 'NUMBER_OUTSIDE_VALID_RANGE', ['Attempts__c']],
      [{ CreatedDate: '2024-01-01T00:00:00Z' }, 'INVALID_FIELD_FOR_INSERT_UPDATE', ['CreatedDate']],
      [{ Name: 'SEM-1' }, 'INVALID_FIELD_FOR_INSERT_UPDATE', ['Name']],
      [{ Nope__c: 1 }, 'INVALID_FIELD', undefined],
      [{ Force_Secure_Notification__c: 'yes' }, 'JSON_PARSER_ERROR', undefined],
      [{ Sent_At__c: 'yesterday' }, 'JSON_PARSER_ERROR', undefined],
    ];
    for (const [fields, code, names] of cases) {
      const err = await create(fields);
      expect(err.errorCode, JSON.stringify(fields)).toBe(code);
      if (names) expect((err.data as { fields: string[] }).fields).toEqual(names);
    }
    const missing = await create({ Attempt_Key__c: 'k' }, ATTEMPT);
    expect(missing.errorCode).toBe('REQUIRED_FIELD_MISSING');
    expect(missing.message).toBe('Required fields are missing: [Message__c]');
    const wrongParent = await create({ Attempt_Key__c: 'k', Message__c: org.integrationUserId }, ATTEMPT);
    expect(wrongParent.errorCode).toBe('FIELD_INTEGRITY_EXCEPTION');
    expect(await conn.query(`SELECT COUNT() FROM ${MESSAGE}`)).toMatchObject({ totalSize: 0 });
  });

  it('stores values as Salesforce does: datetimes normalized, numbers rounded to scale, checkbox defaults', async () => {
    const org = await startOrg();
    const conn = await connect(org);
    const { id } = await conn.sobject(MESSAGE).create({ Sent_At__c: '2025-03-04T05:06:07.891+02:00', Attempts__c: 1.4 });
    const r = await conn.sobject(MESSAGE).retrieve(id!) as Rec;
    expect(r).toMatchObject({ Sent_At__c: '2025-03-04T03:06:07.891+0000', Attempts__c: 1, Force_Secure_Notification__c: false });
  });

  it('puts Sforce-Limit-Info on every response and refuses calls past the daily limit', async () => {
    const org = await startOrg({ dailyApiLimit: 4 });
    const conn = await connect(org);
    await conn.query(`SELECT Id FROM ${MESSAGE}`);
    expect(conn.limitInfo.apiUsage).toEqual({ used: 1, limit: 4 });
    org.control.setApiUsage(4);
    const err = await failure(conn.sobject(MESSAGE).create({ Status__c: 'Draft' }));
    expect(err.errorCode).toBe('REQUEST_LIMIT_EXCEEDED');
    expect(conn.limitInfo.apiUsage).toEqual({ used: 4, limit: 4 });
    org.clock.advance(24 * 3600_000);
    await conn.query(`SELECT Id FROM ${MESSAGE}`);
    expect(conn.limitInfo.apiUsage).toEqual({ used: 1, limit: 4 });
    // The refused call did not count.
    expect(org.apiCalls()).toBe(2);
  });

  it('fails the next calls on demand, and slows every response by the set latency', async () => {
    const org = await startOrg();
    const conn = await connect(org);
    org.control.failNext(1, 500, 'UNKNOWN_EXCEPTION');
    expect((await failure(conn.sobject(MESSAGE).create({ Status__c: 'Draft' }))).errorCode).toBe('UNKNOWN_EXCEPTION');
    expect((await conn.sobject(MESSAGE).create({ Status__c: 'Draft' })).success).toBe(true);
    org.control.setLatency(5);
    expect((await conn.query(`SELECT Id FROM ${MESSAGE}`)).totalSize).toBe(1);
  });

  it('describes objects with Salesforce describe shapes (picklists, unique external ids, lengths)', async () => {
    const org = await startOrg();
    const conn = await connect(org);
    const d = await conn.sobject(MESSAGE).describe();
    expect(d).toMatchObject({ name: MESSAGE, keyPrefix: 'a0S', custom: true });
    const field = (name: string) => d.fields.find((f) => f.name === name)!;
    expect(field('Status__c')).toMatchObject({ type: 'picklist', restrictedPicklist: true });
    expect(field('Status__c').picklistValues?.map((p) => p.value)).toContain('Queued');
    expect(field('To_Address__c')).toMatchObject({ type: 'textarea', length: 32768 });
    expect(field('Tracking_Id__c')).toMatchObject({ type: 'string', unique: true, externalId: true, length: 255 });
    expect(field('Name')).toMatchObject({ autoNumber: true, createable: false });
    expect(field('Sent_At__c').type).toBe('datetime');
    const a = await conn.sobject(ATTEMPT).describe();
    expect(a.fields.find((f) => f.name === 'Attempt_Key__c')).toMatchObject({ unique: true, externalId: true, caseSensitive: true });
    expect(a.fields.find((f) => f.name === 'Message__c')).toMatchObject({ type: 'reference', referenceTo: [MESSAGE] });
  });

  it('lists API versions without a session', async () => {
    const org = await startOrg();
    const res = await fetch(`${org.url}/services/data/`);
    const versions = (await res.json()) as Array<{ version: string; label: string }>;
    expect(versions.at(-1)).toEqual({ version: '62.0', label: "Winter '25", url: '/services/data/v62.0' });
  });
});
