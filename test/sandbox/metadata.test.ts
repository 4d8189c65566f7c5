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

  it('a sender composes and queues messages but cannot write tracking or results, nor see others\' messages', () => {
    const p = permset('Secure_Email_Sender');
    const perms = fieldPerms(p);
    const editable = [...perms.values()].filter((f) => f.editable === 'true').map((f) => String(f.field).split('.')[1]).sort();
    // Status__c is editable only so that Send Securely can queue (see 'Send Securely' below);
    // the validation rule keeps every other status to the integration.
    expect(editable).toEqual([
      'Bcc_Address__c', 'Cc_Address__c', 'Force_Secure_Notification__c', 'From_Address__c', 'From_Name__c', 'Html_Body__c',
      'In_Reply_To__c', 'Related_To_Id__c', 'Reply_To__c', 'Status__c', 'Subject__c', 'Text_Body__c', 'To_Address__c',
    ]);
    for (const f of perms.values()) expect(f.readable).toBe('true');
    expect(objectPerm(p, 'Secure_EmailMessage__c')).toMatchObject({ allowRead: 'true', allowCreate: 'true', allowEdit: 'true', viewAllRecords: 'false' });
    expect(objectPerm(p, 'Secure_Email_Attempt__c')).toMatchObject({ allowRead: 'true', allowCreate: 'false', allowEdit: 'false' });
    expect(p.userPermissions).toBeUndefined();
    expect(p.customPermissions).toBeUndefined();
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

// ---- the admin's side: files, layouts, list views, the Send Securely action ----

/** Every metadata file must sit where `sf project deploy` looks for its type, under its type's suffix. */
const SOURCE_SHAPES: Array<[RegExp, string]> = [
  [/^objects\/(\w+)\/\1\.object-meta\.xml$/, 'CustomObject'],
  [/^objects\/\w+\/fields\/\w+\.field-meta\.xml$/, 'CustomField'],
  [/^objects\/\w+\/listViews\/\w+\.listView-meta\.xml$/, 'ListView'],
  [/^objects\/\w+\/compactLayouts\/\w+\.compactLayout-meta\.xml$/, 'CompactLayout'],
  [/^objects\/\w+\/validationRules\/\w+\.validationRule-meta\.xml$/, 'ValidationRule'],
  [/^layouts\/\w+__c-[\w ]+\.layout-meta\.xml$/, 'Layout'],
  [/^quickActions\/\w+__c\.\w+\.quickAction-meta\.xml$/, 'QuickAction'],
  [/^tabs\/\w+__c\.tab-meta\.xml$/, 'CustomTab'],
  [/^permissionsets\/\w+\.permissionset-meta\.xml$/, 'PermissionSet'],
  [/^customPermissions\/\w+\.customPermission-meta\.xml$/, 'CustomPermission'],
  [/^platformEventChannelMembers\/\w+\.platformEventChannelMember-meta\.xml$/, 'PlatformEventChannelMember'],
];

/** fast-xml-parser gives one child as an object, several as an array, an empty element as ''. */
const arr = (x: unknown): Xml[] => (Array.isArray(x) ? x : x === undefined || x === '' ? [] : [x]) as Xml[];
const strings = (x: unknown): string[] => (Array.isArray(x) ? x : x === undefined ? [] : [x]).map(String);
const ui = (...parts: string[]) => read(path.join(APP, ...parts));
const MESSAGE_LAYOUT = 'Secure_EmailMessage__c-Secure Email Message Layout.layout-meta.xml';
const ATTEMPT_LAYOUT = 'Secure_Email_Attempt__c-Secure Email Attempt Layout.layout-meta.xml';
const ACTION = 'Secure_EmailMessage__c.Send_Securely.quickAction-meta.xml';
const RULE = 'Only_Integration_Sets_Delivery_Status';
const SET_STATUS = 'Secure_Email_Set_Delivery_Status';

/** List views and related lists name standard fields by their own column names. */
const COLUMN_FIELDS: Record<string, string> = { NAME: 'Name', 'OWNER.ALIAS': 'OwnerId', LAST_UPDATE: 'LastModifiedDate', CREATED_DATE: 'CreatedDate' };

function layoutSections(body: Xml) {
  return arr(body.layoutSections).map((s) => ({
    label: String(s.label),
    items: arr(s.layoutColumns).flatMap((c) => arr(c.layoutItems)).map((i) => ({ field: String(i.field), behavior: String(i.behavior) })),
  }));
}

/** Every field a UI file shows, filters on or sets, with the object it belongs to. */
function referencedFields(): Array<{ file: string; object: string; field: string }> {
  const refs: Array<{ file: string; object: string; field: string }> = [];
  const add = (file: string, object: string, fields: string[]) => {
    for (const f of fields) refs.push({ file, object, field: COLUMN_FIELDS[f] ?? f });
  };
  for (const file of readdirSync(path.join(APP, 'layouts'))) {
    const object = file.split('-')[0]!;
    const body = ui('layouts', file).body;
    add(file, object, layoutSections(body).flatMap((s) => s.items.map((i) => i.field)));
    for (const rl of arr(body.relatedLists).filter((r) => String(r.relatedList).includes('.'))) {
      const [child, lookup] = String(rl.relatedList).split('.') as [string, string];
      add(file, child, [lookup, ...strings(rl.fields), ...strings(rl.sortField)]);
    }
  }
  for (const object of ['Secure_EmailMessage__c', 'Secure_Email_Attempt__c']) {
    for (const kind of ['listViews', 'compactLayouts']) {
      for (const file of readdirSync(path.join(APP, 'objects', object, kind))) {
        const body = ui('objects', object, kind, file).body;
        add(file, object, [...strings(body.columns), ...strings(body.fields), ...arr(body.filters).map((f) => String(f.field))]);
      }
    }
  }
  const action = ui('quickActions', ACTION).body;
  const layout = action.quickActionLayout as Xml;
  add(ACTION, 'Secure_EmailMessage__c', [
    ...arr(layout.quickActionLayoutColumns).flatMap((c) => arr(c.quickActionLayoutItems)).map((i) => String(i.field)),
    ...arr(action.fieldOverrides).map((o) => String(o.field)),
  ]);
  return refs;
}

/**
 * Evaluates a validation rule's error condition for one save, as Salesforce would: true means
 * the save is refused. Covers the functions the rule uses; anything else fails the parse.
 */
function refuses(formula: string, save: { isNew: boolean; from?: string; to: string; permissions: string[] }): boolean {
  const js = formula
    .replace(/\$Permission\.(\w+)/g, (_, name) => `perm(${JSON.stringify(name)})`)
    .replace(/ISPICKVAL\(\s*Status__c\s*,\s*"([^"]*)"\s*\)/g, (_, v) => `(to === ${JSON.stringify(v)})`)
    .replace(/ISCHANGED\(\s*Status__c\s*\)/g, '(from !== to)')
    .replace(/ISNEW\(\)/g, 'isNew')
    .replace(/\bAND\(/g, 'and(').replace(/\bOR\(/g, 'or(').replace(/\bNOT\(/g, 'not(');
  if (/[A-Z]{3,}\(|__c(?![^"]*")/.test(js.replace(/"[^"]*"/g, '""'))) throw new Error(`formula uses more than this evaluator knows: ${js}`);
  const fn = new Function('and', 'or', 'not', 'perm', 'isNew', 'from', 'to', `return (${js});`);
  return fn(
    (...a: boolean[]) => a.every(Boolean), (...a: boolean[]) => a.some(Boolean), (a: boolean) => !a,
    (name: string) => save.permissions.includes(name), save.isNew, save.from, save.to,
  ) as boolean;
}

describe('deployable admin metadata', () => {
  const schema = loadSchema();
  const fieldsOf = (object: string) => schema.objects[object]!.fields;

  it('every file sits in its type\'s folder under its type\'s suffix, with that root element', () => {
    const files = readdirSync(APP, { recursive: true, withFileTypes: true })
      .filter((e) => e.isFile())
      .map((e) => path.relative(APP, path.join(e.parentPath, e.name)).split(path.sep).join('/'));
    for (const file of files) {
      const shape = SOURCE_SHAPES.find(([re]) => re.test(file));
      expect(shape, `${file} is not where Metadata API source format puts it`).toBeDefined();
      expect(read(path.join(APP, file)).root, file).toBe(shape![1]);
    }
    for (const type of ['Layout', 'QuickAction', 'CustomTab', 'ListView', 'CompactLayout', 'ValidationRule', 'CustomPermission']) {
      expect(files.some((f) => SOURCE_SHAPES.find(([re]) => re.test(f))![1] === type), type).toBe(true);
    }
  });

  it('named components carry their file\'s name, and descriptions fit Salesforce\'s 255 characters', () => {
    for (const file of listXml(APP)) {
      const { body } = read(file);
      const base = path.basename(file).replace(/\.[A-Za-z]+-meta\.xml$/, '');
      if (body.fullName !== undefined && !file.includes(`${path.sep}fields${path.sep}`)) expect(body.fullName, file).toBe(base);
      if (body.description !== undefined) expect(String(body.description).length, file).toBeLessThanOrEqual(255);
    }
  });

  it('every field a layout, list view, compact layout or the action names exists on its object', () => {
    const refs = referencedFields();
    expect(refs.length).toBeGreaterThan(60);
    for (const { file, object, field } of refs) expect(fieldsOf(object), `${file}: ${object}.${field}`).toHaveProperty([field]);
  });

  it('list view filters on picklists use values of the picklist', () => {
    for (const object of ['Secure_EmailMessage__c', 'Secure_Email_Attempt__c']) {
      for (const file of readdirSync(path.join(APP, 'objects', object, 'listViews'))) {
        for (const f of arr(ui('objects', object, 'listViews', file).body.filters)) {
          const schemaField = fieldsOf(object)[String(f.field)]!;
          if (schemaField.type !== 'Picklist') continue;
          for (const v of strings(f.value)[0]!.split(',')) expect(schemaField.picklist!.values, `${file}: ${v}`).toContain(v);
        }
      }
    }
  });

  it('messages have the list views an admin works from', () => {
    const views = (object: string) => Object.fromEntries(readdirSync(path.join(APP, 'objects', object, 'listViews')).map((f) => {
      const { body } = ui('objects', object, 'listViews', f);
      return [String(body.fullName), arr(body.filters).map((x) => [x.field, x.operation, strings(x.value)[0]])];
    }));
    expect(views('Secure_EmailMessage__c')).toEqual({
      All: [],
      Queued_or_Sending: [['Status__c', 'equals', 'Queued,Sending']],
      Failed: [['Status__c', 'equals', 'Failed']],
      Delivered_or_Opened_Recently: [
        ['Status__c', 'equals', 'Sent,Delivered,Partially Delivered'],
        ['Delivered_At__c', 'equals', 'LAST_N_DAYS:7'],
        ['Opened_At__c', 'equals', 'LAST_N_DAYS:7'],
      ],
    });
    expect(views('Secure_Email_Attempt__c')).toEqual({ All: [], Unknown_Outcome: [['Outcome__c', 'equals', 'Unknown']] });
  });

  it('the message layout shows every field; the Delivery section is read-only and complete', () => {
    const body = ui('layouts', MESSAGE_LAYOUT).body;
    const sections = layoutSections(body);
    const shown = sections.flatMap((s) => s.items.map((i) => i.field));
    expect(shown).toEqual(expect.arrayContaining(Object.keys(MESSAGE)));
    expect(new Set(shown).size).toBe(shown.length);
    const delivery = sections.find((s) => s.label === 'Delivery')!;
    expect(delivery.items.map((i) => i.field).sort()).toEqual([
      'Attempts__c', 'Delivered_At__c', 'Delivery_Details__c', 'Error__c', 'Message_Identifier__c', 'Opened_At__c', 'Sent_At__c', 'Status__c', 'Tracking_Id__c',
    ]);
    for (const item of delivery.items) expect(item, item.field).toMatchObject({ behavior: 'Readonly' });
    expect(arr(body.relatedLists).map((r) => r.relatedList)).toContain('Secure_Email_Attempt__c.Message__c');
    const actions = arr((body.platformActionList as Xml).platformActionListItems);
    expect(actions[0]).toMatchObject({ actionName: 'Secure_EmailMessage__c.Send_Securely', actionType: 'QuickAction' });
  });

  it('the attempt layout is read-only but for its required master', () => {
    const items = layoutSections(ui('layouts', ATTEMPT_LAYOUT).body).flatMap((s) => s.items);
    expect(items.map((i) => i.field)).toEqual(expect.arrayContaining(Object.keys(ATTEMPT)));
    for (const i of items) expect(i.behavior, i.field).toBe(i.field === 'Message__c' ? 'Required' : 'Readonly');
  });

  it('each object uses its compact layout, which leads with the record name', () => {
    for (const object of ['Secure_EmailMessage__c', 'Secure_Email_Attempt__c']) {
      const assigned = String(read(path.join(APP, 'objects', object, `${object}.object-meta.xml`)).body.compactLayoutAssignment);
      const compact = ui('objects', object, 'compactLayouts', `${assigned}.compactLayout-meta.xml`).body;
      expect(strings(compact.fields)[0]).toBe('Name');
    }
  });

  it('senders get the tab', () => {
    expect(ui('tabs', 'Secure_EmailMessage__c.tab-meta.xml').body).toMatchObject({ customObject: 'true', motif: expect.stringMatching(/^Custom\d+: /) });
    const tabs = arr(ui('permissionsets', 'Secure_Email_Sender.permissionset-meta.xml').body.tabSettings);
    expect(tabs).toEqual([{ tab: 'Secure_EmailMessage__c', visibility: 'Visible' }]);
  });
});

describe('Send Securely', () => {
  const action = ui('quickActions', ACTION).body;
  const sender = ui('permissionsets', 'Secure_Email_Sender.permissionset-meta.xml').body;
  const integration = ui('permissionsets', 'Secure_Email_Integration.permissionset-meta.xml').body;
  const rule = ui('objects', 'Secure_EmailMessage__c', 'validationRules', `${RULE}.validationRule-meta.xml`).body;
  const formula = String(rule.errorConditionFormula);
  const granted = (p: Xml) => arr(p.customPermissions).filter((c) => c.enabled === 'true').map((c) => String(c.name));
  const senderSaves = (save: { isNew: boolean; from?: string; to: string }) => !refuses(formula, { ...save, permissions: granted(sender) });
  const workerSaves = (save: { isNew: boolean; from?: string; to: string }) => !refuses(formula, { ...save, permissions: granted(integration) });

  it('is an Update action that sets Status__c to exactly Queued, a value of the restricted picklist', () => {
    expect(action.type).toBe('Update');
    expect(arr(action.fieldOverrides)).toEqual([{ field: 'Status__c', literalValue: 'Queued' }]);
    const status = loadSchema().objects.Secure_EmailMessage__c!.fields.Status__c!;
    expect(status.picklist).toMatchObject({ restricted: true });
    expect(status.picklist!.values).toContain('Queued');
    expect(STATUSES).toContain('Queued');
  });

  it('asks the sender for nothing: its layout only shows fields read-only', () => {
    const items = arr((action.quickActionLayout as Xml).quickActionLayoutColumns).flatMap((c) => arr(c.quickActionLayoutItems));
    expect(items.length).toBeGreaterThan(0);
    for (const i of items) expect(i.uiBehavior, String(i.field)).toBe('Readonly');
  });

  // A predefined value is saved with the clicking user's field-level security, so the
  // sender needs edit access on Status__c itself (README: "Why senders can edit Status__c").
  it('works for a sender: edit access to the object and to Status__c', () => {
    const status = arr(sender.fieldPermissions).find((f) => f.field === 'Secure_EmailMessage__c.Status__c');
    expect(status).toMatchObject({ readable: 'true', editable: 'true' });
    expect(arr(sender.objectPermissions).find((o) => o.object === 'Secure_EmailMessage__c')).toMatchObject({ allowEdit: 'true' });
  });

  it('the validation rule is active and exempts only the integration, through a deployed custom permission', () => {
    expect(rule).toMatchObject({ active: 'true', errorDisplayField: 'Status__c' });
    expect(String(rule.errorMessage).length).toBeLessThanOrEqual(255);
    expect(formula).toContain(`$Permission.${SET_STATUS}`);
    expect(read(path.join(APP, 'customPermissions', `${SET_STATUS}.customPermission-meta.xml`)).root).toBe('CustomPermission');
    expect(granted(integration)).toEqual([SET_STATUS]);
    expect(granted(sender)).toEqual([]);
  });

  it('lets a sender queue a draft, resend a failed or delivered message, and create drafts or queued messages', () => {
    expect(senderSaves({ isNew: false, from: 'Draft', to: 'Queued' })).toBe(true);
    expect(senderSaves({ isNew: false, from: 'Failed', to: 'Queued' })).toBe(true);
    expect(senderSaves({ isNew: false, from: 'Delivered', to: 'Queued' })).toBe(true);
    expect(senderSaves({ isNew: false, from: 'Sent', to: 'Sent' })).toBe(true); // editing other fields
    expect(senderSaves({ isNew: true, to: 'Draft' })).toBe(true);
    expect(senderSaves({ isNew: true, to: 'Queued' })).toBe(true);
  });

  it('refuses a sender every other status, which the worker may still write', () => {
    for (const to of STATUSES.filter((s) => s !== 'Queued')) {
      expect(senderSaves({ isNew: false, from: 'Queued', to }), `Queued → ${to}`).toBe(false);
      expect(workerSaves({ isNew: false, from: 'Queued', to }), `worker Queued → ${to}`).toBe(true);
    }
    for (const to of STATUSES.filter((s) => s !== 'Draft' && s !== 'Queued')) {
      expect(senderSaves({ isNew: true, to }), `new ${to}`).toBe(false);
    }
    expect(senderSaves({ isNew: false, from: 'Sent', to: 'Draft' })).toBe(false);
  });
});
