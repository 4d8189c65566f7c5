import { existsSync, readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { XMLParser } from 'fast-xml-parser';

/**
 * The sandbox org's schema, read from the SFDX source in config/salesforce so the sandbox
 * and the deployable metadata cannot drift. Standard objects the worker touches (Files)
 * are described here by hand, as Salesforce defines them.
 */

export type FieldType =
  | 'Id' | 'Text' | 'TextArea' | 'LongTextArea' | 'Html' | 'Email' | 'Url' | 'Phone'
  | 'Picklist' | 'Checkbox' | 'Number' | 'Date' | 'DateTime' | 'AutoNumber'
  | 'MasterDetail' | 'Lookup' | 'Base64';

export interface FieldSchema {
  name: string;
  type: FieldType;
  label?: string;
  length?: number;
  precision?: number;
  scale?: number;
  required?: boolean;
  unique?: boolean;
  caseSensitive?: boolean;
  externalId?: boolean;
  /** Picklist values, and whether the picklist is restricted. */
  picklist?: { values: string[]; restricted: boolean; default?: string };
  /** For MasterDetail / Lookup: the parent object, and the relationship name (`Message__r`). */
  referenceTo?: string;
  relationshipName?: string;
  /** For MasterDetail / Lookup: the parent's name for its children (`Attempts` → `Attempts__r`). */
  childRelationshipName?: string;
  /** AutoNumber display format, e.g. `SEM-{00000000}`. */
  displayFormat?: string;
  defaultValue?: string | boolean | number;
  /** Standard audit fields the org maintains itself (Id, CreatedDate, …): not writable. */
  system?: boolean;
}

export interface ObjectSchema {
  name: string;
  label: string;
  /** 3-character Id prefix, e.g. `a00`. */
  keyPrefix: string;
  fields: Record<string, FieldSchema>;
  /** Change Data Capture enabled (a PlatformEventChannelMember exists). */
  cdc: boolean;
}

export interface OrgSchema {
  objects: Record<string, ObjectSchema>;
}

/** Id prefixes of the custom objects, as the sandbox org assigns them. */
const KEY_PREFIXES: Record<string, string> = {
  Secure_EmailMessage__c: 'a0S',
  Secure_Email_Attempt__c: 'a0T',
};

const PROJECT_FILE = path.join('config', 'salesforce', 'sfdx-project.json');
const cache = new Map<string, OrgSchema>();

/**
 * Reads the org schema from the SFDX project in `configDir` (default: the repository's
 * `config/salesforce`, found by walking up from this module, so it works from `src/` and
 * from `dist/src/`). Parsed once per directory.
 */
export function loadSchema(configDir?: string): OrgSchema {
  const dir = path.resolve(configDir ?? findConfigDir());
  let schema = cache.get(dir);
  if (!schema) {
    schema = readSchema(dir);
    cache.set(dir, schema);
  }
  return schema;
}

function findConfigDir(): string {
  let dir = path.dirname(fileURLToPath(import.meta.url));
  for (;;) {
    if (existsSync(path.join(dir, PROJECT_FILE))) return path.join(dir, 'config', 'salesforce');
    const up = path.dirname(dir);
    if (up === dir) throw new Error(`no ${PROJECT_FILE} above ${fileURLToPath(import.meta.url)}`);
    dir = up;
  }
}

// ---- reading the SFDX source ----

type Xml = Record<string, unknown>;

const parser = new XMLParser({
  ignoreAttributes: true,
  parseTagValue: false, // keep every value a string; we convert by field meaning
  isArray: (name) => ['value', 'fieldPermissions', 'objectPermissions', 'userPermissions'].includes(name),
});

/** Parses one Metadata API XML file and returns its root element (e.g. `CustomField`). */
export function readMetadataFile(file: string): { type: string; body: Xml } {
  const doc = parser.parse(readFileSync(file, 'utf8')) as Xml;
  const type = Object.keys(doc).find((k) => k !== '?xml');
  if (!type) throw new Error(`${file}: no root element`);
  const body = doc[type];
  return { type, body: body && typeof body === 'object' ? (body as Xml) : {} };
}

function readSchema(configDir: string): OrgSchema {
  const project = JSON.parse(readFileSync(path.join(configDir, 'sfdx-project.json'), 'utf8')) as {
    packageDirectories?: Array<{ path: string }>;
  };
  const files = (project.packageDirectories ?? []).flatMap((p) => listFiles(path.join(configDir, p.path)));
  const cdcEntities = new Set(
    files
      .filter((f) => f.endsWith('.platformEventChannelMember-meta.xml'))
      .map((f) => readMetadataFile(f).body)
      .filter((b) => str(b.eventChannel) === 'ChangeEvents')
      .map((b) => str(b.selectedEntity)),
  );
  const objects: Record<string, ObjectSchema> = {};
  for (const file of files.filter((f) => f.endsWith('.object-meta.xml'))) {
    const obj = readObject(file, cdcEntities);
    objects[obj.name] = obj;
  }
  checkMasters(objects);
  for (const obj of standardObjects()) objects[obj.name] ??= obj;
  return { objects };
}

function listFiles(dir: string): string[] {
  if (!existsSync(dir)) return [];
  return readdirSync(dir, { withFileTypes: true, recursive: true })
    .filter((e) => e.isFile())
    .map((e) => path.join(e.parentPath, e.name))
    .sort();
}

function readObject(file: string, cdcEntities: Set<string>): ObjectSchema {
  const name = path.basename(file, '.object-meta.xml');
  const body = readMetadataFile(file).body;
  const fieldsDir = path.join(path.dirname(file), 'fields');
  const custom = existsSync(fieldsDir)
    ? readdirSync(fieldsDir).filter((f) => f.endsWith('.field-meta.xml')).sort()
        .map((f) => readField(readMetadataFile(path.join(fieldsDir, f)).body))
    : [];
  const hasOwner = !custom.some((f) => f.type === 'MasterDetail');
  const fields: Record<string, FieldSchema> = {};
  for (const f of [...standardFields(nameField(body.nameField as Xml | undefined), hasOwner), ...custom]) {
    fields[f.name] = f;
  }
  return {
    name,
    label: str(body.label) || name,
    keyPrefix: KEY_PREFIXES[name] ?? 'a0Z',
    fields,
    cdc: cdcEntities.has(name),
  };
}

/** Maps a CustomField element onto the sandbox's field description. */
function readField(x: Xml): FieldSchema {
  const name = str(x.fullName);
  const type = FIELD_TYPES[str(x.type)];
  if (!type) throw new Error(`field ${name}: unsupported metadata type '${str(x.type)}'`);
  const f: FieldSchema = { name, type, label: str(x.label) || name };
  if (x.length !== undefined) f.length = Number(x.length);
  if (x.precision !== undefined) f.precision = Number(x.precision);
  if (x.scale !== undefined) f.scale = Number(x.scale);
  if (bool(x.required) || type === 'MasterDetail') f.required = true;
  if (bool(x.unique)) f.unique = true;
  if (bool(x.externalId)) f.externalId = true;
  if (x.caseSensitive !== undefined) f.caseSensitive = bool(x.caseSensitive);
  if (type === 'Checkbox') f.defaultValue = bool(x.defaultValue);
  if (type === 'Picklist') f.picklist = readPicklist(x.valueSet as Xml | undefined);
  if (f.picklist?.default !== undefined) f.defaultValue = f.picklist.default;
  if (type === 'MasterDetail' || type === 'Lookup') {
    f.referenceTo = str(x.referenceTo);
    // The child→parent relationship is the field name with __r; relationshipName in the
    // metadata is the parent's name for the children.
    f.relationshipName = name.replace(/__c$/, '__r');
    if (x.relationshipName !== undefined) f.childRelationshipName = str(x.relationshipName);
  }
  return f;
}

const FIELD_TYPES: Record<string, FieldType> = {
  Text: 'Text', TextArea: 'TextArea', LongTextArea: 'LongTextArea', Html: 'Html', Email: 'Email',
  Url: 'Url', Phone: 'Phone', Picklist: 'Picklist', Checkbox: 'Checkbox', Number: 'Number',
  Currency: 'Number', Percent: 'Number', Date: 'Date', DateTime: 'DateTime', AutoNumber: 'AutoNumber',
  MasterDetail: 'MasterDetail', Lookup: 'Lookup',
};

function readPicklist(valueSet: Xml | undefined): NonNullable<FieldSchema['picklist']> {
  const definition = (valueSet?.valueSetDefinition ?? {}) as Xml;
  const values = ((definition.value ?? []) as Xml[]).map((v) => ({ name: str(v.fullName), isDefault: bool(v.default) }));
  const picklist: NonNullable<FieldSchema['picklist']> = {
    values: values.map((v) => v.name),
    restricted: bool(valueSet?.restricted),
  };
  const def = values.find((v) => v.isDefault);
  if (def) picklist.default = def.name;
  return picklist;
}

function nameField(x: Xml | undefined): FieldSchema {
  if (x && str(x.type) === 'AutoNumber') {
    return { name: 'Name', type: 'AutoNumber', label: str(x.label) || 'Name', displayFormat: str(x.displayFormat), system: true };
  }
  return { name: 'Name', type: 'Text', label: str(x?.label) || 'Name', length: 80 };
}

/** The fields Salesforce adds to every custom object. Detail objects have no owner. */
function standardFields(name: FieldSchema, hasOwner: boolean): FieldSchema[] {
  return [
    { name: 'Id', type: 'Id', label: 'Record ID', length: 18, system: true },
    ...(hasOwner ? [userLookup('OwnerId', 'Owner ID', 'Owner', false)] : []),
    { name: 'IsDeleted', type: 'Checkbox', label: 'Deleted', defaultValue: false, system: true },
    name,
    ...auditFields(),
  ];
}

function auditFields(): FieldSchema[] {
  return [
    { name: 'CreatedDate', type: 'DateTime', label: 'Created Date', system: true },
    userLookup('CreatedById', 'Created By ID', 'CreatedBy', true),
    { name: 'LastModifiedDate', type: 'DateTime', label: 'Last Modified Date', system: true },
    userLookup('LastModifiedById', 'Last Modified By ID', 'LastModifiedBy', true),
    systemModstamp(),
  ];
}

function systemModstamp(): FieldSchema {
  return { name: 'SystemModstamp', type: 'DateTime', label: 'System Modstamp', system: true };
}

function userLookup(name: string, label: string, relationshipName: string, system: boolean): FieldSchema {
  return { name, type: 'Lookup', label, referenceTo: 'User', relationshipName, length: 18, ...(system ? { system } : {}) };
}

/** A detail object whose master is missing could never deploy: fail loudly. */
function checkMasters(objects: Record<string, ObjectSchema>): void {
  for (const obj of Object.values(objects)) {
    for (const f of Object.values(obj.fields)) {
      if (f.type === 'MasterDetail' && f.referenceTo && !objects[f.referenceTo]) {
        throw new Error(`${obj.name}.${f.name}: master object ${f.referenceTo} is not in the project`);
      }
    }
  }
}

// ---- standard objects, as Salesforce defines them ----

function standardObjects(): ObjectSchema[] {
  return [contentVersion(), contentDocument(), contentDocumentLink(), user()];
}

function standardObject(name: string, label: string, keyPrefix: string, fields: FieldSchema[]): ObjectSchema {
  return {
    name, label, keyPrefix, cdc: false,
    fields: Object.fromEntries(
      [{ name: 'Id', type: 'Id', label: `${label} ID`, length: 18, system: true } as FieldSchema, ...fields].map((f) => [f.name, f]),
    ),
  };
}

function contentVersion(): ObjectSchema {
  return standardObject('ContentVersion', 'Content Version', '068', [
    { name: 'Title', type: 'Text', label: 'Title', length: 255 },
    { name: 'PathOnClient', type: 'Text', label: 'Path On Client', length: 500 },
    { name: 'FileExtension', type: 'Text', label: 'File Extension', length: 40, system: true },
    { name: 'ContentSize', type: 'Number', label: 'Size', precision: 18, scale: 0, system: true },
    { name: 'VersionData', type: 'Base64', label: 'Version Data' },
    { name: 'ContentDocumentId', type: 'Lookup', label: 'ContentDocument ID', referenceTo: 'ContentDocument', relationshipName: 'ContentDocument', childRelationshipName: 'ContentVersions', length: 18 },
    { name: 'IsLatest', type: 'Checkbox', label: 'Is Latest', defaultValue: false, system: true },
    // Polymorphic (any record); the sandbox does not follow it as a relationship.
    { name: 'FirstPublishLocationId', type: 'Lookup', label: 'First Publish Location ID', relationshipName: 'FirstPublishLocation', length: 18 },
    userLookup('OwnerId', 'Owner ID', 'Owner', false),
    { name: 'IsDeleted', type: 'Checkbox', label: 'Deleted', defaultValue: false, system: true },
    ...auditFields(),
  ]);
}

function contentDocument(): ObjectSchema {
  return standardObject('ContentDocument', 'Content Document', '069', [
    { name: 'Title', type: 'Text', label: 'Title', length: 255 },
    { name: 'LatestPublishedVersionId', type: 'Lookup', label: 'Latest Published Version ID', referenceTo: 'ContentVersion', relationshipName: 'LatestPublishedVersion', length: 18, system: true },
    { name: 'FileExtension', type: 'Text', label: 'File Extension', length: 40, system: true },
    { name: 'ContentSize', type: 'Number', label: 'Size', precision: 18, scale: 0, system: true },
    userLookup('OwnerId', 'Owner ID', 'Owner', false),
    { name: 'IsDeleted', type: 'Checkbox', label: 'Deleted', defaultValue: false, system: true },
    ...auditFields(),
  ]);
}

function contentDocumentLink(): ObjectSchema {
  return standardObject('ContentDocumentLink', 'Content Document Link', '06A', [
    // Polymorphic (any record).
    { name: 'LinkedEntityId', type: 'Lookup', label: 'Linked Entity ID', relationshipName: 'LinkedEntity', childRelationshipName: 'ContentDocumentLinks', length: 18, required: true },
    { name: 'ContentDocumentId', type: 'Lookup', label: 'Content Document ID', referenceTo: 'ContentDocument', relationshipName: 'ContentDocument', length: 18, required: true },
    { name: 'ShareType', type: 'Picklist', label: 'Share Type', picklist: { values: ['V', 'C', 'I'], restricted: true, default: 'V' }, defaultValue: 'V' },
    { name: 'Visibility', type: 'Picklist', label: 'Visibility', picklist: { values: ['AllUsers', 'InternalUsers', 'SharedUsers'], restricted: true, default: 'AllUsers' }, defaultValue: 'AllUsers' },
    { name: 'IsDeleted', type: 'Checkbox', label: 'Deleted', defaultValue: false, system: true },
    systemModstamp(),
  ]);
}

function user(): ObjectSchema {
  return standardObject('User', 'User', '005', [
    { name: 'Username', type: 'Text', label: 'Username', length: 80, unique: true },
    { name: 'Name', type: 'Text', label: 'Full Name', length: 121, system: true },
    ...auditFields(),
  ]);
}

// ---- XML value helpers ----

function str(v: unknown): string {
  return v === undefined || v === null ? '' : String(v).trim();
}

function bool(v: unknown): boolean {
  return str(v) === 'true';
}
