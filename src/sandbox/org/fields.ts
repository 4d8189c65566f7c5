/**
 * Field-level rules of the sandbox org: how a JSON value becomes a stored value, the
 * Salesforce errors a bad value earns, and how fields are shown (records, describe).
 * Everything is driven by the schema loaded from the SFDX metadata.
 */
import type { FieldSchema, FieldType, ObjectSchema } from './schema.js';
import { normalizeId } from './ids.js';

/** One per-record error, as sObject Collections report it. */
export interface SaveError {
  statusCode: string;
  message: string;
  fields: string[];
}

/** A record could not be saved; the request as a whole is fine. */
export class SaveFailure extends Error {
  constructor(readonly errors: SaveError[]) {
    super(errors.map((e) => `${e.statusCode}: ${e.message}`).join('; '));
  }
}

/** The whole request is refused (HTTP status + one Salesforce error). */
export class RequestError extends Error {
  constructor(
    readonly status: number,
    readonly errorCode: string,
    message: string,
    readonly fields?: string[],
  ) {
    super(message);
  }

  body(): Array<{ message: string; errorCode: string; fields?: string[] }> {
    const e = { message: this.message, errorCode: this.errorCode };
    return [this.fields ? { ...e, fields: this.fields } : e];
  }
}

/** Audit fields every object has and the org maintains itself. */
export const AUDIT_FIELDS: Record<string, FieldType> = {
  Id: 'Id',
  IsDeleted: 'Checkbox',
  CreatedDate: 'DateTime',
  CreatedById: 'Lookup',
  LastModifiedDate: 'DateTime',
  LastModifiedById: 'Lookup',
  SystemModstamp: 'DateTime',
};

export function fieldType(obj: ObjectSchema, name: string): FieldType | undefined {
  return obj.fields[name]?.type ?? AUDIT_FIELDS[name];
}

export function isSystem(field: FieldSchema): boolean {
  return !!field.system || field.name in AUDIT_FIELDS || field.type === 'Id' || field.type === 'AutoNumber';
}

/** Finds a field by API name the way Salesforce does: case-insensitively. */
export function findField(obj: ObjectSchema, name: string): FieldSchema | undefined {
  const exact = obj.fields[name];
  if (exact) return exact;
  const lower = name.toLowerCase();
  return Object.values(obj.fields).find((f) => f.name.toLowerCase() === lower);
}

/** `2024-05-01T10:20:30.000+0000`, the REST API's date-time form. */
export function sfDateTime(ms: number): string {
  return new Date(ms).toISOString().replace('Z', '+0000');
}

/** Change events carry date-times as UTC `…Z` strings. */
export function isoDateTime(value: string): string {
  return new Date(Date.parse(value.replace(/([+-]\d\d)(\d\d)$/, '$1:$2'))).toISOString();
}

const EMAIL_RE =
  /^[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)+$/;
const DATETIME_RE = /^\d{4}-\d\d-\d\dT\d\d:\d\d(?::\d\d(?:\.\d{1,9})?)?(?:Z|[+-]\d\d:?\d\d)$/;
const DATE_RE = /^\d{4}-\d\d-\d\d$/;

const TEXT_LENGTH: Partial<Record<FieldType, number>> = { Email: 80, Url: 255, Phone: 40, Picklist: 255 };

function label(f: FieldSchema): string {
  return f.label ?? f.name;
}

/** Salesforce's JSON deserializer rejects the whole request for a value of the wrong JSON type. */
function parseError(kind: string, value: unknown): RequestError {
  const token = typeof value === 'string' ? 'VALUE_STRING' : typeof value === 'object' ? 'START_OBJECT' : 'VALUE_' + String(typeof value).toUpperCase();
  return new RequestError(
    400,
    'JSON_PARSER_ERROR',
    `Cannot deserialize instance of ${kind} from ${token} value ${String(value)} or request may be missing a required field`,
  );
}

type Converted = { value: unknown } | { error: SaveError };

function fail(statusCode: string, message: string, f: FieldSchema): Converted {
  return { error: { statusCode, message, fields: [f.name] } };
}

/**
 * Converts a JSON value for field `f` into its stored form. Throws RequestError when the
 * JSON type itself is wrong; returns a SaveError when the value breaks a field rule.
 * Empty strings are stored as null, like Salesforce does.
 */
export function convert(f: FieldSchema, raw: unknown): Converted {
  if (raw === '' || raw === null || raw === undefined) return { value: f.type === 'Checkbox' ? false : null };
  switch (f.type) {
    case 'Checkbox':
      if (typeof raw === 'boolean') return { value: raw };
      if (raw === 'true' || raw === 'false') return { value: raw === 'true' };
      throw parseError('boolean', raw);
    case 'Number':
      return convertNumber(f, raw);
    case 'DateTime':
      if (typeof raw !== 'string' || !DATETIME_RE.test(raw) || Number.isNaN(Date.parse(raw.replace(/([+-]\d\d)(\d\d)$/, '$1:$2'))))
        throw parseError('datetime', raw);
      return { value: sfDateTime(Date.parse(raw.replace(/([+-]\d\d)(\d\d)$/, '$1:$2'))) };
    case 'Date':
      if (typeof raw !== 'string' || !(DATE_RE.test(raw) || DATETIME_RE.test(raw)) || Number.isNaN(Date.parse(raw.slice(0, 10))))
        throw parseError('date', raw);
      return { value: raw.slice(0, 10) };
    case 'Base64':
      if (typeof raw !== 'string') throw parseError('base64', raw);
      return { value: Buffer.from(raw, 'base64') };
    case 'MasterDetail':
    case 'Lookup': {
      if (typeof raw !== 'string') throw parseError('reference', raw);
      const id = normalizeId(raw);
      return id ? { value: id } : fail('MALFORMED_ID', `${label(f)}: id value of incorrect type: ${raw}`, f);
    }
    default:
      return convertText(f, raw);
  }
}

function convertNumber(f: FieldSchema, raw: unknown): Converted {
  const n = typeof raw === 'number' ? raw : typeof raw === 'string' && raw.trim() !== '' ? Number(raw) : NaN;
  if (!Number.isFinite(n)) throw parseError('double', raw);
  const scale = f.scale ?? 0;
  const precision = f.precision ?? 18;
  const rounded = Number(n.toFixed(scale));
  if (Math.abs(rounded) >= 10 ** (precision - scale)) {
    return fail('NUMBER_OUTSIDE_VALID_RANGE', `${label(f)}: value outside of valid range on numeric field: ${raw}`, f);
  }
  return { value: rounded };
}

function convertText(f: FieldSchema, raw: unknown): Converted {
  if (typeof raw === 'object') throw parseError('string', '{');
  // Salesforce accepts JSON numbers and booleans for text fields and stores their text.
  const s = String(raw);
  const max = f.length ?? TEXT_LENGTH[f.type] ?? 255;
  if (s.length > max) {
    return fail('STRING_TOO_LONG', `${label(f)}: data value too large: ${s.slice(0, 40)}… (max length=${max})`, f);
  }
  if (f.type === 'Email' && !EMAIL_RE.test(s)) {
    return fail('INVALID_EMAIL_ADDRESS', `${label(f)}: invalid email address: ${s}`, f);
  }
  if (f.type === 'Picklist' && f.picklist?.restricted && !f.picklist.values.includes(s)) {
    return fail('INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST', `${label(f)}: bad value for restricted picklist field: ${s}`, f);
  }
  return { value: s };
}

/** The value a new record gets for a field the request did not set. */
export function defaultValue(f: FieldSchema): unknown {
  if (f.type === 'Checkbox') return f.defaultValue === true || f.defaultValue === 'true';
  if (f.type === 'Picklist' && f.picklist?.default !== undefined) return f.picklist.default;
  if (f.defaultValue === undefined) return null;
  if (f.type === 'Number') return Number(f.defaultValue);
  return typeof f.defaultValue === 'string' ? f.defaultValue.replace(/^"(.*)"$/, '$1') : f.defaultValue;
}

/** `SEM-{00000000}` with n = 42 → `SEM-00000042`. */
export function autoNumber(displayFormat: string | undefined, n: number): string {
  const fmt = displayFormat ?? '{0}';
  return fmt.replace(/\{(0+)\}/, (_, zeros: string) => String(n).padStart(zeros.length, '0'));
}

const DESCRIBE_TYPE: Record<FieldType, string> = {
  Id: 'id', Text: 'string', TextArea: 'textarea', LongTextArea: 'textarea', Html: 'textarea',
  Email: 'email', Url: 'url', Phone: 'phone', Picklist: 'picklist', Checkbox: 'boolean',
  Number: 'double', Date: 'date', DateTime: 'datetime', AutoNumber: 'string',
  MasterDetail: 'reference', Lookup: 'reference', Base64: 'base64',
};

const SOAP_TYPE: Record<string, string> = {
  id: 'tns:ID', reference: 'tns:ID', boolean: 'xsd:boolean', double: 'xsd:double',
  date: 'xsd:date', datetime: 'xsd:dateTime', base64: 'xsd:base64Binary',
};

/** One entry of `describe().fields`, shaped as Salesforce's describe shapes it. */
export function describeField(f: FieldSchema): Record<string, unknown> {
  const type = DESCRIBE_TYPE[f.type];
  const sys = isSystem(f);
  const textual = ['string', 'textarea', 'email', 'url', 'phone', 'picklist'].includes(type);
  const length = textual ? (f.length ?? TEXT_LENGTH[f.type] ?? (f.type === 'AutoNumber' ? 30 : 255)) : 0;
  const isRef = type === 'reference' || type === 'id';
  return {
    name: f.name,
    label: f.label ?? f.name,
    type,
    soapType: SOAP_TYPE[type] ?? 'xsd:string',
    length,
    byteLength: length * 3,
    digits: 0,
    precision: f.type === 'Number' ? (f.precision ?? 18) : 0,
    scale: f.type === 'Number' ? (f.scale ?? 0) : 0,
    custom: f.name.endsWith('__c'),
    nillable: !f.required && f.type !== 'Checkbox' && !sys,
    createable: !sys,
    updateable: !sys && f.type !== 'MasterDetail',
    filterable: !['LongTextArea', 'Html', 'Base64'].includes(f.type),
    sortable: !['LongTextArea', 'Html', 'Base64'].includes(f.type),
    unique: !!f.unique,
    externalId: !!f.externalId,
    caseSensitive: !!f.caseSensitive,
    idLookup: f.type === 'Id' || !!f.externalId,
    nameField: f.name === 'Name',
    autoNumber: f.type === 'AutoNumber',
    calculated: false,
    defaultedOnCreate: sys || f.type === 'Checkbox' || f.defaultValue !== undefined,
    defaultValue: f.type === 'Checkbox' ? defaultValue(f) : (f.picklist?.default ?? f.defaultValue ?? null),
    htmlFormatted: f.type === 'Html',
    extraTypeInfo: f.type === 'Html' ? 'richtextarea' : f.type === 'LongTextArea' ? 'plaintextarea' : null,
    restrictedPicklist: !!f.picklist?.restricted,
    picklistValues: (f.picklist?.values ?? []).map((v) => ({
      active: true,
      defaultValue: v === f.picklist?.default,
      label: v,
      validFor: null,
      value: v,
    })),
    referenceTo: isRef && f.referenceTo ? [f.referenceTo] : [],
    relationshipName: f.relationshipName ?? null,
    cascadeDelete: f.type === 'MasterDetail',
    writeRequiresMasterRead: f.type === 'MasterDetail',
  };
}
