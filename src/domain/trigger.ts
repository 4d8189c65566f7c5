import { MESSAGE_OBJECT } from './record.js';

/**
 * Which change events start a send (contract §2, reference/salesforce.md "Change events").
 *
 * Only a transition to `Queued` does: a CREATE with `Status__c = Queued`, or an UPDATE whose
 * changed fields include `Status__c` with the value `Queued` (from any status: an explicit
 * resend). `Draft` is never touched, and the worker's own writes never start a send.
 *
 * The trigger decides only *whether* to consider the ids: the pipeline re-reads the records
 * in batches before claiming them, because an event's fields are never enough to build a
 * message (long text may arrive as `{diff: …}`, UPDATEs carry only changed fields).
 * Malformed events are ignored with a reason; this function never throws.
 */

export type TriggerDecision =
  | { kind: 'send'; recordIds: string[]; replayId: number | null }
  /** GAP_* events (no fields), or a Status__c we cannot read: re-read before deciding. */
  | { kind: 'reread'; recordIds: string[]; replayId: number | null }
  /** GAP_OVERFLOW: too many changes to list; re-sync the whole object. */
  | { kind: 'resync'; replayId: number | null }
  | { kind: 'ignore'; reason: string; replayId: number | null };

export interface TriggerOptions {
  /** The `Sforce-Call-Options: client=<name>` the worker tags its writes with. */
  clientName: string;
  /**
   * The integration user's Id: when set, events committed by that user are also treated
   * as the worker's own. Off by default: other integrations may share the user.
   */
  integrationUserId?: string;
}

const QUEUED = 'Queued';

export function decideTrigger(data: unknown, opts: TriggerOptions | string): TriggerDecision {
  const options = typeof opts === 'string' ? { clientName: opts } : opts;
  const replayId = readReplayId(data);
  const ignore = (reason: string): TriggerDecision => ({ kind: 'ignore', reason, replayId });

  const payload = field(data, 'payload');
  const header = field(payload, 'ChangeEventHeader');
  if (!isObject(payload) || !isObject(header)) return ignore('malformed event: no ChangeEventHeader');

  const changeType = header.changeType;
  if (typeof changeType !== 'string') return ignore('malformed event: changeType missing');
  if (header.entityName !== undefined && header.entityName !== MESSAGE_OBJECT) {
    return ignore('event for another object');
  }
  if (changeType === 'GAP_OVERFLOW') return { kind: 'resync', replayId };

  const recordIds = readRecordIds(header.recordIds);
  if (!recordIds) return ignore('malformed event: recordIds missing or not strings');
  if (isOwnWrite(header, options)) return ignore("the worker's own write");

  if (changeType.startsWith('GAP_')) return { kind: 'reread', recordIds, replayId };
  if (changeType === 'CREATE') return fromCreate(payload, recordIds, replayId) ?? ignore('created with a status other than Queued');
  if (changeType === 'UPDATE') return fromUpdate(header, payload, recordIds, replayId) ?? ignore('no transition to Queued');
  return ignore(`${changeType} never starts a send`.slice(0, 80));
}

function fromCreate(payload: Record<string, unknown>, recordIds: string[], replayId: number | null): TriggerDecision | null {
  const status = payload.Status__c;
  if (status === QUEUED) return { kind: 'send', recordIds, replayId };
  if (isDiff(status)) return { kind: 'reread', recordIds, replayId };
  return null;
}

function fromUpdate(
  header: Record<string, unknown>,
  payload: Record<string, unknown>,
  recordIds: string[],
  replayId: number | null,
): TriggerDecision | null {
  // CometD lists changedFields; without them a key present in an UPDATE payload changed.
  const changed = Array.isArray(header.changedFields)
    ? header.changedFields.includes('Status__c')
    : Object.prototype.hasOwnProperty.call(payload, 'Status__c');
  if (!changed) return null;
  const status = payload.Status__c;
  if (status === QUEUED) return { kind: 'send', recordIds, replayId };
  // Status changed but the event does not say to what: only the record can tell.
  if (status === undefined || isDiff(status)) return { kind: 'reread', recordIds, replayId };
  return null;
}

/** `changeOrigin` ends with `;client=<name>` when the write carried our call options. */
export function isOwnWrite(header: Record<string, unknown>, opts: TriggerOptions): boolean {
  const origin = header.changeOrigin;
  if (opts.clientName && typeof origin === 'string' && origin.endsWith(`;client=${opts.clientName}`)) return true;
  return Boolean(opts.integrationUserId) && header.commitUser === opts.integrationUserId;
}

function readRecordIds(value: unknown): string[] | null {
  if (!Array.isArray(value) || value.length === 0) return null;
  if (!value.every((id) => typeof id === 'string' && id.length > 0)) return null;
  return [...new Set(value as string[])];
}

function readReplayId(data: unknown): number | null {
  const id = field(field(data, 'event'), 'replayId');
  return typeof id === 'number' && Number.isFinite(id) ? id : null;
}

function isDiff(value: unknown): boolean {
  return isObject(value) && 'diff' in value;
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function field(value: unknown, key: string): unknown {
  return isObject(value) ? value[key] : undefined;
}
