/**
 * The sandbox org's in-memory record store. Rows are immutable objects keyed by their
 * 18-character id; a write replaces the row, so a transaction's undo log is just "put the
 * old row back". Every request runs synchronously inside one transaction, which is what
 * makes unique keys race-free here as they are in Salesforce's database.
 *
 * Committed writes to objects with Change Data Capture publish change events, grouped the
 * way Salesforce groups them: one event per distinct change within a transaction.
 */
import { createHash, randomUUID } from 'node:crypto';
import type { SandboxClock } from '../clock.js';
import type { ChangeEventLog, ChangeType } from './events.js';
import type { FieldSchema, ObjectSchema, OrgSchema } from './schema.js';
import { IdAllocator, normalizeId, to18 } from './ids.js';
import {
  RequestError, SaveFailure, autoNumber, convert, defaultValue, fieldType, findField,
  isSystem, isoDateTime, sfDateTime, type SaveError,
} from './fields.js';

export type Row = Readonly<Record<string, unknown>>;

/** Who writes, and how Salesforce would describe where the change came from. */
export interface WriteContext {
  userId: string;
  /** `com/salesforce/api/rest/62.0;client=sdt-worker`, or '' for the UI. */
  changeOrigin: string;
  /**
   * A change Salesforce cannot describe in a change event (a database-level change, an
   * event over 1 MB): it publishes a `GAP_*` event with the record ids and no fields.
   * `'overflow'`: a transaction too large to list (over 100,000 changes) — one
   * `GAP_OVERFLOW` event with the dummy id `000000000000000AAA` instead of any per-record one.
   */
  gap?: boolean | 'overflow';
}

/** Org behaviour around writes that Salesforce implements for its standard objects. */
export interface Triggers {
  beforeInsert?(tx: Transaction, object: ObjectSchema, row: Record<string, unknown>): void;
  afterInsert?(tx: Transaction, object: ObjectSchema, row: Row): void;
  afterDelete?(tx: Transaction, object: ObjectSchema, row: Row): void;
}

export interface OrgDbOptions {
  clock: SandboxClock;
  events: ChangeEventLog;
  triggers?: Triggers;
}

interface Change {
  object: string;
  /** The writer, as the transaction's context named it when the change was made. */
  ctx: WriteContext;
  changeType: ChangeType;
  recordId: string;
  fields: Record<string, unknown>;
  changedFields: string[];
}

const LONG_TEXT = 1000;

export class OrgDb {
  /** false, true, or a probability in 0..1 that a long text field in an UPDATE arrives as a diff. */
  diffLongText: boolean | number = false;
  private readonly live = new Map<string, Map<string, Row>>();
  private readonly recycleBin = new Map<string, Map<string, Row>>();
  /** `Object.Field` → (normalized value → record id), for unique fields. */
  private readonly uniques = new Map<string, Map<string, string>>();
  private readonly autoNumbers = new Map<string, number>();
  private readonly ids = new IdAllocator();
  private commitNumber = 0;
  /** Each live row's place in its table's iteration order, so id lookups can keep that order. */
  private readonly positions = new Map<string, number>();
  private lastPosition = 0;

  constructor(readonly schema: OrgSchema, private readonly opts: OrgDbOptions) {
    for (const name of Object.keys(schema.objects)) {
      this.live.set(name, new Map());
      this.recycleBin.set(name, new Map());
    }
  }

  /** The object's schema, its API name matched case-insensitively as Salesforce does. */
  object(name: string): ObjectSchema | undefined {
    const exact = this.schema.objects[name];
    if (exact) return exact;
    const lower = name.toLowerCase();
    return Object.values(this.schema.objects).find((o) => o.name.toLowerCase() === lower);
  }

  objectOfId(id: string): ObjectSchema | undefined {
    return Object.values(this.schema.objects).find((o) => o.keyPrefix === id.slice(0, 3));
  }

  /** A live row by id (15 or 18 characters), wherever it lives. */
  find(id: string): { object: ObjectSchema; row: Row } | undefined {
    const full = normalizeId(id);
    const object = full && this.objectOfId(full);
    const row = object && this.live.get(object.name)?.get(full);
    return object && row ? { object, row } : undefined;
  }

  isDeleted(id: string): boolean {
    const full = normalizeId(id);
    const object = full && this.objectOfId(full);
    return !!object && !!full && !!this.recycleBin.get(object.name)?.has(full);
  }

  /** Rows of an object, optionally with those in the recycle bin (queryAll). */
  *rows(object: string, includeDeleted = false): Iterable<Row> {
    yield* this.live.get(object)?.values() ?? [];
    if (includeDeleted) yield* this.recycleBin.get(object)?.values() ?? [];
  }

  /**
   * Live rows with these ids (15-character keys; others match nothing), in `rows()` order:
   * what a scan for `Id IN (…)` would find, without the scan.
   */
  rowsWithIds(object: string, keys: Iterable<string>): Row[] {
    const table = this.live.get(object);
    if (!table) return [];
    const hits: Array<{ at: number; row: Row }> = [];
    for (const key of new Set(keys)) {
      if (key.length !== 15) continue;
      const id = to18(key);
      const row = table.get(id);
      if (row) hits.push({ at: this.positions.get(id)!, row });
    }
    return hits.sort((a, b) => a.at - b.at).map((h) => h.row);
  }

  /**
   * Runs `fn` as one transaction: its writes are visible at once, undone if it throws,
   * and published as change events when it returns.
   */
  transaction<T>(ctx: WriteContext, fn: (tx: Transaction) => T): T {
    const tx = new Transaction(this, ctx, this.opts.clock.now());
    let result: T;
    try {
      result = fn(tx);
    } catch (err) {
      tx.rollback();
      throw err;
    }
    this.publish(tx);
    return result;
  }

  // ---- used by Transaction ----

  /** @internal */ table(object: string): Map<string, Row> {
    return this.live.get(object)!;
  }
  /** @internal */ setRow(object: string, id: string, row: Row | undefined): void {
    const table = this.live.get(object)!;
    if (!row) {
      table.delete(id);
      this.positions.delete(id);
      return;
    }
    // A Map re-appends a key it no longer holds (a rolled-back delete): so does its position.
    if (!table.has(id)) this.positions.set(id, ++this.lastPosition);
    table.set(id, row);
  }
  /** @internal */ bin(object: string): Map<string, Row> {
    return this.recycleBin.get(object)!;
  }
  /** @internal */ uniqueIndex(object: ObjectSchema, f: FieldSchema): Map<string, string> {
    const key = `${object.name}.${f.name}`;
    let idx = this.uniques.get(key);
    if (!idx) this.uniques.set(key, (idx = new Map()));
    return idx;
  }
  /** @internal */ newId(object: ObjectSchema): string {
    return this.ids.allocate(object.keyPrefix);
  }
  /** @internal */ nextAutoNumber(object: string): number {
    const n = (this.autoNumbers.get(object) ?? 0) + 1;
    this.autoNumbers.set(object, n);
    return n;
  }
  /** @internal */ get triggers(): Triggers {
    return this.opts.triggers ?? {};
  }

  private publish(tx: Transaction): void {
    const changes = tx.changes.filter((c) => this.schema.objects[c.object]?.cdc);
    if (changes.length === 0) return;
    const commitNumber = ++this.commitNumber;
    const transactionKey = randomUUID();
    let sequenceNumber = 0;
    if (changes[0]!.ctx.gap === 'overflow') {
      const object = this.schema.objects[changes[0]!.object]!;
      this.opts.events.publish(channelOf(object.name), schemaId(object), {
        ChangeEventHeader: {
          entityName: object.name, recordIds: ['000000000000000AAA'], changeType: 'GAP_OVERFLOW',
          changeOrigin: '', transactionKey, sequenceNumber: 1, commitTimestamp: tx.time, commitNumber,
          commitUser: changes[0]!.ctx.userId, changedFields: [],
        },
      });
      return;
    }
    for (const group of groupChanges(changes)) {
      const first = group[0]!;
      const object = this.schema.objects[first.object]!;
      const gap = first.ctx.gap === true;
      const fields = gap ? {} : this.eventFields(object, first);
      this.opts.events.publish(channelOf(object.name), schemaId(object), {
        ChangeEventHeader: {
          entityName: object.name,
          recordIds: group.map((c) => c.recordId),
          changeType: gap ? (`GAP_${first.changeType}` as ChangeType) : first.changeType,
          changeOrigin: first.ctx.changeOrigin,
          transactionKey,
          sequenceNumber: ++sequenceNumber,
          commitTimestamp: tx.time,
          commitNumber,
          commitUser: first.ctx.userId,
          changedFields: gap ? [] : first.changedFields,
        },
        ...fields,
      });
    }
  }

  /** Date-times as UTC `…Z`, and long text in an UPDATE perhaps as a diff (see diffLongText). */
  private eventFields(object: ObjectSchema, change: Change): Record<string, unknown> {
    const out: Record<string, unknown> = {};
    for (const [name, value] of Object.entries(change.fields)) {
      const type = fieldType(object, name);
      if (type === 'DateTime' && typeof value === 'string') out[name] = isoDateTime(value);
      else if (isLongText(value) && change.changeType === 'UPDATE' && this.sendDiff()) out[name] = { diff: diffText(value) };
      else out[name] = value;
    }
    return out;
  }

  private sendDiff(): boolean {
    const d = this.diffLongText;
    return typeof d === 'number' ? Math.random() < d : d;
  }
}

/** One transaction's view of the store: writes apply at once and can be undone. */
export class Transaction {
  readonly changes: Change[] = [];
  private readonly undo: Array<() => void> = [];

  /** Composite requests switch this per subrequest (each may carry its own call options). */
  constructor(readonly db: OrgDb, public ctx: WriteContext, readonly time: number) {}

  /** Runs `fn`; when it throws, its writes (and their change events) are undone. */
  atomically<T>(fn: () => T): T {
    const undoMark = this.undo.length;
    const changeMark = this.changes.length;
    try {
      return fn();
    } catch (err) {
      this.undoTo(undoMark);
      this.changes.length = changeMark;
      throw err;
    }
  }

  rollback(): void {
    this.undoTo(0);
    this.changes.length = 0;
  }

  /** Creates a record from request fields (validated); returns its 18-character id. */
  insert(objectName: string, input: Record<string, unknown>): string {
    const object = this.requireObject(objectName);
    return this.atomically(() => {
      const row: Record<string, unknown> = {};
      const errors = this.apply(object, row, input, 'insert');
      for (const f of Object.values(object.fields)) {
        if (!(f.name in row) && !isSystem(f)) row[f.name] = defaultValue(f);
      }
      errors.push(...this.requiredMissing(row, Object.values(object.fields), errors));
      if (errors.length) throw new SaveFailure(errors);
      return this.insertRow(object, row);
    });
  }

  /** Stores a new row without field validation (the org's own writes), filling system fields. */
  insertRow(object: ObjectSchema, values: Record<string, unknown>): string {
    const row: Record<string, unknown> = { ...values };
    const id = this.db.newId(object);
    const now = sfDateTime(Math.floor(this.time / 1000) * 1000);
    Object.assign(row, {
      Id: id, IsDeleted: false, CreatedDate: now, CreatedById: this.ctx.userId,
      LastModifiedDate: now, LastModifiedById: this.ctx.userId, SystemModstamp: now,
    });
    if (object.fields.OwnerId && !row.OwnerId) row.OwnerId = this.ctx.userId;
    const name = object.fields.Name;
    if (name?.type === 'AutoNumber') row.Name = autoNumber(name.displayFormat, this.db.nextAutoNumber(object.name));
    this.db.triggers.beforeInsert?.(this, object, row);
    this.checkUnique(object, row, id);
    this.put(object, id, Object.freeze(row));
    this.changes.push({
      object: object.name, ctx: this.ctx, changeType: 'CREATE', recordId: id, changedFields: [],
      fields: Object.fromEntries(Object.entries(row).filter(([k, v]) => isEventField(k) && v !== null && !Buffer.isBuffer(v))),
    });
    this.db.triggers.afterInsert?.(this, object, row);
    return id;
  }

  /** Updates a record from request fields (validated). */
  update(objectName: string, id: string, input: Record<string, unknown>): void {
    const object = this.requireObject(objectName);
    this.atomically(() => {
      const current = this.current(object, id);
      const row: Record<string, unknown> = { ...current };
      const errors = this.apply(object, row, input, 'update');
      const touched = Object.keys(input).map((k) => findField(object, k)).filter((f) => f !== undefined);
      errors.push(...this.requiredMissing(row, touched, errors));
      if (errors.length) throw new SaveFailure(errors);
      this.updateRow(object, current.Id as string, row);
    });
  }

  /** Replaces a row's values without validation (the org's own writes). */
  updateRow(object: ObjectSchema, id: string, values: Record<string, unknown>): void {
    const before = this.current(object, id);
    const now = sfDateTime(Math.floor(this.time / 1000) * 1000);
    const row: Record<string, unknown> = { ...before, ...values, LastModifiedDate: now, LastModifiedById: this.ctx.userId, SystemModstamp: now };
    this.checkUnique(object, row, id);
    this.put(object, id, Object.freeze(row));
    const changed = Object.keys(row).filter((k) => isEventField(k) && !sameValue(before[k], row[k]));
    if (!changed.includes('LastModifiedDate')) changed.push('LastModifiedDate');
    this.changes.push({
      object: object.name, ctx: this.ctx, changeType: 'UPDATE', recordId: id, changedFields: changed,
      fields: Object.fromEntries(changed.map((k) => [k, Buffer.isBuffer(row[k]) ? null : (row[k] ?? null)])),
    });
  }

  /** Moves a record (and its master-detail children) to the recycle bin. */
  delete(objectName: string, id: string): void {
    const object = this.requireObject(objectName);
    this.atomically(() => {
      const row = this.current(object, id);
      const full = row.Id as string;
      this.put(object, full, undefined);
      const bin = this.db.bin(object.name);
      bin.set(full, Object.freeze({ ...row, IsDeleted: true }));
      this.undo.push(() => bin.delete(full));
      this.changes.push({ object: object.name, ctx: this.ctx, changeType: 'DELETE', recordId: full, fields: {}, changedFields: [] });
      for (const [child, f] of this.detailFields(object.name)) {
        for (const r of [...this.db.rows(child.name)]) if (r[f.name] === full) this.delete(child.name, r.Id as string);
      }
      this.db.triggers.afterDelete?.(this, object, row);
    });
  }

  /** The live row, or the SaveFailure Salesforce reports for a missing or deleted one. */
  current(object: ObjectSchema, id: string): Row {
    const full = normalizeId(id);
    if (!full || full.slice(0, 3) !== object.keyPrefix) {
      throw new SaveFailure([{ statusCode: 'MALFORMED_ID', message: `${object.label} ID: id value of incorrect type: ${id}`, fields: ['Id'] }]);
    }
    const row = this.db.table(object.name).get(full);
    if (row) return row;
    if (this.db.bin(object.name).has(full)) throw new SaveFailure([{ statusCode: 'ENTITY_IS_DELETED', message: 'entity is deleted', fields: [] }]);
    throw new SaveFailure([{ statusCode: 'INVALID_CROSS_REFERENCE_KEY', message: 'invalid cross reference id', fields: [] }]);
  }

  private requireObject(name: string): ObjectSchema {
    const object = this.db.object(name);
    if (!object) throw new RequestError(404, 'NOT_FOUND', 'The requested resource does not exist');
    return object;
  }

  /** Converts and copies request fields onto `row`; returns the per-record errors. */
  private apply(object: ObjectSchema, row: Record<string, unknown>, input: Record<string, unknown>, op: 'insert' | 'update'): SaveError[] {
    const errors: SaveError[] = [];
    const readOnly: string[] = [];
    for (const [key, raw] of Object.entries(input)) {
      if (key === 'attributes' || (key.toLowerCase() === 'id' && op === 'update')) continue;
      const f = findField(object, key);
      if (!f) throw new RequestError(400, 'INVALID_FIELD', `No such column '${key}' on sobject of type ${object.name}`);
      if (isSystem(f) || (op === 'update' && (f.type === 'MasterDetail' || NOT_UPDATEABLE.has(`${object.name}.${f.name}`)))) {
        readOnly.push(f.name);
        continue;
      }
      const converted = convert(f, raw);
      if ('error' in converted) errors.push(converted.error);
      else {
        const refError = this.checkReference(f, converted.value);
        if (refError) errors.push(refError);
        else row[f.name] = converted.value;
      }
    }
    if (readOnly.length) {
      errors.unshift({
        statusCode: 'INVALID_FIELD_FOR_INSERT_UPDATE',
        message: `Unable to create/update fields: ${readOnly.join(', ')}. Please check the security settings of this field and verify that it is read/write for your profile or permission set.`,
        fields: readOnly,
      });
    }
    return errors;
  }

  private checkReference(f: FieldSchema, value: unknown): SaveError | undefined {
    if ((f.type !== 'Lookup' && f.type !== 'MasterDetail') || typeof value !== 'string') return undefined;
    const target = this.db.find(value);
    if (target && (!f.referenceTo || target.object.name === f.referenceTo)) return undefined;
    if (this.db.isDeleted(value)) return { statusCode: 'ENTITY_IS_DELETED', message: 'entity is deleted', fields: [f.name] };
    if (target || (f.referenceTo && value.slice(0, 3) !== this.db.object(f.referenceTo)?.keyPrefix)) {
      return {
        statusCode: 'FIELD_INTEGRITY_EXCEPTION',
        message: `field integrity exception: unknown (${f.label ?? f.name}: id value of incorrect type: ${value})`,
        fields: [f.name],
      };
    }
    return { statusCode: 'INVALID_CROSS_REFERENCE_KEY', message: `invalid cross reference id`, fields: [f.name] };
  }

  /** Required fields left empty (a field that already failed with a bad value is not reported twice). */
  private requiredMissing(row: Record<string, unknown>, fields: FieldSchema[], errors: SaveError[]): SaveError[] {
    const failed = new Set(errors.flatMap((e) => e.fields));
    const missing = fields
      .filter((f) => f.required && !isSystem(f) && !failed.has(f.name) && (row[f.name] === null || row[f.name] === undefined))
      .map((f) => f.name);
    return missing.length
      ? [{ statusCode: 'REQUIRED_FIELD_MISSING', message: `Required fields are missing: [${missing.join(', ')}]`, fields: missing }]
      : [];
  }

  /** Salesforce reports the first conflicting unique value, naming the record that holds it. */
  private checkUnique(object: ObjectSchema, row: Record<string, unknown>, id: string): void {
    for (const f of Object.values(object.fields)) {
      if (!f.unique || row[f.name] === null || row[f.name] === undefined) continue;
      const holder = this.db.uniqueIndex(object, f).get(uniqueKey(f, row[f.name]));
      if (holder && holder !== id) {
        // A record written earlier in the same request has no committed id to show yet.
        const shown = this.changes.some((c) => c.recordId === holder && c.changeType === 'CREATE') ? '<unknown>' : holder.slice(0, 15);
        throw new SaveFailure([{
          statusCode: 'DUPLICATE_VALUE',
          message: `duplicate value found: ${f.name} duplicates value on record with id: ${shown}`,
          fields: [],
        }]);
      }
    }
  }

  /** Replaces (or removes) a row, keeping unique indexes in step, with undo. */
  private put(object: ObjectSchema, id: string, row: Row | undefined): void {
    const before = this.db.table(object.name).get(id);
    this.reindex(object, id, before, row);
    this.db.setRow(object.name, id, row);
    this.undo.push(() => {
      this.reindex(object, id, row, before);
      this.db.setRow(object.name, id, before);
    });
  }

  private reindex(object: ObjectSchema, id: string, from: Row | undefined, to: Row | undefined): void {
    for (const f of Object.values(object.fields)) {
      if (!f.unique) continue;
      const idx = this.db.uniqueIndex(object, f);
      const old = from?.[f.name];
      if (old !== null && old !== undefined && idx.get(uniqueKey(f, old)) === id) idx.delete(uniqueKey(f, old));
      const value = to?.[f.name];
      if (value !== null && value !== undefined) idx.set(uniqueKey(f, value), id);
    }
  }

  private detailFields(master: string): Array<[ObjectSchema, FieldSchema]> {
    return Object.values(this.db.schema.objects).flatMap((o) =>
      Object.values(o.fields).filter((f) => f.type === 'MasterDetail' && f.referenceTo === master).map((f) => [o, f] as [ObjectSchema, FieldSchema]),
    );
  }

  private undoTo(mark: number): void {
    while (this.undo.length > mark) this.undo.pop()!();
  }
}

/** Fields Salesforce lets you set on create but never change afterwards. */
const NOT_UPDATEABLE = new Set([
  'ContentVersion.VersionData', 'ContentVersion.PathOnClient', 'ContentVersion.ContentDocumentId',
  'ContentVersion.FirstPublishLocationId', 'ContentDocumentLink.LinkedEntityId', 'ContentDocumentLink.ContentDocumentId',
]);

function uniqueKey(f: FieldSchema, value: unknown): string {
  const s = String(value);
  return f.caseSensitive ? s : s.toLowerCase();
}

/** Change events name neither the record id nor the bookkeeping fields. */
function isEventField(name: string): boolean {
  return name !== 'Id' && name !== 'IsDeleted' && name !== 'SystemModstamp';
}

function sameValue(a: unknown, b: unknown): boolean {
  if (Buffer.isBuffer(a) && Buffer.isBuffer(b)) return a.equals(b);
  return (a ?? null) === (b ?? null);
}

function isLongText(value: unknown): value is string {
  return typeof value === 'string' && value.length >= LONG_TEXT;
}

/** A unified-diff-like summary; subscribers are expected to re-read the record anyway. */
function diffText(value: string): string {
  const lines = value.split('\n');
  return `@@ -1,0 +1,${lines.length} @@\n` + lines.slice(0, 3).map((l) => `+${l.slice(0, 80)}`).join('\n');
}

/**
 * Salesforce merges the changes of one transaction that set the same values on the same
 * object into one event listing all their record ids.
 */
function groupChanges(changes: Change[]): Change[][] {
  const groups = new Map<string, Change[]>();
  for (const c of changes) {
    const key = `${c.object}\u0000${c.ctx.userId}\u0000${c.ctx.changeOrigin}\u0000${c.changeType}\u0000${JSON.stringify(c.fields)}\u0000${c.changedFields.join(',')}`;
    const g = groups.get(key);
    if (g) g.push(c);
    else groups.set(key, [c]);
  }
  return [...groups.values()];
}

/** `/data/Secure_EmailMessage__ChangeEvent` for `Secure_EmailMessage__c`, `/data/AccountChangeEvent` for Account. */
export function channelOf(objectName: string): string {
  return `/data/${objectName.endsWith('__c') ? objectName.slice(0, -1) : objectName}ChangeEvent`;
}

/** A stable schema id per object (Salesforce's is an opaque hash of the event schema). */
export function schemaId(object: ObjectSchema): string {
  return createHash('sha256').update(object.name + ':' + Object.keys(object.fields).sort().join(',')).digest('base64url').slice(0, 22);
}

