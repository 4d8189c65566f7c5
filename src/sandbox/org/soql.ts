import {
  parseQuery,
  type FieldType as SelectField,
  type OrderByClause,
  type Query,
  type Subquery,
  type WhereClause,
} from '@jetstreamapp/soql-parser-js';
import type { FieldSchema, ObjectSchema, OrgSchema } from './schema.js';

/**
 * The sandbox org's SOQL: the subset the worker (and an admin poking at the sandbox) uses,
 * evaluated over in-memory rows. Parsing is @jetstreamapp/soql-parser-js's; this file
 * resolves names against the schema and evaluates. Errors carry Salesforce's error codes
 * and wording, with the `ERROR at Row:…:Column:…` preamble Salesforce puts before them.
 *
 * Supported: field lists with parent relationship paths (`Message__r.Status__c`), child
 * subqueries (`(SELECT Id FROM Attempts__r)`), `COUNT()`, WHERE with comparison, IN / NOT IN
 * (also semi-joins `IN (SELECT …)`), LIKE, AND / OR / NOT and parentheses, ORDER BY with
 * NULLS FIRST/LAST, LIMIT, OFFSET, and the day-based date literals. Not supported:
 * aggregates other than COUNT(), GROUP BY, TYPEOF, FIELDS(), functions in WHERE.
 */

export type SoqlErrorCode = 'MALFORMED_QUERY' | 'INVALID_FIELD' | 'INVALID_TYPE';

export class SoqlError extends Error {
  constructor(public errorCode: SoqlErrorCode, message: string) {
    super(message);
    this.name = 'SoqlError';
  }
}

export interface QuerySource {
  schema: OrgSchema;
  /** Stored rows, field API names as keys, Id always present. */
  rows(objectName: string): Iterable<Record<string, unknown>>;
  byId(id: string): { object: string; row: Record<string, unknown> } | undefined;
  /**
   * Optional index: the rows of `objectName` whose `field` (the Id or a reference) has one
   * of these 15-character id keys, in the order `rows()` gives them (extra rows are fine:
   * WHERE still filters). undefined when that field is not indexed: the query scans.
   */
  rowsWithKeys?(objectName: string, field: string, keys: string[]): Iterable<Record<string, unknown>> | undefined;
}

export interface QueryResult {
  records: Array<Record<string, unknown>>;
  totalSize: number;
}

export interface QueryOptions {
  /** `62.0` (or `v62.0`): used in every record's `attributes.url`. */
  apiVersion?: string;
  /** Clock for TODAY, LAST_N_DAYS:n, …: the sandbox clock in the org. */
  now?: () => number;
}

type Row = Record<string, unknown>;

interface Ctx {
  soql: string;
  source: QuerySource;
  version: string;
  now: number;
}

export function runQuery(soql: string, source: QuerySource, opts: QueryOptions = {}): QueryResult {
  const ctx: Ctx = {
    soql,
    source,
    version: (opts.apiVersion ?? '62.0').replace(/^v/, ''),
    now: (opts.now ?? Date.now)(),
  };
  const query = parse(ctx, soql);
  if (!query.sObject) throw new SoqlError('MALFORMED_QUERY', located(ctx, '', "unexpected token: '<EOF>'"));
  const plan = compile(ctx, query, resolveObject(ctx, query.sObject), query.sObjectAlias);
  const rows = select(ctx, plan, candidateRows(ctx, plan));
  if (plan.count) return { records: [], totalSize: rows.length };
  return { records: rows.map((row) => project(ctx, plan, row)), totalSize: rows.length };
}

// ---- parsing and errors ----

function parse(ctx: Ctx, soql: string): Query {
  try {
    return parseQuery(soql);
  } catch (err) {
    throw malformed(ctx, err instanceof Error ? err.message : String(err));
  }
}

/** Turns the parser's (chevrotain's) wording into Salesforce's `unexpected token: 'X'`. */
function malformed(ctx: Ctx, parserMessage: string): SoqlError {
  const lexed = /unexpected character: ->(.)<- at offset: (\d+)/.exec(parserMessage);
  if (lexed) {
    return new SoqlError('MALFORMED_QUERY', atOffset(ctx, Number(lexed[2]), `unexpected token: '${lexed[1]}'`));
  }
  const found = /but found:? (?:--> )?'([^]*?)'(?: <--)?\s*$/.exec(parserMessage);
  const token = found?.[1] ? found[1] : '<EOF>';
  return new SoqlError('MALFORMED_QUERY', located(ctx, found?.[1] ?? '', `unexpected token: '${token}'`));
}

function unsupported(ctx: Ctx, what: string, near = ''): SoqlError {
  return new SoqlError('MALFORMED_QUERY', located(ctx, near, `${what} is not supported by the sandbox org`));
}

/** `near` is where the caret goes: the whole path the name was part of. */
function noSuchColumn(ctx: Ctx, name: string, object: string, near = name): SoqlError {
  return new SoqlError('INVALID_FIELD', located(ctx, near,
    `No such column '${name}' on entity '${object}'. If you are attempting to use a custom field, be sure to append the '__c' after the custom field name. Please reference your WSDL or the describe call for the appropriate names.`));
}

function badRelationship(ctx: Ctx, name: string, where: 'field path' | 'FROM part of query call', near = name): SoqlError {
  return new SoqlError(where === 'field path' ? 'INVALID_FIELD' : 'INVALID_TYPE', located(ctx, near,
    `Didn't understand relationship '${name}' in ${where}. If you are attempting to use a custom relationship, be sure to append the '__r' after the custom relationship name. Please reference your WSDL or the describe call for the appropriate names.`));
}

/** Salesforce prefixes query errors with the offending line and a caret under the token. */
function located(ctx: Ctx, needle: string, message: string): string {
  if (!needle) return atOffset(ctx, ctx.soql.trimEnd().length, message);
  const escaped = needle.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  const at = new RegExp(`(?<![\\w.])${escaped}(?![\\w])`, 'i').exec(ctx.soql)?.index;
  return at === undefined ? message : atOffset(ctx, at, message);
}

function atOffset(ctx: Ctx, offset: number, message: string): string {
  const before = ctx.soql.slice(0, offset).split('\n');
  const row = before.length;
  const column = (before.at(-1) ?? '').length + 1;
  const line = ctx.soql.split('\n')[row - 1] ?? '';
  return `\n${line}\n${' '.repeat(column - 1)}^\nERROR at Row:${row}:Column:${column}\n${message}`;
}

// ---- name resolution ----

function resolveObject(ctx: Ctx, name: string): ObjectSchema {
  const obj = findObject(ctx.source.schema, name);
  if (!obj) {
    throw new SoqlError('INVALID_TYPE', located(ctx, name,
      `sObject type '${name}' is not supported. If you are attempting to use a custom object, be sure to append the '__c' after the entity name. Please reference your WSDL or the describe call for the appropriate names.`));
  }
  return obj;
}

function findObject(schema: OrgSchema, name: string): ObjectSchema | undefined {
  const lower = name.toLowerCase();
  return Object.values(schema.objects).find((o) => o.name.toLowerCase() === lower);
}

function findField(obj: ObjectSchema, name: string): FieldSchema | undefined {
  const lower = name.toLowerCase();
  return Object.values(obj.fields).find((f) => f.name.toLowerCase() === lower);
}

/** One hop from a child row to its parent: the lookup field and the relationship's name. */
interface Hop {
  lookup: FieldSchema;
  name: string;
  /** undefined for polymorphic lookups (LinkedEntity, FirstPublishLocation): known per row. */
  target?: ObjectSchema;
}

interface FieldRef {
  hops: Hop[];
  /** The leaf's name as written; its schema spelling comes from `field` or, past a polymorphic hop, the row's object. */
  leaf: string;
  field?: FieldSchema;
}

function resolveField(ctx: Ctx, obj: ObjectSchema, path: string, alias?: string): FieldRef {
  const parts = path.split('.');
  if (alias && parts.length > 1 && parts[0]!.toLowerCase() === alias.toLowerCase()) parts.shift();
  const hops: Hop[] = [];
  let current: ObjectSchema | undefined = obj;
  for (const rel of parts.slice(0, -1)) {
    if (!current) return { hops: [...hops, ...polymorphicTail(parts, hops.length)], leaf: parts.at(-1)! };
    const lookup: FieldSchema | undefined = Object.values(current.fields).find((f) => f.relationshipName?.toLowerCase() === rel.toLowerCase());
    if (!lookup) throw badRelationship(ctx, rel, 'field path', path);
    current = lookup.referenceTo ? findObject(ctx.source.schema, lookup.referenceTo) : undefined;
    hops.push({ lookup, name: lookup.relationshipName!, target: current });
  }
  const leaf = parts.at(-1)!;
  if (!current) return { hops, leaf };
  const field = findField(current, leaf);
  if (!field) throw noSuchColumn(ctx, leaf, current.name, path);
  return { hops, leaf, field };
}

/** Past a polymorphic hop the names cannot be checked until a row is seen. */
function polymorphicTail(parts: string[], from: number): Hop[] {
  return parts.slice(from, -1).map((name) => ({
    lookup: { name: `${name}Id`, type: 'Lookup', relationshipName: name },
    name,
  }));
}

// ---- the plan ----

interface Plan {
  object: ObjectSchema;
  alias?: string;
  count: boolean;
  columns: Column[];
  where?: Cond;
  orderBy: Sort[];
  limit?: number;
  offset?: number;
}

type Column =
  | { kind: 'field'; ref: FieldRef }
  | { kind: 'child'; name: string; link: FieldSchema; plan: Plan };

interface Sort {
  ref: FieldRef;
  desc: boolean;
  nullsFirst: boolean;
}

function compile(ctx: Ctx, query: Query | Subquery, object: ObjectSchema, alias?: string): Plan {
  if (query.groupBy || query.having) throw unsupported(ctx, 'GROUP BY', 'GROUP');
  const plan: Plan = { object, alias, count: false, columns: [], orderBy: [] };
  for (const f of query.fields ?? []) addColumn(ctx, plan, f);
  if (plan.count && plan.columns.length > 0) {
    throw new SoqlError('MALFORMED_QUERY', located(ctx, 'COUNT', "unexpected token: 'COUNT'"));
  }
  if (query.where) plan.where = compileWhere(ctx, plan, query.where);
  plan.orderBy = toArray(query.orderBy).map((o) => compileSort(ctx, plan, o));
  if (query.limit !== undefined) plan.limit = query.limit;
  if (query.offset !== undefined) plan.offset = query.offset;
  return plan;
}

function addColumn(ctx: Ctx, plan: Plan, f: SelectField): void {
  switch (f.type) {
    case 'Field':
      plan.columns.push({ kind: 'field', ref: resolveField(ctx, plan.object, f.field, plan.alias) });
      return;
    case 'FieldRelationship':
      plan.columns.push({ kind: 'field', ref: resolveField(ctx, plan.object, [...f.relationships, f.field].join('.'), plan.alias) });
      return;
    case 'FieldFunctionExpression':
      if (f.functionName.toUpperCase() === 'COUNT' && f.parameters.length === 0) {
        plan.count = true;
        return;
      }
      throw unsupported(ctx, `${f.functionName}()`, f.functionName);
    case 'FieldSubquery':
      plan.columns.push(childColumn(ctx, plan.object, f.subquery));
      return;
    default:
      throw unsupported(ctx, 'TYPEOF', 'TYPEOF');
  }
}

/** `(SELECT … FROM Attempts__r)`: rows of the child object whose lookup names the parent. */
function childColumn(ctx: Ctx, parent: ObjectSchema, sub: Subquery): Column {
  const wanted = sub.relationshipName.toLowerCase();
  for (const child of Object.values(ctx.source.schema.objects)) {
    for (const link of Object.values(child.fields)) {
      const name = childRelationship(link);
      if (!name || name.toLowerCase() !== wanted) continue;
      if (link.referenceTo && link.referenceTo !== parent.name) continue;
      return { kind: 'child', name, link, plan: compile(ctx, sub, child) };
    }
  }
  throw badRelationship(ctx, sub.relationshipName, 'FROM part of query call');
}

/** A custom relationship is addressed with `__r` in SOQL (`Attempts` → `Attempts__r`). */
function childRelationship(f: FieldSchema): string | undefined {
  if (!f.childRelationshipName) return undefined;
  return f.name.endsWith('__c') ? `${f.childRelationshipName}__r` : f.childRelationshipName;
}

function compileSort(ctx: Ctx, plan: Plan, o: OrderByClause): Sort {
  if (!('field' in o)) throw unsupported(ctx, 'ORDER BY a function', 'ORDER');
  const desc = o.order?.toUpperCase() === 'DESC';
  // Salesforce's defaults: nulls first ascending, last descending.
  const nullsFirst = o.nulls ? o.nulls.toUpperCase() === 'FIRST' : !desc;
  return { ref: resolveField(ctx, plan.object, o.field, plan.alias), desc, nullsFirst };
}

function toArray<T>(v: T | T[] | undefined): T[] {
  return v === undefined ? [] : Array.isArray(v) ? v : [v];
}

// ---- WHERE: the parser gives a flat chain with paren counts; rebuild the tree ----

type Cond =
  | { kind: 'and' | 'or'; a: Cond; b: Cond }
  | { kind: 'not'; a: Cond }
  | { kind: 'test'; ref: FieldRef; test: (value: unknown, field: FieldSchema | undefined) => boolean; probe?: Probe };

/** `Id IN (…)` / `LinkedEntityId = '…'`: a test an id index can answer (see QuerySource.rowsWithKeys). */
interface Probe {
  field: string;
  keys: string[];
}

type Tok = '(' | ')' | 'AND' | 'OR' | 'NOT' | { pred: Predicate };

interface Predicate {
  field: string;
  operator: string;
  value?: string | string[];
  literalType?: string | string[];
  dateLiteralVariable?: number | number[];
  valueQuery?: Query;
}

function compileWhere(ctx: Ctx, plan: Plan, where: WhereClause): Cond {
  const toks = flatten(ctx, where);
  let i = 0;
  const peek = (): Tok | undefined => toks[i];
  const or = (): Cond => {
    let c = and();
    while (peek() === 'OR') { i++; c = { kind: 'or', a: c, b: and() }; }
    return c;
  };
  const and = (): Cond => {
    let c = unary();
    while (peek() === 'AND') { i++; c = { kind: 'and', a: c, b: unary() }; }
    return c;
  };
  const unary = (): Cond => {
    const t = toks[i++];
    if (t === 'NOT') return { kind: 'not', a: unary() };
    if (t === '(') {
      const c = or();
      if (toks[i++] !== ')') throw malformed(ctx, '');
      return c;
    }
    if (t && typeof t === 'object') return compilePredicate(ctx, plan, t.pred);
    throw malformed(ctx, '');
  };
  const cond = or();
  if (i !== toks.length) throw malformed(ctx, '');
  return cond;
}

function flatten(ctx: Ctx, where: WhereClause): Tok[] {
  const toks: Tok[] = [];
  for (let node: WhereClause | undefined = where; node; node = 'right' in node ? node.right : undefined) {
    const left = node.left as (Predicate & { openParen?: number; closeParen?: number; fn?: unknown }) | null;
    if (left) {
      for (let n = 0; n < (left.openParen ?? 0); n++) toks.push('(');
      if (left.fn) throw unsupported(ctx, 'A function in WHERE', 'WHERE');
      if (left.field) toks.push({ pred: left });
      for (let n = 0; n < (left.closeParen ?? 0); n++) toks.push(')');
    }
    if ('operator' in node && node.operator) toks.push(node.operator.toUpperCase() as 'AND' | 'OR' | 'NOT');
  }
  return toks;
}

function compilePredicate(ctx: Ctx, plan: Plan, p: Predicate): Cond {
  const ref = resolveField(ctx, plan.object, p.field, plan.alias);
  const op = p.operator.toUpperCase();
  if (p.valueQuery) return { kind: 'test', ref, test: semiJoin(ctx, p.valueQuery, op) };
  const types = toArray(p.literalType);
  const values = toArray(p.value);
  const vars = toArray(p.dateLiteralVariable);
  const literals = values.map((v, n) => literal(ctx, v, types[n] ?? types[0] ?? 'STRING', vars[n] ?? vars[0]));
  switch (op) {
    case 'IN':
    case 'NOT IN': {
      const inList = idSetTest(ref, literals) ?? ((v: unknown, f: FieldSchema | undefined) => literals.some((l) => matches(v, '=', l, f)));
      if (op === 'NOT IN') return { kind: 'test', ref, test: (v, f) => !inList(v, f) };
      return { kind: 'test', ref, test: inList, ...probeOf(ref, literals) };
    }
    case 'LIKE': {
      const re = likePattern(values[0] ?? '');
      return { kind: 'test', ref, test: (v) => v !== null && v !== undefined && re.test(String(v)) };
    }
    case '=': case '!=': case '<': case '<=': case '>': case '>=': {
      const l = literals[0];
      if (!l) throw malformed(ctx, '');
      return { kind: 'test', ref, test: comparison(op, l, ref.field), ...(op === '=' ? probeOf(ref, [l]) : {}) };
    }
    default:
      throw unsupported(ctx, op, op);
  }
}

function isIdField(f: FieldSchema | undefined): f is FieldSchema {
  return f?.type === 'Id' || f?.type === 'Lookup' || f?.type === 'MasterDetail';
}

/**
 * IN on an id field as one set lookup instead of a comparison per literal (200 ids per
 * query, every row): the same answers, since id keys are strings compared for equality.
 */
function idSetTest(ref: FieldRef, literals: Literal[]): ((v: unknown) => boolean) | undefined {
  if (!isIdField(ref.field) || !literals.every((l) => l.kind === 'value')) return undefined;
  const values = literals.map((l) => (l as Extract<Literal, { kind: 'value' }>).value);
  const withNull = values.includes(null);
  const keys = new Set(values.filter((v) => v !== null).map((v) => idKey(String(v))));
  return (v) => (v === null || v === undefined ? withNull : keys.has(idKey(String(v))));
}

/** A field of the queried object itself, equal to one of these non-null literals. */
function probeOf(ref: FieldRef, literals: Literal[]): { probe?: Probe } {
  if (ref.hops.length > 0 || !isIdField(ref.field)) return {};
  const keys: string[] = [];
  for (const l of literals) {
    if (l.kind !== 'value' || l.value === null) return {};
    keys.push(idKey(String(l.value)));
  }
  return { probe: { field: ref.field.name, keys } };
}

/** `matches` with the literal's comparable key worked out once, when the field is known. */
function comparison(op: string, l: Literal, field: FieldSchema | undefined): (v: unknown, f: FieldSchema | undefined) => boolean {
  if (!field || l.kind !== 'value' || l.value === null) return (v, f) => matches(v, op, l, f);
  const key = sortKey(l.value, field, l.type);
  return (v, f) => {
    if (v === null || v === undefined) return op === '!=';
    return compared(op, compareKeys(sortKey(v, f), key));
  };
}

/** `Id IN (SELECT ContentDocumentId FROM ContentDocumentLink WHERE …)`. */
function semiJoin(ctx: Ctx, sub: Query, op: string): (v: unknown) => boolean {
  if (op !== 'IN' && op !== 'NOT IN') throw unsupported(ctx, `${op} with a subquery`, op);
  const plan = compile(ctx, sub, resolveObject(ctx, sub.sObject ?? ''), sub.sObjectAlias);
  const column = plan.columns[0];
  if (plan.columns.length !== 1 || column?.kind !== 'field') throw unsupported(ctx, 'This semi-join', 'SELECT');
  const ids = new Set(
    select(ctx, plan, candidateRows(ctx, plan))
      .map((row) => valueAt(ctx, row, column.ref).value)
      .filter((v): v is string => typeof v === 'string')
      .map(idKey),
  );
  return (v) => (typeof v === 'string' && ids.has(idKey(v))) === (op === 'IN');
}

// ---- literals and comparison ----

type Literal =
  | { kind: 'value'; value: string | number | boolean | null; type: string }
  | { kind: 'range'; start: number; end: number };

const DAY = 86_400_000;

function literal(ctx: Ctx, raw: string, type: string, n: number | undefined): Literal {
  switch (type) {
    case 'STRING': return { kind: 'value', value: unquote(raw), type };
    case 'INTEGER': case 'DECIMAL': return { kind: 'value', value: Number(raw), type };
    case 'BOOLEAN': return { kind: 'value', value: raw.toUpperCase() === 'TRUE', type };
    case 'NULL': return { kind: 'value', value: null, type };
    case 'DATETIME': case 'DATE': return { kind: 'value', value: raw, type };
    case 'DATE_LITERAL': case 'DATE_N_LITERAL': return dateRange(ctx, raw.split(':')[0]!.toUpperCase(), n ?? 0);
    default: throw unsupported(ctx, `A ${type} literal`, raw);
  }
}

/** The day-based literals, on UTC days (the sandbox org's time zone is GMT). */
function dateRange(ctx: Ctx, name: string, n: number): Literal {
  const today = Math.floor(ctx.now / DAY) * DAY;
  const days = (from: number, count: number): Literal => ({ kind: 'range', start: from, end: from + count * DAY });
  switch (name) {
    case 'TODAY': return days(today, 1);
    case 'YESTERDAY': return days(today - DAY, 1);
    case 'TOMORROW': return days(today + DAY, 1);
    case 'LAST_N_DAYS': return { kind: 'range', start: today - n * DAY, end: ctx.now + 1 };
    case 'NEXT_N_DAYS': return days(today + DAY, n);
    case 'N_DAYS_AGO': return days(today - n * DAY, 1);
    default: throw unsupported(ctx, `The date literal ${name}`, name);
  }
}

const ESCAPES: Record<string, string> = { n: '\n', t: '\t', r: '\r', b: '\b', f: '\f', '"': '"', "'": "'", '\\': '\\', '%': '%', _: '_' };

function unquote(raw: string): string {
  const body = raw.startsWith("'") && raw.endsWith("'") ? raw.slice(1, -1) : raw;
  return body.replace(/\\(.)/g, (_, c: string) => ESCAPES[c] ?? c);
}

/** LIKE: `%` any run, `_` one character, `\%` `\_` literal; case-insensitive. */
function likePattern(raw: string): RegExp {
  const body = raw.startsWith("'") && raw.endsWith("'") ? raw.slice(1, -1) : raw;
  let re = '';
  for (let i = 0; i < body.length; i++) {
    const c = body[i]!;
    if (c === '\\' && i + 1 < body.length) re += escapeRegex(ESCAPES[body[++i]!] ?? body[i]!);
    else if (c === '%') re += '[^]*';
    else if (c === '_') re += '[^]';
    else re += escapeRegex(c);
  }
  return new RegExp(`^${re}$`, 'i');
}

function escapeRegex(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

function matches(v: unknown, op: string, l: Literal, f: FieldSchema | undefined): boolean {
  if (l.kind === 'range') return inRange(v, op, l);
  if (l.value === null || v === null || v === undefined) {
    // SOQL treats null as a value: `= null`, `!= null`; ordering against null is false.
    const same = (l.value === null) === (v === null || v === undefined);
    return op === '=' ? same : op === '!=' ? !same : false;
  }
  return compared(op, compareKeys(sortKey(v, f), sortKey(l.value, f, l.type)));
}

function compared(op: string, c: number): boolean {
  switch (op) {
    case '=': return c === 0;
    case '!=': return c !== 0;
    case '<': return c < 0;
    case '<=': return c <= 0;
    case '>': return c > 0;
    default: return c >= 0;
  }
}

function inRange(v: unknown, op: string, r: { start: number; end: number }): boolean {
  const t = v === null || v === undefined ? NaN : instant(v);
  if (Number.isNaN(t)) return op === '!=';
  switch (op) {
    case '=': return t >= r.start && t < r.end;
    case '!=': return t < r.start || t >= r.end;
    case '<': return t < r.start;
    case '<=': return t < r.end;
    case '>': return t >= r.end;
    default: return t >= r.start;
  }
}

/** Datetimes are stored as `2026-12-04T17:06:54.000+0000`; compare them as instants. */
function instant(v: unknown): number {
  if (typeof v === 'number') return v;
  const text = String(v);
  let t = instants.get(text);
  if (t === undefined) {
    const s = text.replace(/([+-]\d\d)(\d\d)$/, '$1:$2');
    t = Date.parse(/^\d{4}-\d\d-\d\d$/.test(s) ? `${s}T00:00:00Z` : s);
    if (instants.size >= 100_000) instants.clear();
    instants.set(text, t);
  }
  return t;
}

/** Parsed date-times: rows share their second-resolution stamps, and sorts compare them often. */
const instants = new Map<string, number>();

/** Ids compare on their case-sensitive 15-character form, so 15- and 18-char ids match. */
function idKey(id: string): string {
  return id.slice(0, 15);
}

type Key = string | number;

/** A comparable form of a value, by the field's type (text compares case-insensitively). */
function sortKey(v: unknown, f: FieldSchema | undefined, literalType?: string): Key {
  switch (f?.type) {
    case 'DateTime': case 'Date': return instant(v);
    case 'Number': return Number(v);
    case 'Checkbox': return v === true || String(v).toLowerCase() === 'true' ? 1 : 0;
    case 'Id': case 'Lookup': case 'MasterDetail': return idKey(String(v));
    default:
      if (typeof v === 'number' && (literalType === 'INTEGER' || literalType === 'DECIMAL' || literalType === undefined)) return v;
      return String(v).toLowerCase();
  }
}

function compareKeys(a: Key, b: Key): number {
  if (typeof a === 'number' && typeof b === 'number') return a - b;
  const x = String(a), y = String(b);
  return x < y ? -1 : x > y ? 1 : 0;
}

// ---- evaluation ----

function liveRows(ctx: Ctx, obj: ObjectSchema): Row[] {
  return [...ctx.source.rows(obj.name)].filter((r) => r.IsDeleted !== true);
}

/** The rows WHERE can match: from the source's id index when a conjunct allows, else all. */
function candidateRows(ctx: Ctx, plan: Plan): Row[] {
  const probe = plan.where && probeIn(plan.where);
  const hits = probe && ctx.source.rowsWithKeys?.(plan.object.name, probe.field, probe.keys);
  return hits ? [...hits].filter((r) => r.IsDeleted !== true) : liveRows(ctx, plan.object);
}

/** A probe every matching row must satisfy: one in a chain of ANDs. */
function probeIn(c: Cond): Probe | undefined {
  if (c.kind === 'test') return c.probe;
  if (c.kind === 'and') return probeIn(c.a) ?? probeIn(c.b);
  return undefined;
}

function select(ctx: Ctx, plan: Plan, rows: Row[]): Row[] {
  let out = plan.where ? rows.filter((r) => holds(ctx, plan.where!, r)) : rows;
  if (plan.orderBy.length > 0) out = sortRows(ctx, plan.orderBy, out);
  const from = plan.offset ?? 0;
  return out.slice(from, plan.limit === undefined ? undefined : from + plan.limit);
}

/** A sort value: null (placed by NULLS FIRST/LAST) or its comparable key. */
type SortValue = Key | null;

/** Sorts on keys worked out once per row, not twice per comparison (a date parse each). */
function sortRows(ctx: Ctx, sorts: Sort[], rows: Row[]): Row[] {
  const keyed = rows.map((row) => ({
    row,
    keys: sorts.map((s): SortValue => {
      const { value, field } = valueAt(ctx, row, s.ref);
      return value === null || value === undefined ? null : sortKey(value, field);
    }),
  }));
  keyed.sort((a, b) => compareSortValues(sorts, a.keys, b.keys));
  return keyed.map((k) => k.row);
}

function compareSortValues(sorts: Sort[], a: SortValue[], b: SortValue[]): number {
  for (let i = 0; i < sorts.length; i++) {
    const s = sorts[i]!, x = a[i] as SortValue, y = b[i] as SortValue;
    if (x === null || y === null) {
      if (x === null && y === null) continue;
      return (x === null) === s.nullsFirst ? -1 : 1;
    }
    const c = compareKeys(x, y);
    if (c !== 0) return s.desc ? -c : c;
  }
  return 0;
}

function holds(ctx: Ctx, c: Cond, row: Row): boolean {
  switch (c.kind) {
    case 'and': return holds(ctx, c.a, row) && holds(ctx, c.b, row);
    case 'or': return holds(ctx, c.a, row) || holds(ctx, c.b, row);
    case 'not': return !holds(ctx, c.a, row);
    default: {
      const { value, field } = valueAt(ctx, row, c.ref);
      return c.test(value, field);
    }
  }
}

/** Follows a field path from a row; `parent` is undefined when a hop leads nowhere. */
function valueAt(ctx: Ctx, row: Row, ref: FieldRef): { value: unknown; field: FieldSchema | undefined } {
  let current: { object?: ObjectSchema; row: Row } | undefined = { row };
  for (const hop of ref.hops) {
    current = follow(ctx, current.row, hop);
    if (!current) return { value: null, field: ref.field };
  }
  const field = ref.field ?? (current.object && findField(current.object, ref.leaf));
  return { value: field ? current.row[field.name] : undefined, field };
}

function follow(ctx: Ctx, row: Row, hop: Hop): { object?: ObjectSchema; row: Row } | undefined {
  const id = row[hop.lookup.name];
  if (typeof id !== 'string' || id === '') return undefined;
  const hit = ctx.source.byId(id);
  if (!hit || (hop.target && hit.object !== hop.target.name) || hit.row.IsDeleted === true) return undefined;
  return { object: hop.target ?? ctx.source.schema.objects[hit.object], row: hit.row };
}

// ---- shaping records as Salesforce returns them ----

function attributes(ctx: Ctx, type: string, id: unknown): { type: string; url: string } {
  return { type, url: `/services/data/v${ctx.version}/sobjects/${type}/${String(id)}` };
}

function project(ctx: Ctx, plan: Plan, row: Row): Row {
  const out: Row = { attributes: attributes(ctx, plan.object.name, row.Id) };
  for (const col of plan.columns) {
    if (col.kind === 'child') out[col.name] = childRecords(ctx, col, row);
    else place(ctx, out, { object: plan.object, row }, col.ref, 0);
  }
  return out;
}

/** Writes one selected path into `out`, nesting parents as `{"Message__r": {attributes, …}}`. */
function place(ctx: Ctx, out: Row, at: { object?: ObjectSchema; row: Row }, ref: FieldRef, depth: number): void {
  const hop = ref.hops[depth];
  if (!hop) {
    const field = depth === 0 || ref.field ? ref.field : at.object && findField(at.object, ref.leaf);
    const name = field?.name ?? ref.leaf;
    out[name] = outputValue(ctx, at, field);
    return;
  }
  if (out[hop.name] === null) return;
  const parent = follow(ctx, at.row, hop);
  if (!parent) {
    out[hop.name] = null;
    return;
  }
  const type = parent.object?.name ?? 'Name';
  const nested = (out[hop.name] as Row | undefined) ?? { attributes: attributes(ctx, type, parent.row.Id) };
  out[hop.name] = nested;
  place(ctx, nested, parent, ref, depth + 1);
}

function outputValue(ctx: Ctx, at: { object?: ObjectSchema; row: Row }, field: FieldSchema | undefined): unknown {
  if (!field) return null;
  const v = at.row[field.name];
  if (v === undefined || v === null) return null;
  // Blob fields are never inlined in query results: Salesforce returns the URL to fetch them.
  if (field.type === 'Base64') return `/services/data/v${ctx.version}/sobjects/${at.object?.name}/${String(at.row.Id)}/${field.name}`;
  return v;
}

function childRecords(ctx: Ctx, col: Extract<Column, { kind: 'child' }>, parent: Row): unknown {
  const parentKey = idKey(String(parent.Id));
  const children = liveRows(ctx, col.plan.object).filter((r) => typeof r[col.link.name] === 'string' && idKey(r[col.link.name] as string) === parentKey);
  const rows = select(ctx, col.plan, children);
  if (rows.length === 0) return null;
  return { totalSize: rows.length, done: true, records: rows.map((r) => project(ctx, col.plan, r)) };
}
