import { afterEach, describe, expect, it } from 'vitest';
import type { Readable } from 'node:stream';
import { MESSAGE, closeOrgs, connect, draft, startOrg } from './org-helpers.js';

afterEach(closeOrgs);

type Rec = Record<string, unknown>;

async function bytes(stream: Readable): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const c of stream) parts.push(Buffer.from(c as Buffer));
  return Buffer.concat(parts);
}

describe('sandbox org Files', () => {
  it('creates a ContentVersion with FirstPublishLocationId: a document, a link to the record, and the bytes back', async () => {
    const org = await startOrg();
    const conn = await connect(org);
    const msg = draft(org);
    const data = Buffer.from(Array.from({ length: 200_000 }, (_, i) => (i * 7) % 256));
    const created = await conn.sobject('ContentVersion').create({
      Title: 'scan', PathOnClient: 'scan.PDF', VersionData: data.toString('base64'), FirstPublishLocationId: msg,
    });
    expect(created.id).toMatch(/^068/);

    const links = await conn.query<Rec>(`SELECT ContentDocumentId, LinkedEntityId FROM ContentDocumentLink WHERE LinkedEntityId = '${msg}'`);
    expect(links.totalSize).toBe(1);
    const docId = links.records[0]!.ContentDocumentId as string;
    expect(docId).toMatch(/^069/);

    const versions = await conn.query<Rec>(
      `SELECT Id, Title, PathOnClient, FileExtension, ContentSize, VersionData FROM ContentVersion WHERE ContentDocumentId = '${docId}' AND IsLatest = true`,
    );
    expect(versions.records[0]).toMatchObject({
      Id: created.id, Title: 'scan', PathOnClient: 'scan.PDF', FileExtension: 'pdf', ContentSize: data.length,
      VersionData: `/services/data/v${org.apiVersion}/sobjects/ContentVersion/${created.id}/VersionData`,
    });
    const doc = await conn.sobject('ContentDocument').retrieve(docId) as Rec;
    expect(doc.LatestPublishedVersionId).toBe(created.id);

    const body = await bytes(conn.sobject('ContentVersion').record(created.id!).blob('VersionData') as unknown as Readable);
    expect(body.equals(data)).toBe(true);
    expect(org.counter.get('rest.versiondata')).toBe(1);
  });

  it('keeps IsLatest and LatestPublishedVersionId on a new version, without a second link', async () => {
    const org = await startOrg();
    const conn = await connect(org);
    const msg = draft(org);
    const v1 = await conn.sobject('ContentVersion').create({ PathOnClient: 'a.txt', VersionData: Buffer.from('one').toString('base64'), FirstPublishLocationId: msg });
    const docId = (org.get('ContentVersion', v1.id!)!.ContentDocumentId) as string;
    const v2 = await conn.sobject('ContentVersion').create({ PathOnClient: 'a.txt', VersionData: Buffer.from('two!').toString('base64'), ContentDocumentId: docId });
    const rows = org.query(`SELECT Id, IsLatest, Title FROM ContentVersion WHERE ContentDocumentId = '${docId}' ORDER BY CreatedDate`);
    expect(rows.map((r) => [r.Id, r.IsLatest])).toEqual(expect.arrayContaining([[v1.id, false], [v2.id, true]]));
    expect(rows[0]!.Title).toBe('a');
    expect(org.get('ContentDocument', docId)).toMatchObject({ LatestPublishedVersionId: v2.id, ContentSize: 4 });
    expect(org.query(`SELECT Id FROM ContentDocumentLink WHERE LinkedEntityId = '${msg}'`)).toHaveLength(1);
  });

  it('requires the file body and path, and drops the links when the record goes', async () => {
    const org = await startOrg();
    const conn = await connect(org);
    const msg = draft(org);
    const res = await conn.sobject('ContentVersion').create([{ Title: 'x' }], { allOrNone: false });
    expect((res[0] as unknown as { errors: Array<{ statusCode: string }> }).errors[0]!.statusCode).toBe('REQUIRED_FIELD_MISSING');
    await conn.sobject('ContentVersion').create({ PathOnClient: 'b.png', VersionData: 'AAEC', FirstPublishLocationId: msg });
    org.remove(MESSAGE, msg);
    expect(org.query(`SELECT Id FROM ContentDocumentLink WHERE LinkedEntityId = '${msg}'`)).toHaveLength(0);
  });
});
