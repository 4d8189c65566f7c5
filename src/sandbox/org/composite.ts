/**
 * The two batch resources of the sandbox's REST API:
 * - sObject Collections (`/composite/sobjects`): up to 200 records created, updated or
 *   deleted in one transaction, one result per record, `allOrNone` rolling back all;
 * - Composite (`/composite`): up to 25 subrequests, later ones referring to earlier
 *   results as `@{ref.id}`; with `allOrNone` they commit or roll back together.
 */
import { RequestError, SaveFailure, type SaveError } from './fields.js';
import { normalizeId } from './ids.js';
import type { Transaction } from './db.js';
import { errorReply, recordBody, writeContext, notFound, type Call, type Reply, type RestApi } from './rest.js';

const MAX_RECORDS = 200;
const MAX_SUBREQUESTS = 25;

const ROLLED_BACK: SaveError = {
  statusCode: 'ALL_OR_NONE_OPERATION_ROLLED_BACK',
  message: 'Record rolled back because not all records were valid and the request was using AllOrNone header',
  fields: [],
};
const HALTED = [{ errorCode: 'PROCESSING_HALTED', message: 'The transaction was rolled back since another operation in the same transaction failed.' }];

/** Thrown inside a transaction to undo it after its results were recorded. */
class Rollback extends Error {}

// ---- sObject Collections ----

interface RecordOp {
  /** The record's id when the request names it (update, delete). */
  id?: string;
  run(tx: Transaction): string;
}

export function collections(_api: RestApi, call: Call): Reply {
  if (call.method === 'DELETE') {
    const ids = (call.query.get('ids') ?? '').split(',').filter(Boolean);
    checkCount(ids.length);
    return runBatch(call, call.query.get('allOrNone') === 'true', ids.map(deleteOp));
  }
  if (call.method !== 'POST' && call.method !== 'PATCH') {
    return { status: 405, body: [{ errorCode: 'METHOD_NOT_ALLOWED', message: `HTTP Method '${call.method}' not allowed. Allowed are POST,PATCH,DELETE` }] };
  }
  const body = recordBody(call.body);
  if (!Array.isArray(body.records)) throw new RequestError(400, 'JSON_PARSER_ERROR', 'The request body must contain a records array');
  checkCount(body.records.length);
  const ops = (body.records as unknown[]).map((r) => (call.method === 'POST' ? createOp(r) : updateOp(r)));
  return runBatch(call, body.allOrNone === true, ops);
}

function checkCount(n: number): void {
  if (n > MAX_RECORDS) {
    throw new RequestError(400, 'EXCEEDED_ID_LIMIT', `record limit reached. cannot submit more than ${MAX_RECORDS} records into this call`);
  }
}

function createOp(raw: unknown): RecordOp {
  return {
    run(tx) {
      const { type, fields } = splitRecord(raw);
      if ('id' in fields || 'Id' in fields) throw new SaveFailure([{ statusCode: 'INVALID_FIELD', message: 'cannot specify Id in an insert call', fields: ['Id'] }]);
      return tx.insert(type, fields);
    },
  };
}

function updateOp(raw: unknown): RecordOp {
  const given = raw && typeof raw === 'object' ? ((raw as Record<string, unknown>).id ?? (raw as Record<string, unknown>).Id) : undefined;
  const id = typeof given === 'string' ? (normalizeId(given) ?? given) : undefined;
  return {
    id,
    run(tx) {
      const { type, fields } = splitRecord(raw);
      if (!id) throw new SaveFailure([{ statusCode: 'MISSING_ARGUMENT', message: 'Id not specified in an update call', fields: [] }]);
      delete fields.id;
      delete fields.Id;
      tx.update(type, id, fields);
      return id;
    },
  };
}

function deleteOp(given: string): RecordOp {
  const id = normalizeId(given) ?? given;
  return {
    id,
    run(tx) {
      const object = normalizeId(given) && tx.db.objectOfId(id);
      if (!object) throw new SaveFailure([{ statusCode: 'MALFORMED_ID', message: `malformed id ${given}`, fields: [] }]);
      tx.delete(object.name, id);
      return id;
    },
  };
}

function splitRecord(raw: unknown): { type: string; fields: Record<string, unknown> } {
  if (!raw || typeof raw !== 'object' || Array.isArray(raw)) throw new RequestError(400, 'JSON_PARSER_ERROR', 'Each record must be a JSON object');
  const { attributes, ...fields } = raw as Record<string, unknown>;
  const type = (attributes as { type?: unknown } | undefined)?.type;
  if (typeof type !== 'string') throw new SaveFailure([{ statusCode: 'INVALID_TYPE', message: 'No SObject Type defined in record', fields: [] }]);
  return { type, fields };
}

/** Runs each record in one transaction; per-record failures become results, not errors. */
function runBatch(call: Call, allOrNone: boolean, ops: RecordOp[]): Reply {
  let results: Array<{ id?: string; success: boolean; errors: SaveError[] }> = [];
  try {
    call.write((tx) => {
      results = ops.map((op) => {
        try {
          return { id: op.run(tx), success: true, errors: [] };
        } catch (err) {
          if (err instanceof SaveFailure) return { id: op.id, success: false, errors: err.errors };
          throw err;
        }
      });
      if (allOrNone && results.some((r) => !r.success)) throw new Rollback();
    });
  } catch (err) {
    if (!(err instanceof Rollback)) throw err;
    results = results.map((r, i) => (r.success ? { id: ops[i]!.id, success: false, errors: [ROLLED_BACK] } : r));
  }
  return {
    status: 200,
    body: results.map((r) => (r.id === undefined ? { success: r.success, errors: r.errors } : { id: r.id, success: r.success, errors: r.errors })),
  };
}

// ---- Composite ----

interface SubRequest {
  method: string;
  url: string;
  referenceId: string;
  body?: unknown;
  httpHeaders?: Record<string, string>;
}

interface SubResponse {
  body: unknown;
  httpHeaders: Record<string, string>;
  httpStatusCode: number;
  referenceId: string;
}

export function composite(api: RestApi, call: Call): Reply {
  const body = recordBody(call.body);
  const subs = checkSubrequests(body.compositeRequest);
  const results: SubResponse[] = [];
  const bodies = new Map<string, unknown>();
  const run = (tx?: Transaction) => {
    for (const sub of subs) {
      const reply = runSub(api, call, sub, bodies, tx);
      results.push({ body: reply.body ?? null, httpHeaders: reply.headers ?? {}, httpStatusCode: reply.status, referenceId: sub.referenceId });
      if (reply.status < 400) bodies.set(sub.referenceId, reply.body);
      else if (tx) throw new Rollback();
    }
  };
  if (body.allOrNone !== true) run();
  else {
    try {
      api.db.transaction(writeContext(call.userId, call.version, call.headers), run);
    } catch (err) {
      if (!(err instanceof Rollback)) throw err;
      // The failed subrequest keeps its error; every other one reports the rollback.
      const failed = results.length - 1;
      for (let i = 0; i < subs.length; i++) {
        if (i !== failed) results[i] = { body: HALTED, httpHeaders: {}, httpStatusCode: 400, referenceId: subs[i]!.referenceId };
      }
    }
  }
  return { status: 200, body: { compositeResponse: results } };
}

function checkSubrequests(raw: unknown): SubRequest[] {
  if (!Array.isArray(raw) || raw.length === 0) throw new RequestError(400, 'JSON_PARSER_ERROR', 'compositeRequest must be a non-empty array');
  if (raw.length > MAX_SUBREQUESTS) {
    throw new RequestError(400, 'LIMIT_EXCEEDED', `Maximum number of subrequests exceeded: ${raw.length} > ${MAX_SUBREQUESTS}`);
  }
  const seen = new Set<string>();
  for (const s of raw as SubRequest[]) {
    if (!s || typeof s.method !== 'string' || typeof s.url !== 'string' || typeof s.referenceId !== 'string' || !/^\w+$/.test(s.referenceId)) {
      throw new RequestError(400, 'JSON_PARSER_ERROR', 'Each subrequest needs method, url and a referenceId of letters, digits and underscores');
    }
    if (seen.has(s.referenceId)) throw new RequestError(400, 'DUPLICATE_VALUE', `Duplicate ReferenceId provided in the request: ${s.referenceId}`);
    seen.add(s.referenceId);
  }
  return raw as SubRequest[];
}

function runSub(api: RestApi, parent: Call, sub: SubRequest, bodies: Map<string, unknown>, tx?: Transaction): Reply {
  let url: string;
  let body: unknown;
  try {
    url = resolve(sub.url, bodies);
    body = resolveDeep(sub.body, bodies);
  } catch (err) {
    return errorReply(err);
  }
  const m = /^\/services\/data\/v(\d+\.\d)(\/[^?]*)?(?:\?(.*))?$/.exec(url);
  if (!m) return errorReply(notFound());
  const headers = {
    'sforce-call-options': parent.headers['sforce-call-options'],
    ...Object.fromEntries(Object.entries(sub.httpHeaders ?? {}).map(([k, v]) => [k.toLowerCase(), String(v)])),
  };
  const version = m[1]!;
  const call: Call = {
    ...api.newCall(sub.method.toUpperCase(), (m[2] ?? '').split('/').filter(Boolean).map(decodeURIComponent),
      new URLSearchParams(m[3] ?? ''), headers, body, version, parent.userId),
  };
  if (tx) {
    call.write = (fn) => {
      tx.ctx = writeContext(parent.userId, version, headers);
      return tx.atomically(() => fn(tx));
    };
  }
  const reply = api.dispatch(call);
  return reply.binary ? { ...reply, binary: undefined, body: reply.binary.toString('base64') } : reply;
}

/** Replaces every `@{ref.path}` in a string with the value at that path of an earlier result. */
function resolve(text: string, bodies: Map<string, unknown>): string {
  return text.replace(/@\{(\w+)((?:\.\w+|\[\d+\])*)\}/g, (_, ref: string, path: string) => {
    let value: unknown = bodies.get(ref);
    for (const [, key, index] of path.matchAll(/\.(\w+)|\[(\d+)\]/g)) {
      value = value && typeof value === 'object' ? (value as Record<string, unknown>)[key ?? index!] : undefined;
    }
    if (value === undefined || value === null || typeof value === 'object') {
      throw new RequestError(400, 'PROCESSING_HALTED',
        `Invalid reference specified. No value for ${ref}${path} found in ${ref}. Provided referenceId ${ref} is either not valid or not found.`);
    }
    return String(value);
  });
}

function resolveDeep(value: unknown, bodies: Map<string, unknown>): unknown {
  if (typeof value === 'string') return resolve(value, bodies);
  if (Array.isArray(value)) return value.map((v) => resolveDeep(v, bodies));
  if (value && typeof value === 'object') {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, resolveDeep(v, bodies)]));
  }
  return value;
}
