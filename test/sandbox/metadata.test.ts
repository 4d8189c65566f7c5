import { cpSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { XMLParser, XMLValidator } from 'fast-xml-parser';
import { afterAll, describe, expect, it } from 'vitest';
import { STATUSES, ATTEMPT_OUTCOMES } from '../../src/domain/record.js';
import { loadSchema } from '../../src/sandbox/org/schema.js';

/**
 * The SFDX source in config/salesforce against the contract (§1, §2, §6): what an admin
 * deploys is what the worker and the sandbox expect.
 */

const CONFIG = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../config/salesforce');
const APP = path.join(CONFIG, 'force-app/main/default');
const NS = 'http://soap.sforce.com/2006/04/metadata';

type Xml = Record<string, unknown>;
const parser = new XMLParser({ ignoreAttributes: false, parseTagValue: false, isArray: (n) => ['value', 'fieldPermissions', 'objectPermissions', 'userPermissions'].includes(n) });

function read(file: string): { root: string; body: Xml } {
  const doc = parser.parse(readFileSync(file, 'utf8')) as Xml;
  const root = Object.keys(doc).find((k) => k !== '?xml')!;
  return { root, body: doc[root] as Xml };
}
const field = (object: string, name: string) => read(path.join(APP, 'objects', object, 'fields', `${name}.field-meta.xml`)).body;
const object = (name: string) => read(path.join(APP, 'objects', name, `${name}.object-meta.xml`)).body;

interface Spec { type: string; length?: number; unique?: boolean; externalId?: boolean; caseSensitive?: boolean; precision?: number; scale?: number }
const text = (length: number, extra: Partial<Spec> = {}): Spec => ({ type: 'Text', length, ...extra });
const longText = (length: number): Spec => ({ type: 'LongTextArea', length });

const MESSAGE: Record<string, Spec> = {
  Status__c: { type: 'Picklist' },
  To_Address__c: longText(32768), Cc_Address__c: longText(32768), Bcc_Address__c: longText(32768),
  From_Address__c: { type: 'Email' }, From_Name__c: text(255), Reply_To__c: { type: 'Email' }, Subject__c: text(255),
  Html_Body__c: longText(131072), Text_Body__c: longText(131072), Related_To_Id__c: text(18), In_Reply_To__c: text(255),
  Force_Secure_Notification__c: { type: 'Checkbox' }, Allow_Non_TLS__c: { type: 'Checkbox' },
  Tracking_Id__c: text(255, { unique: true, externalId: true }), Message_Identifier__c: text(255),
  Delivery_Details__c: longText(32768), Error__c: text(255), Attempts__c: { type: 'Number', precision: 3, scale: 0 },
  Sent_At__c: { type: 'DateTime' }, Delivered_At__c: { type: 'DateTime' }, Opened_At__c: { type: 'DateTime' },
};
const ATTEMPT: Record<string, Spec> = {
  Message__c: { type: 'MasterDetail' },
  Attempt_Key__c: text(80, { unique: true, externalId: true, caseSensitive: true }),
  Worker__c: text(80), Outcome__c: { type: 'Picklist' }, Tracking_Id__c: text(255), Error__c: text(255),
  Claimed_At__c: { type: 'DateTime' }, Finished_At__c: { type: 'DateTime' },
};

function listXml(dir: string): string[] {
  return readdirSync(dir, { recursive: true, withFileTypes: true })
    .filter((e) => e.isFile() && e.name.endsWith('.xml'))
    .map((e) => path.join(e.parentPath, e.name));
}

describe('SFDX project', () => {
  it('is a deployable project on API 62.0', () => {
    const project = JSON.parse(readFileSync(path.join(CONFIG, 'sfdx-project.json'), 'utf8'));
    expect(project.packageDirectories).toEqual([expect.objectContaining({ path: 'force-app', default: true })]);
    expect(project.sourceApiVersion).toBe('62.0');
  });

  it('every XML file is well-formed Metadata API source', () => {
    const files = listXml(CONFIG);
    expect(files.length).toBeGreaterThan(30);
    for (const file of files) {
      expect(XMLValidator.validate(readFileSync(file, 'utf8')), file).toBe(true);
      expect(read(file).body['@_xmlns'], file).toBe(NS);
    }
  });
});

describe.each([
  ['Secure_EmailMessage__c', MESSAGE],
  ['Secure_Email_Attempt__c', ATTEMPT],
])('%s fields', (obj, spec) => {
  it('has exactly the contract fields', () => {
    const names = readdirSync(path.join(APP, 'objects', obj, 'fields')).map((f) => f.replace('.field-meta.xml', ''));
    expect(names.sort()).toEqual(Object.keys(spec).sort());
  });

  it.each(Object.entries(spec))('%s has its type, length and keys', (name, s) => {
    const f = field(obj, name);
    expect(f.fullName).toBe(name);
    expect(f.type).toBe(s.type);
    if (s.length !== undefined) expect(Number(f.length)).toBe(s.length);
    if (s.precision !== undefined) expect([Number(f.precision), Number(f.scale)]).toEqual([s.precision, s.scale]);
    if (s.type === 'Text') {
      expect(f.unique).toBe(String(s.unique ?? false));
      expect(f.externalId).toBe(String(s.externalId ?? false));
    }
    if (s.caseSensitive !== undefined) expect(f.caseSensitive).toBe(String(s.caseSensitive));
    if (s.type === 'Checkbox') expect(f.defaultValue).toBe('false');
    if (s.type === 'LongTextArea') expect(Number(f.visibleLines)).toBeGreaterThan(0);
  });
});

describe('objects', () => {
  const picklist = (obj: string, name: string) => {
    const valueSet = field(obj, name).valueSet as Xml;
    const values = ((valueSet.valueSetDefinition as Xml).value as Xml[]);
    return { restricted: valueSet.restricted, names: values.map((v) => v.fullName), defaults: values.filter((v) => v.default === 'true').map((v) => v.fullName) };
  };

  it('Status__c is the restricted lifecycle picklist, Draft by default', () => {
    expect(picklist('Secure_EmailMessage__c', 'Status__c')).toEqual({ restricted: 'true', names: [...STATUSES], defaults: ['Draft'] });
  });

  it('Outcome__c is the restricted claim outcome picklist', () => {
    expect(picklist('Secure_Email_Attempt__c', 'Outcome__c')).toMatchObject({ restricted: 'true', names: [...ATTEMPT_OUTCOMES] });
  });

  it('attempts are master-detail children of messages, reached as Attempts', () => {
    expect(field('Secure_Email_Attempt__c', 'Message__c')).toMatchObject({
      type: 'MasterDetail', referenceTo: 'Secure_EmailMessage__c', relationshipName: 'Attempts',
    });
  });

  it('names are auto numbers; the detail object shares its master\'s sharing', () => {
    const message = object('Secure_EmailMessage__c'), attempt = object('Secure_Email_Attempt__c');
    expect(message.nameField).toMatchObject({ type: 'AutoNumber', displayFormat: 'SEM-{00000000}' });
    expect(attempt.nameField).toMatchObject({ type: 'AutoNumber', displayFormat: 'SEA-{00000000}' });
    expect(message).toMatchObject({ sharingModel: 'Private', deploymentStatus: 'Deployed', enableHistory: 'true' });
    expect(attempt).toMatchObject({ sharingModel: 'ControlledByParent', externalSharingModel: 'ControlledByParent' });
  });

  it('fields tracked in history exist only on an object with history enabled, at most 20', () => {
    for (const obj of ['Secure_EmailMessage__c', 'Secure_Email_Attempt__c']) {
      const tracked = Object.keys(obj === 'Secure_EmailMessage__c' ? MESSAGE : ATTEMPT).filter((n) => field(obj, n).trackHistory === 'true');
      if (object(obj).enableHistory !== 'true') expect(tracked).toEqual([]);
      expect(tracked.length).toBeLessThanOrEqual(20);
    }
  });

  it('Change Data Capture is selected for messages', () => {
    const member = read(path.join(APP, 'platformEventChannelMembers', 'ChangeEvents_Secure_EmailMessage_ChangeEvent.platformEventChannelMember-meta.xml'));
    expect(member.root).toBe('PlatformEventChannelMember');
    expect(member.body).toMatchObject({ eventChannel: 'ChangeEvents', selectedEntity: 'Secure_EmailMessage__c' });
  });
});

describe('permission sets', () => {
  const permset = (name: string) => read(path.join(APP, 'permissionsets', `${name}.permissionset-meta.xml`)).body;
  const fieldPerms = (p: Xml) => new Map((p.fieldPermissions as Xml[]).map((f) => [String(f.field), f]));
  const objectPerm = (p: Xml, obj: string) => (p.objectPermissions as Xml[]).find((o) => o.object === obj);
  const deployable = (obj: string, spec: Record<string, Spec>) =>
    Object.keys(spec).filter((n) => spec[n]!.type !== 'MasterDetail').map((n) => `${obj}.${n}`);
  const ALL = [...deployable('Secure_EmailMessage__c', MESSAGE), ...deployable('Secure_Email_Attempt__c', ATTEMPT)];

  it.each(['Secure_Email_Integration', 'Secure_Email_Sender'])('%s names only existing, non-required fields', (name) => {
    const p = permset(name);
    for (const f of fieldPerms(p).keys()) expect(ALL, f).toContain(f);
    for (const o of p.objectPermissions as Xml[]) expect(['Secure_EmailMessage__c', 'Secure_Email_Attempt__c']).toContain(o.object);
  });

  it('the integration user reads and edits every field and sees every record (CDC needs it)', () => {
    const p = permset('Secure_Email_Integration');
    const perms = fieldPerms(p);
    expect([...perms.keys()].sort()).toEqual([...ALL].sort());
    for (const f of perms.values()) expect(f).toMatchObject({ readable: 'true', editable: 'true' });
    for (const obj of ['Secure_EmailMessage__c', 'Secure_Email_Attempt__c']) {
      expect(objectPerm(p, obj)).toMatchObject({ allowRead: 'true', allowCreate: 'true', allowEdit: 'true', viewAllRecords: 'true', modifyAllRecords: 'false' });
    }
    expect(p.userPermissions).toEqual([{ enabled: 'true', name: 'ApiEnabled' }]);
  });

  it('a sender composes messages but cannot write status, tracking or results, nor see others\' messages', () => {
    const p = permset('Secure_Email_Sender');
    const perms = fieldPerms(p);
    const editable = [...perms.values()].filter((f) => f.editable === 'true').map((f) => String(f.field).split('.')[1]).sort();
    expect(editable).toEqual([
      'Bcc_Address__c', 'Cc_Address__c', 'Force_Secure_Notification__c', 'From_Address__c', 'From_Name__c', 'Html_Body__c',
      'In_Reply_To__c', 'Related_To_Id__c', 'Reply_To__c', 'Subject__c', 'Text_Body__c', 'To_Address__c',
    ]);
    for (const f of perms.values()) expect(f.readable).toBe('true');
    expect(objectPerm(p, 'Secure_EmailMessage__c')).toMatchObject({ allowRead: 'true', allowCreate: 'true', allowEdit: 'true', viewAllRecords: 'false' });
    expect(objectPerm(p, 'Secure_Email_Attempt__c')).toMatchObject({ allowRead: 'true', allowCreate: 'false', allowEdit: 'false' });
    expect(p.userPermissions).toBeUndefined();
  });
});

describe('loadSchema', () => {
  const schema = loadSchema();

  it('reads the custom objects with their key prefixes, CDC only where selected', () => {
    expect(schema.objects.Secure_EmailMessage__c).toMatchObject({ keyPrefix: 'a0S', cdc: true, label: 'Secure Email Message' });
    expect(schema.objects.Secure_Email_Attempt__c).toMatchObject({ keyPrefix: 'a0T', cdc: false });
    expect(Object.keys(schema.objects.Secure_EmailMessage__c!.fields)).toEqual(expect.arrayContaining(Object.keys(MESSAGE)));
  });

  it('maps field metadata onto the schema', () => {
    const m = schema.objects.Secure_EmailMessage__c!.fields;
    expect(m.Status__c).toMatchObject({ type: 'Picklist', picklist: { values: [...STATUSES], restricted: true, default: 'Draft' } });
    expect(m.Tracking_Id__c).toMatchObject({ type: 'Text', length: 255, unique: true, externalId: true });
    expect(m.Attempts__c).toMatchObject({ type: 'Number', precision: 3, scale: 0 });
    expect(m.Allow_Non_TLS__c).toMatchObject({ type: 'Checkbox', defaultValue: false });
    expect(m.Html_Body__c).toMatchObject({ type: 'LongTextArea', length: 131072 });
    expect(schema.objects.Secure_Email_Attempt__c!.fields.Message__c).toMatchObject({
      type: 'MasterDetail', referenceTo: 'Secure_EmailMessage__c', relationshipName: 'Message__r', childRelationshipName: 'Attempts', required: true,
    });
  });

  it('adds the standard fields; a detail object has no owner', () => {
    const m = schema.objects.Secure_EmailMessage__c!.fields, a = schema.objects.Secure_Email_Attempt__c!.fields;
    expect(m.Name).toMatchObject({ type: 'AutoNumber', displayFormat: 'SEM-{00000000}', system: true });
    for (const name of ['Id', 'CreatedDate', 'LastModifiedDate', 'SystemModstamp', 'CreatedById', 'LastModifiedById', 'IsDeleted']) {
      expect(m[name]?.system, name).toBe(true);
      expect(a[name]?.system, name).toBe(true);
    }
    expect(m.OwnerId).toMatchObject({ type: 'Lookup', referenceTo: 'User' });
    expect(a.OwnerId).toBeUndefined();
  });

  it('describes the Files objects and User by hand', () => {
    expect(schema.objects.ContentVersion).toMatchObject({ keyPrefix: '068', fields: { VersionData: { type: 'Base64' }, ContentDocumentId: { referenceTo: 'ContentDocument', relationshipName: 'ContentDocument' } } });
    expect(schema.objects.ContentDocument).toMatchObject({ keyPrefix: '069', fields: { LatestPublishedVersionId: { referenceTo: 'ContentVersion', relationshipName: 'LatestPublishedVersion' } } });
    expect(schema.objects.ContentDocumentLink).toMatchObject({ keyPrefix: '06A', fields: { LinkedEntityId: { type: 'Lookup' }, ShareType: {}, Visibility: {} } });
    expect(schema.objects.User).toMatchObject({ keyPrefix: '005', fields: { Username: {}, Name: {} } });
  });

  describe('from another project directory', () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'sfdx-'));
    afterAll(() => rmSync(dir, { recursive: true, force: true }));

    it('reads that directory\'s XML, and caches it', () => {
      cpSync(CONFIG, dir, { recursive: true });
      const extra = path.join(dir, 'force-app/main/default/objects/Secure_EmailMessage__c/fields/Priority__c.field-meta.xml');
      writeFileSync(extra, `<?xml version="1.0" encoding="UTF-8"?>
<CustomField xmlns="${NS}"><fullName>Priority__c</fullName><label>Priority</label><length>20</length><type>Text</type></CustomField>\n`);
      const other = loadSchema(dir);
      expect(other.objects.Secure_EmailMessage__c!.fields.Priority__c).toMatchObject({ type: 'Text', length: 20 });
      expect(schema.objects.Secure_EmailMessage__c!.fields.Priority__c).toBeUndefined();
      expect(loadSchema(dir)).toBe(other);
      expect(loadSchema()).toBe(schema);
    });
  });
});
