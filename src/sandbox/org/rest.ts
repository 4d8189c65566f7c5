/**
 * The sandbox org's REST API (`/services/data/…`): a small router over the record store.
 * The HTTP layer here does what every Salesforce REST response shares — session check,
 * daily API usage (`Sforce-Limit-Info`), injected faults and latency — and `dispatch`
 * answers one call, which composite requests reuse for their subrequests.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { Readable } from 'node:stream';
import type { SandboxClock } from '../clock.js';
import type { CallCounter } from '../counter.js';
import { RequestError, SaveFailure, describeField, findField } from './fields.js';
import { normalizeId } from './ids.js';
import { runQuery, SoqlError, type QuerySource } from './soql.js';
import type { OrgDb, Row, Transaction, WriteContext } from './db.js';
import type { FieldSchema, ObjectSchema } from './schema.js';
import { collections, composite } from './composite.js';

/** One REST call, already authenticated and parsed. */
export interface Call {
  method: string;
  /** Path segments after `/services/data/vNN.N`. */
  path: string[];
  query: URLSearchParams;
  /** Lower-case header names. */
  headers: Record<string, string | undefined>;
  body: unknown;
  version: string;
  userId: string;
  /** Runs `fn` in the enclosing transaction (composite allOrNone) or in one of its own. */
  write<T>(fn: (tx: Transaction) => T): T;
}

export interface Reply {
  status: number;
  body?: unknown;
  headers?: Record<string, string>;
  /** Binary body (blob fields), streamed as `application/octet-stream`. */
  binary?: Buffer;
}

export interface RestOptions {
  db: OrgDb;
  clock: SandboxClock;
  counter: CallCounter;
  apiVersion: string;
  queryBatchSize: number;
  dailyApiLimit: number;
  validate(token: string): string | undefined;
}

const MIN_VERSION = 31;
const MAX_BODY = 52 * 1024 * 1024;
const CURSOR_IDLE_MS = 15 * 60_000;
const MAX_CURSORS = 100;

export const notFound = (): RequestError => new RequestError(404, 'NOT_FOUND', 'The requested resource does not exist');

/** Faults and slowness the tests switch on. */
export interface RestFaults {
  latencyMs: number;
  outage: boolean;
  failNext: { n: number; status: number; errorCode: string };
}

export class RestApi {
  readonly faults: RestFaults = { latencyMs: 0, outage: false, failNext: { n: 0, status: 500, errorCode: 'UNKNOWN_EXCEPTION' } };
  private usage = 0;
  private usageWindowStart: number;
  private limit: number;
  private readonly cursors = new Map<string, { records: unknown[]; totalSize: number; batch: number; usedAt: number }>();
  private cursorSeq = 0;

  constructor(private readonly opts: RestOptions) {
    this.limit = opts.dailyApiLimit;
    this.usageWindowStart = opts.clock.now();
  }

  get db(): OrgDb {
    return this.opts.db;
  }

  setApiUsage(n: number): void {
    this.rollUsageWindow();
    this.usage = n;
  }

  apiUsage(): { used: number; limit: number } {
    this.rollUsageWindow();
    return { used: this.usage, limit: this.limit };
  }

  // ---- HTTP ----

  async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    let reply: Reply;
    try {
      reply = await this.answer(req);
    } catch (err) {
      reply = errorReply(err);
    }
    await delay(this.faults.latencyMs);
    this.send(res, reply);
  }

  private async answer(req: IncomingMessage): Promise<Reply> {
    if (this.faults.outage) {
      return { status: 503, body: [{ errorCode: 'SERVER_UNAVAILABLE', message: 'Server temporarily unavailable. Please try again later.' }] };
    }
    const url = new URL(req.url ?? '/', 'http://org');
    const m = /^\/services\/data\/?(?:v(\d+\.\d)(\/.*)?)?$/.exec(url.pathname);
    if (!m) throw notFound();
    if (!m[1]) return { status: 200, body: this.versions() };
    const version = m[1];
    if (Number(version) < MIN_VERSION || Number(version) > Number(this.opts.apiVersion)) throw notFound();
    if (this.faults.failNext.n > 0) {
      const f = this.faults.failNext;
      f.n--;
      this.opts.counter.count('fault.injected');
      return { status: f.status, body: [{ errorCode: f.errorCode, message: `Injected failure (${f.errorCode})` }] };
    }
    const userId = this.authenticate(req.headers.authorization);
    this.countApiCall();
    const body = await readJson(req);
    const call = this.newCall(req.method ?? 'GET', (m[2] ?? '').split('/').filter(Boolean).map(decodeURIComponent), url.searchParams,
      lowerHeaders(req.headers), body, version, userId);
    const kind = routeKind(call);
    this.opts.counter.count(kind);
    return this.dispatch(call);
  }

  private authenticate(header: string | undefined): string {
    const token = /^(?:Bearer|OAuth)\s+(\S+)$/i.exec(header ?? '')?.[1];
    const userId = token ? this.opts.validate(token) : undefined;
    if (!userId) throw new RequestError(401, 'INVALID_SESSION_ID', 'Session expired or invalid');
    return userId;
  }

  /** Salesforce refuses calls once the rolling 24 h allocation is used up. */
  private countApiCall(): void {
    this.rollUsageWindow();
    if (this.usage >= this.limit) {
      throw new RequestError(403, 'REQUEST_LIMIT_EXCEEDED', `TotalRequests Limit exceeded.`);
    }
    this.usage++;
  }

  private rollUsageWindow(): void {
    const now = this.opts.clock.now();
    if (now - this.usageWindowStart >= 24 * 3600_000) {
      this.usage = 0;
      this.usageWindowStart = now;
    }
  }

  private send(res: ServerResponse, reply: Reply): void {
    const { used, limit } = this.apiUsage();
    const headers: Record<string, string> = { 'Sforce-Limit-Info': `api-usage=${used}/${limit}`, ...reply.headers };
    if (reply.binary) {
      res.writeHead(reply.status, { ...headers, 'Content-Type': 'application/octet-stream' });
      Readable.from(chunks(reply.binary)).pipe(res);
      return;
    }
    if (reply.body === undefined || reply.status === 204) {
      res.writeHead(reply.status, headers).end();
      return;
    }
    res.writeHead(reply.status, { ...headers, 'Content-Type': 'application/json;charset=UTF-8' }).end(JSON.stringify(reply.body));
  }

  /** A call for a top-level request: writes run in their own transaction. */
  newCall(method: string, path: string[], query: URLSearchParams, headers: Call['headers'], body: unknown, version: string, userId: string): Call {
    const db = this.opts.db;
    return {
      method, path, query, headers, body, version, userId,
      write: (fn) => db.transaction(writeContext(userId, version, headers), fn),
    };
  }

  // ---- routing ----

  /** Answers one call; composite subrequests come through here too. */
  dispatch(call: Call): Reply {
    try {
      return this.route(call);
    } catch (err) {
      return errorReply(err);
    }
  }

  private route(call: Call): Reply {
    const [head, a, b, c, ...rest] = call.path;
    const m = call.method;
    const v = call.version;
    if (rest.length) throw notFound();
    if (!head && m === 'GET') return { status: 200, body: resources(v) };
    if (head === 'limits' && !a && m === 'GET') return { status: 200, body: this.limits() };
    if ((head === 'query' || head === 'queryAll') && m === 'GET' && !b) {
      return a ? this.queryMore(a, v, head) : this.query(call, head === 'queryAll');
    }
    if (head === 'composite') {
      if (a === 'sobjects' && !b) return collections(this, call);
      if (!a && m === 'POST') return composite(this, call);
      throw notFound();
    }
    if (head !== 'sobjects') throw notFound();
    if (!a) return allowed(m, ['GET']) ?? { status: 200, body: this.describeGlobal(v) };
    const object = this.opts.db.object(a);
    if (!object) throw notFound();
    if (!b) {
      if (m === 'POST') return this.create(call, object);
      return allowed(m, ['GET', 'POST']) ?? { status: 200, body: { objectDescribe: this.describeGlobalEntry(object, v), recentItems: [] } };
    }
    if (b === 'describe' && !c) return allowed(m, ['GET']) ?? { status: 200, body: this.describe(object, v) };
    if (c) return allowed(m, ['GET']) ?? this.blob(object, b, c);
    if (m === 'GET') return this.retrieve(call, object, b);
    if (m === 'PATCH') return this.update(call, object, b);
    if (m === 'DELETE') return this.remove(call, object, b);
    return allowed(m, ['GET', 'PATCH', 'DELETE'])!;
  }

  // ---- query ----

  private query(call: Call, all: boolean): Reply {
    const q = call.query.get('q');
    if (!q) throw new RequestError(400, 'MALFORMED_QUERY', 'A query string has to be specified');
    let result;
    try {
      result = runQuery(q, this.source(call.version, all), { apiVersion: call.version, now: () => this.opts.clock.now() });
    } catch (err) {
      if (err instanceof SoqlError) throw new RequestError(400, err.errorCode, err.message);
      throw err;
    }
    const batch = batchSize(call.headers['sforce-query-options'], this.opts.queryBatchSize);
    if (result.records.length <= batch) return { status: 200, body: { totalSize: result.totalSize, done: true, records: result.records } };
    const cursor = this.openCursor(result.records, result.totalSize, batch);
    return this.page(cursor, 0, call.version, all ? 'queryAll' : 'query');
  }

  /** `query/<cursor>-<offset>`: the next page of a query that did not fit in one response. */
  private queryMore(locator: string, version: string, resource: string): Reply {
    const m = /^(01g\w+)-(\d+)$/.exec(locator);
    const state = m && this.cursors.get(m[1]!);
    if (!m || !state || this.opts.clock.now() - state.usedAt > CURSOR_IDLE_MS) {
      throw new RequestError(400, 'INVALID_QUERY_LOCATOR', 'invalid query locator');
    }
    return this.page(m[1]!, Number(m[2]), version, resource);
  }

  private openCursor(records: unknown[], totalSize: number, batch: number): string {
    const id = `01g8c0000${(++this.cursorSeq).toString(36).padStart(6, '0').toUpperCase()}`;
    this.cursors.set(id, { records, totalSize, batch, usedAt: this.opts.clock.now() });
    // Salesforce caps open cursors per user; the oldest ones go first.
    if (this.cursors.size > MAX_CURSORS) this.cursors.delete(this.cursors.keys().next().value!);
    return id;
  }

  private page(cursor: string, offset: number, version: string, resource: string): Reply {
    const state = this.cursors.get(cursor)!;
    state.usedAt = this.opts.clock.now();
    const records = state.records.slice(offset, offset + state.batch);
    const next = offset + state.batch;
    const done = next >= state.records.length;
    if (done) this.cursors.delete(cursor);
    const body: Record<string, unknown> = { totalSize: state.totalSize, done, records };
    if (!done) body.nextRecordsUrl = `/services/data/v${version}/${resource}/${cursor}-${next}`;
    return { status: 200, body };
  }

  /** What SOQL sees: stored rows, with blob fields shown as their REST URL. */
  source(version: string, includeDeleted = false): QuerySource {
    const db = this.opts.db;
    const view = (object: ObjectSchema, row: Row) => blobsAsUrls(object, row, version);
    return {
      schema: db.schema,
      *rows(name) {
        const object = db.object(name);
        if (object) for (const row of db.rows(object.name, includeDeleted)) yield view(object, row);
      },
      byId(id) {
        const hit = db.find(id);
        return hit && { object: hit.object.name, row: view(hit.object, hit.row) };
      },
      // Only Id is indexed: the worker reads its batches by id, out of tens of thousands.
      rowsWithKeys(name, field, keys) {
        const object = db.object(name);
        if (!object || field !== 'Id' || includeDeleted) return undefined;
        return db.rowsWithIds(object.name, keys).map((row) => view(object, row));
      },
    };
  }

  // ---- sObject rows ----

  private create(call: Call, object: ObjectSchema): Reply {
    const input = recordBody(call.body);
    const id = call.write((tx) => tx.insert(object.name, input));
    return { status: 201, body: { id, success: true, errors: [] }, headers: { Location: recordUrl(call.version, object.name, id) } };
  }

  private retrieve(call: Call, object: ObjectSchema, id: string): Reply {
    const row = this.row(object, id);
    const wanted = call.query.get('fields')?.split(',').map((s) => s.trim()).filter(Boolean);
    return { status: 200, body: recordView(object, row, call.version, wanted) };
  }

  private update(call: Call, object: ObjectSchema, id: string): Reply {
    const row = this.row(object, id);
    const since = Date.parse(call.headers['if-unmodified-since'] ?? '');
    // One-second resolution: a change later within the same second goes unnoticed.
    if (!Number.isNaN(since) && Math.floor(Date.parse(row.LastModifiedDate as string) / 1000) * 1000 > since) {
      throw new RequestError(412, 'PRECONDITION_FAILED', 'The requested resource has been modified since the If-Unmodified-Since date.');
    }
    const input = recordBody(call.body);
    call.write((tx) => tx.update(object.name, row.Id as string, input));
    return { status: 204 };
  }

  private remove(call: Call, object: ObjectSchema, id: string): Reply {
    const row = this.row(object, id);
    call.write((tx) => tx.delete(object.name, row.Id as string));
    return { status: 204 };
  }

  private blob(object: ObjectSchema, id: string, fieldName: string): Reply {
    const row = this.row(object, id);
    const f = findField(object, fieldName);
    if (!f || f.type !== 'Base64') throw notFound();
    const data = row[f.name];
    if (!Buffer.isBuffer(data)) throw notFound();
    return { status: 200, binary: data };
  }

  private row(object: ObjectSchema, id: string): Row {
    const full = normalizeId(id);
    const hit = full && full.slice(0, 3) === object.keyPrefix ? this.opts.db.find(full) : undefined;
    if (hit) return hit.row;
    if (full && this.opts.db.isDeleted(full)) throw new RequestError(404, 'ENTITY_IS_DELETED', 'entity is deleted');
    throw notFound();
  }

  // ---- describe, versions, limits ----

  private describe(object: ObjectSchema, v: string): Record<string, unknown> {
    const children = Object.values(this.opts.db.schema.objects).flatMap((o) =>
      Object.values(o.fields)
        .filter((f) => f.referenceTo === object.name && f.childRelationshipName)
        .map((f) => ({ childSObject: o.name, field: f.name, relationshipName: `${f.childRelationshipName}__r`, cascadeDelete: f.type === 'MasterDetail' })),
    );
    return {
      ...this.describeGlobalEntry(object, v),
      fields: Object.values(object.fields).map(describeField),
      childRelationships: children,
      recordTypeInfos: [],
    };
  }

  private describeGlobal(v: string): Record<string, unknown> {
    return { encoding: 'UTF-8', maxBatchSize: 200, sobjects: Object.values(this.opts.db.schema.objects).map((o) => this.describeGlobalEntry(o, v)) };
  }

  private describeGlobalEntry(o: ObjectSchema, v: string): Record<string, unknown> {
    const custom = o.name.endsWith('__c');
    const base = `/services/data/v${v}/sobjects/${o.name}`;
    return {
      name: o.name, label: o.label, labelPlural: o.label, keyPrefix: o.keyPrefix, custom,
      createable: true, updateable: true, deletable: true, queryable: true, retrieveable: true, searchable: false,
      layoutable: custom, triggerable: true,
      urls: { sobject: base, describe: `${base}/describe`, rowTemplate: `${base}/{ID}` },
    };
  }

  private versions(): Array<Record<string, string>> {
    const out = [];
    for (let n = MIN_VERSION; n <= Number(this.opts.apiVersion); n++) {
      out.push({ label: releaseName(n), url: `/services/data/v${n}.0`, version: `${n}.0` });
    }
    return out;
  }

  private limits(): Record<string, unknown> {
    const { used, limit } = this.apiUsage();
    return { DailyApiRequests: { Max: limit, Remaining: Math.max(0, limit - used) } };
  }
}

// ---- helpers ----

/** The REST shape of a record: `attributes`, then every field (or those asked for). */
export function recordView(object: ObjectSchema, row: Row, version: string, fields?: string[]): Record<string, unknown> {
  const names = fields
    ? fields.map((n) => {
        const f = findField(object, n);
        if (!f) throw new RequestError(400, 'INVALID_FIELD', `No such column '${n}' on entity '${object.name}'. If you are attempting to use a custom field, be sure to append the '__c' after the custom field name.`);
        return f.name;
      })
    : Object.keys(object.fields);
  const shown = blobsAsUrls(object, row, version);
  const out: Record<string, unknown> = { attributes: { type: object.name, url: recordUrl(version, object.name, row.Id as string) } };
  for (const n of names) out[n] = shown[n] ?? null;
  return out;
}

function blobsAsUrls(object: ObjectSchema, row: Row, version: string): Record<string, unknown> {
  const blobs = blobFields(object).filter((f) => Buffer.isBuffer(row[f.name]));
  if (!blobs.length) return row as Record<string, unknown>;
  const out: Record<string, unknown> = { ...row };
  for (const f of blobs) out[f.name] = `${recordUrl(version, object.name, row.Id as string)}/${f.name}`;
  return out;
}

const blobFieldsOf = new WeakMap<ObjectSchema, FieldSchema[]>();

/** Worked out once per object: every row a query scans goes through blobsAsUrls. */
function blobFields(object: ObjectSchema): FieldSchema[] {
  let fields = blobFieldsOf.get(object);
  if (!fields) blobFieldsOf.set(object, (fields = Object.values(object.fields).filter((f) => f.type === 'Base64')));
  return fields;
}

export function recordUrl(version: string, object: string, id: string): string {
  return `/services/data/v${version}/sobjects/${object}/${id}`;
}

/** The record fields of a request body; anything but a JSON object is a parse error. */
export function recordBody(body: unknown): Record<string, unknown> {
  if (!body || typeof body !== 'object' || Array.isArray(body)) {
    throw new RequestError(400, 'JSON_PARSER_ERROR', 'The request body must be a JSON object');
  }
  return body as Record<string, unknown>;
}

/** `com/salesforce/api/rest/62.0;client=sdt-worker`: where Salesforce says a change came from. */
export function writeContext(userId: string, version: string, headers: Call['headers']): WriteContext {
  const client = /(?:^|[,;]\s*)client=([^,;\s]+)/i.exec(headers['sforce-call-options'] ?? '')?.[1];
  return { userId, changeOrigin: `com/salesforce/api/rest/${version}${client ? `;client=${client}` : ''}` };
}

/** The HTTP reply for anything thrown while answering a call. */
export function errorReply(err: unknown): Reply {
  if (err instanceof RequestError) return { status: err.status, body: err.body() };
  if (err instanceof SaveFailure) {
    return { status: 400, body: err.errors.map((e) => ({ message: e.message, errorCode: e.statusCode, fields: e.fields })) };
  }
  return { status: 500, body: [{ errorCode: 'UNKNOWN_EXCEPTION', message: 'An unexpected error occurred. Please include this ErrorId if you contact support: 0-sandbox' }] };
}

function allowed(method: string, methods: string[]): Reply | undefined {
  if (methods.includes(method)) return undefined;
  return {
    status: 405,
    body: [{ errorCode: 'METHOD_NOT_ALLOWED', message: `HTTP Method '${method}' not allowed. Allowed are ${methods.join(',')}` }],
  };
}

/** The counter kind of a call (tests and the benchmark count calls per message). */
function routeKind(call: Call): string {
  const [head, a, b, c] = call.path;
  const m = call.method;
  if (head === 'query' || head === 'queryAll') return a ? 'rest.query.more' : head === 'query' ? 'rest.query' : 'rest.queryAll';
  if (head === 'composite') {
    if (a !== 'sobjects') return 'rest.composite';
    return { POST: 'rest.collections.create', PATCH: 'rest.collections.update', DELETE: 'rest.collections.delete' }[m] ?? 'rest.collections.get';
  }
  if (head === 'sobjects' && a && b) {
    if (b === 'describe') return 'rest.describe';
    if (c) return 'rest.versiondata';
    return { GET: 'rest.sobject.get', PATCH: 'rest.sobject.update', DELETE: 'rest.sobject.delete' }[m] ?? 'rest.sobject.other';
  }
  if (head === 'sobjects' && a && m === 'POST') return 'rest.sobject.create';
  if (head === 'sobjects') return 'rest.describe';
  return 'rest.other';
}

function resources(v: string): Record<string, string> {
  const base = `/services/data/v${v}`;
  return { sobjects: `${base}/sobjects`, query: `${base}/query`, queryAll: `${base}/queryAll`, composite: `${base}/composite`, limits: `${base}/limits` };
}

/** v59 was Winter '24; three releases a year (Winter, Spring, Summer). */
function releaseName(n: number): string {
  const k = Math.floor((n - 59) / 3);
  const season = ['Winter', 'Spring', 'Summer'][(((n - 59) % 3) + 3) % 3];
  return `${season} '${String(24 + k).padStart(2, '0')}`;
}

/** `Sforce-Query-Options: batchSize=500` (200..2000), else the org's default. */
function batchSize(header: string | undefined, fallback: number): number {
  const n = Number(/batchSize=(\d+)/i.exec(header ?? '')?.[1]);
  return Number.isInteger(n) && n > 0 ? Math.min(2000, Math.max(200, n)) : fallback;
}

function lowerHeaders(h: IncomingMessage['headers']): Call['headers'] {
  return Object.fromEntries(Object.entries(h).map(([k, v]) => [k.toLowerCase(), Array.isArray(v) ? v.join(', ') : v]));
}

async function readJson(req: IncomingMessage): Promise<unknown> {
  const parts: Buffer[] = [];
  let size = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > MAX_BODY) throw new RequestError(413, 'REQUEST_ENTITY_TOO_LARGE', 'Request entity too large');
    parts.push(chunk);
  }
  const text = Buffer.concat(parts).toString('utf8');
  if (!text.trim()) return undefined;
  try {
    return JSON.parse(text) as unknown;
  } catch (err) {
    throw new RequestError(400, 'JSON_PARSER_ERROR', `Unexpected character: ${(err as Error).message}`);
  }
}

function* chunks(data: Buffer, size = 64 * 1024): Iterable<Buffer> {
  for (let i = 0; i < data.length; i += size) yield data.subarray(i, i + size);
}

function delay(ms: number): Promise<void> {
  return ms > 0 ? new Promise((r) => setTimeout(r, ms)) : Promise.resolve();
}

