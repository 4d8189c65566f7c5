/**
 * The Salesforce side as the pipeline sees it: typed reads and batched writes of the two
 * objects and of Files, over jsforce's REST client. Every write goes through sObject
 * Collections (≤200 records a call, allOrNone false) so one bad record never blocks the
 * other 199, and carries `Sforce-Call-Options: client=<name>` (set on the connection) so
 * the change events it raises are recognised as ours and skipped.
 */
import type { Connection } from 'jsforce';
import type { Readable } from 'node:stream';
import {
  ATTEMPT_OBJECT, MESSAGE_OBJECT, SEND_FIELDS,
  type Attachment, type SecureEmailAttempt, type SecureEmailMessage,
} from '../domain/record.js';

export const BATCH = 200;

export interface SaveOutcome {
  id?: string;
  ok: boolean;
  /** The insert lost a race on a unique field (someone else owns this attempt key). */
  duplicate: boolean;
  error?: { code: string; message: string };
}

export interface StaleAttempt {
  attemptId: string;
  messageId: string;
  outcome: 'Claimed' | 'Posting';
  attemptKey: string;
  messageStatus: string | null;
  messageAttempts: number;
  worker: string | null;
}

export type MessageUpdate = Partial<SecureEmailMessage> & { Id: string };
export type AttemptUpdate = Partial<SecureEmailAttempt> & { Id: string };

export interface SalesforceRecords {
  readMessages(ids: string[]): Promise<SecureEmailMessage[]>;
  /** `Queued` messages, oldest first (the reconcile sweep), with when they were queued. */
  findQueued(limit: number): Promise<Array<{ id: string; queuedAt: number }>>;
  /** Attempts still `Claimed`/`Posting` whose last write is older than the cutoff. */
  findStaleAttempts(cutoff: Date, limit: number): Promise<StaleAttempt[]>;
  /** `Sent` messages with a tracking id, and recently final ones (receipt schedule rebuild). */
  findAwaitingReceipts(since: Date, limit: number): Promise<SecureEmailMessage[]>;
  insertAttempts(rows: SecureEmailAttempt[]): Promise<SaveOutcome[]>;
  updateAttempts(rows: AttemptUpdate[]): Promise<SaveOutcome[]>;
  updateMessages(rows: MessageUpdate[]): Promise<SaveOutcome[]>;
  attachments(messageIds: string[]): Promise<Map<string, Attachment[]>>;
  versionData(contentVersionId: string): Readable;
  /** The org's rolling API usage from the last `Sforce-Limit-Info` header. */
  apiUsage(): { used: number; limit: number } | undefined;
}

const ID = /^[a-zA-Z0-9]{15}(?:[a-zA-Z0-9]{3})?$/;

/** Ids are inlined into SOQL, so anything that is not an Id is refused outright. */
function idList(ids: string[]): string {
  for (const id of ids) if (!ID.test(id)) throw new Error(`not a Salesforce Id: ${id.slice(0, 18)}`);
  return ids.map((id) => `'${id}'`).join(',');
}

function soqlDateTime(d: Date): string {
  return d.toISOString().replace(/\.\d{3}Z$/, 'Z');
}

export function chunk<T>(items: T[], size = BATCH): T[][] {
  const out: T[][] = [];
  for (let i = 0; i < items.length; i += size) out.push(items.slice(i, i + size));
  return out;
}

export function salesforceRecords(conn: Connection): SalesforceRecords {
  async function query<T>(soql: string): Promise<T[]> {
    const res = await conn.query<T & Record<string, unknown>>(soql, { autoFetch: true, maxFetch: 50_000 });
    return res.records as T[];
  }

  async function save(kind: 'create' | 'update', object: string, rows: object[]): Promise<SaveOutcome[]> {
    const out: SaveOutcome[] = [];
    for (const part of chunk(rows)) {
      const sobject = conn.sobject(object);
      const results = (kind === 'create'
        ? await sobject.create(part as never[], { allOrNone: false })
        : await sobject.update(part as never[], { allOrNone: false })) as unknown as RawSaveResult[];
      out.push(...results.map(toOutcome));
    }
    return out;
  }

  return {
    async readMessages(ids) {
      const rows: SecureEmailMessage[] = [];
      for (const part of chunk([...new Set(ids)])) {
        rows.push(...await query<SecureEmailMessage>(
          `SELECT ${SEND_FIELDS.join(', ')} FROM ${MESSAGE_OBJECT} WHERE Id IN (${idList(part)})`,
        ));
      }
      return rows.map(stripAttributes);
    },

    async findQueued(limit) {
      const rows = await query<{ Id: string; LastModifiedDate: string }>(
        `SELECT Id, LastModifiedDate FROM ${MESSAGE_OBJECT} WHERE Status__c = 'Queued' ORDER BY LastModifiedDate ASC LIMIT ${limit}`,
      );
      return rows.map((r) => ({ id: r.Id, queuedAt: Date.parse(r.LastModifiedDate.replace(/\+0000$/, 'Z')) }));
    },

    async findStaleAttempts(cutoff, limit) {
      const rows = await query<RawAttempt>(
        `SELECT Id, Message__c, Attempt_Key__c, Outcome__c, Worker__c, Message__r.Status__c, Message__r.Attempts__c ` +
          `FROM ${ATTEMPT_OBJECT} WHERE Outcome__c IN ('Claimed', 'Posting') ` +
          `AND LastModifiedDate < ${soqlDateTime(cutoff)} ORDER BY LastModifiedDate ASC LIMIT ${limit}`,
      );
      return rows.map((r) => ({
        attemptId: r.Id,
        messageId: r.Message__c,
        outcome: r.Outcome__c,
        attemptKey: r.Attempt_Key__c,
        worker: r.Worker__c ?? null,
        messageStatus: r.Message__r?.Status__c ?? null,
        messageAttempts: Number(r.Message__r?.Attempts__c ?? 0),
      }));
    },

    async findAwaitingReceipts(since, limit) {
      const rows = await query<SecureEmailMessage>(
        `SELECT Id, Status__c, Tracking_Id__c, Sent_At__c, Delivered_At__c, Opened_At__c, Message_Identifier__c, ` +
          `Delivery_Details__c FROM ${MESSAGE_OBJECT} WHERE Tracking_Id__c != null AND (Status__c = 'Sent' OR ` +
          `(Opened_At__c = null AND Delivered_At__c > ${soqlDateTime(since)})) ORDER BY Sent_At__c ASC LIMIT ${limit}`,
      );
      return rows.map(stripAttributes);
    },

    insertAttempts: (rows) => save('create', ATTEMPT_OBJECT, rows),
    updateAttempts: (rows) => save('update', ATTEMPT_OBJECT, rows),
    updateMessages: (rows) => save('update', MESSAGE_OBJECT, rows),

    async attachments(messageIds) {
      const byMessage = new Map<string, Attachment[]>();
      const links: Array<{ LinkedEntityId: string; ContentDocumentId: string }> = [];
      for (const part of chunk([...new Set(messageIds)])) {
        links.push(...await query<{ LinkedEntityId: string; ContentDocumentId: string }>(
          `SELECT LinkedEntityId, ContentDocumentId FROM ContentDocumentLink WHERE LinkedEntityId IN (${idList(part)})`,
        ));
      }
      if (links.length === 0) return byMessage;
      const versions = new Map<string, RawVersion>();
      for (const part of chunk([...new Set(links.map((l) => l.ContentDocumentId))])) {
        const rows = await query<RawVersion>(
          `SELECT Id, ContentDocumentId, Title, PathOnClient, FileExtension, ContentSize FROM ContentVersion ` +
            `WHERE ContentDocumentId IN (${idList(part)}) AND IsLatest = true`,
        );
        for (const v of rows) versions.set(v.ContentDocumentId, v);
      }
      for (const link of links) {
        const v = versions.get(link.ContentDocumentId);
        if (!v) continue;
        const list = byMessage.get(link.LinkedEntityId) ?? [];
        list.push({
          contentVersionId: v.Id,
          title: v.Title ?? '',
          pathOnClient: v.PathOnClient ?? null,
          fileExtension: v.FileExtension ?? null,
          size: Number(v.ContentSize ?? 0),
        });
        byMessage.set(link.LinkedEntityId, list);
      }
      return byMessage;
    },

    versionData(contentVersionId) {
      if (!ID.test(contentVersionId)) throw new Error('not a ContentVersion Id');
      return conn.sobject('ContentVersion').record(contentVersionId).blob('VersionData') as unknown as Readable;
    },

    apiUsage() {
      return conn.limitInfo?.apiUsage;
    },
  };
}

interface RawSaveResult {
  id?: string;
  success: boolean;
  errors?: Array<{ statusCode?: string; errorCode?: string; message?: string }>;
}

interface RawAttempt {
  Id: string;
  Message__c: string;
  Attempt_Key__c: string;
  Outcome__c: 'Claimed' | 'Posting';
  Worker__c?: string | null;
  Message__r?: { Status__c?: string | null; Attempts__c?: number | null } | null;
}

interface RawVersion {
  Id: string;
  ContentDocumentId: string;
  Title?: string | null;
  PathOnClient?: string | null;
  FileExtension?: string | null;
  ContentSize?: number | null;
}

function toOutcome(r: RawSaveResult): SaveOutcome {
  if (r.success) return { ...(r.id ? { id: r.id } : {}), ok: true, duplicate: false };
  const e = r.errors?.[0];
  const code = e?.statusCode ?? e?.errorCode ?? 'UNKNOWN_ERROR';
  return { ok: false, duplicate: code === 'DUPLICATE_VALUE', error: { code, message: e?.message ?? code } };
}

function stripAttributes<T>(row: T): T {
  const { attributes: _ignored, ...rest } = row as T & { attributes?: unknown };
  return rest as T;
}
