import type { SecureEmailMessage, Status } from './record.js';

/**
 * Merges a Paubox `message_receipt` response onto a record (contract §2 "How Paubox
 * receipts map onto Status__c", §3 `Delivery_Details__c`).
 *
 * The receipt is parsed defensively: sources disagree on nesting, and fields may be missing
 * or null. The result holds only the fields whose value changed, so an unchanged receipt
 * costs no write.
 */

export const SOFT_BOUNCE_GIVE_UP_MS = 72 * 3600_000;
/** `Delivery_Details__c` is Long Text Area(32768). */
export const DELIVERY_DETAILS_MAX_CHARS = 32_768;

export type ReceiptFields = Pick<
  SecureEmailMessage,
  'Status__c' | 'Delivery_Details__c' | 'Message_Identifier__c' | 'Delivered_At__c' | 'Opened_At__c' | 'Sent_At__c'
>;

export interface MergeResult {
  update: Partial<SecureEmailMessage> | null;
  /** every recipient reached a final delivery status */
  final: boolean;
  /** an open is known (now or before) */
  opened: boolean;
}

/** One entry of `Delivery_Details__c`; absent keys are omitted. */
export interface DeliveryDetail {
  recipient?: string;
  deliveryStatus?: string;
  deliveryTime?: string;
  openedStatus?: string;
  openedTime?: string;
}

type Outcome = 'reached' | 'bounced' | 'pending';

const REACHED = new Set(['delivered', 'delivered via secure portal']);
const BOUNCED = new Set(['hard bounced']);
/** Statuses a record may move between on receipts; anything else is not ours to change. */
const RECEIPT_STATUSES = new Set<Status | null>(['Sent', 'Delivered', 'Partially Delivered', 'Bounced']);
const FINAL_STATUSES = new Set<Status | null>(['Delivered', 'Partially Delivered', 'Bounced']);

export function mergeReceipt(
  current: ReceiptFields,
  receipt: unknown,
  now: Date,
  opts: { softBounceGiveUpMs?: number } = {},
): MergeResult {
  const message = findMessage(receipt);
  const details = readDeliveries(message);
  const update: Partial<SecureEmailMessage> = {};
  const set = <K extends keyof ReceiptFields>(key: K, value: SecureEmailMessage[K]) => {
    if (value !== undefined && value !== null && value !== '' && value !== current[key]) update[key] = value;
  };

  const messageId = message?.id;
  if (typeof messageId === 'string') set('Message_Identifier__c', messageId.trim());
  if (details.length > 0) set('Delivery_Details__c', serializeDetails(details));

  const giveUpMs = opts.softBounceGiveUpMs ?? SOFT_BOUNCE_GIVE_UP_MS;
  const sentAt = current.Sent_At__c ? Date.parse(current.Sent_At__c) : NaN;
  const softExpired = Number.isFinite(sentAt) && now.getTime() - sentAt >= giveUpMs;
  const outcomes = details.map((d) => outcomeOf(d.deliveryStatus, softExpired));
  const final = outcomes.length > 0 && outcomes.every((o) => o !== 'pending');

  if (final && RECEIPT_STATUSES.has(current.Status__c)) {
    set('Status__c', finalStatus(outcomes));
    // Set once, when the record first becomes final: a later receipt must not move it.
    if (!FINAL_STATUSES.has(current.Status__c) || !current.Delivered_At__c) {
      set('Delivered_At__c', latestTime(details) ?? now.toISOString());
    }
  }

  const firstOpen = current.Opened_At__c ? null : firstOpenTime(details, message, now);
  if (firstOpen) set('Opened_At__c', firstOpen);

  return {
    update: Object.keys(update).length > 0 ? update : null,
    final,
    opened: Boolean(current.Opened_At__c || update.Opened_At__c),
  };
}

/** RFC 2822 (or any date `Date.parse` reads) → ISO 8601; unparsable text stays as given. */
export function toIso(value: string): string {
  const ms = Date.parse(value);
  return Number.isFinite(ms) ? new Date(ms).toISOString() : value;
}

/** Per-recipient outcome of a Paubox `deliveryStatus` (contract §2). */
export function deliveryOutcome(status: string | undefined, softBounceExpired = false): Outcome {
  return outcomeOf(status, softBounceExpired);
}

function outcomeOf(status: string | undefined, softExpired: boolean): Outcome {
  const s = (status ?? '').trim().toLowerCase();
  if (REACHED.has(s)) return 'reached';
  if (BOUNCED.has(s)) return 'bounced';
  if (softExpired && s.startsWith('soft bounced')) return 'bounced';
  return 'pending';
}

function finalStatus(outcomes: Outcome[]): Status {
  if (outcomes.every((o) => o === 'reached')) return 'Delivered';
  if (outcomes.every((o) => o === 'bounced')) return 'Bounced';
  return 'Partially Delivered';
}

// ---------------------------------------------------------------------------------------
// Parsing the receipt

type Json = Record<string, unknown>;

function isObject(v: unknown): v is Json {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** `{data: {message}}` as documented; also `{message}` and `{data: {data: {message}}}`. */
function findMessage(receipt: unknown): Json | null {
  let node: unknown = receipt;
  for (let depth = 0; depth < 4 && isObject(node); depth++) {
    if (isObject(node.message)) return node.message;
    node = node.data;
  }
  return null;
}

function readDeliveries(message: Json | null): DeliveryDetail[] {
  const list = message?.message_deliveries;
  if (!Array.isArray(list)) return [];
  return list.filter(isObject).map(readDelivery);
}

/** Fields live under `status`; tolerate them flat on the entry too. */
function readDelivery(entry: Json): DeliveryDetail {
  const status = isObject(entry.status) ? entry.status : entry;
  const detail: DeliveryDetail = {};
  const text = (v: unknown) => (typeof v === 'string' && v.trim() !== '' ? v.trim() : undefined);
  const recipient = text(entry.recipient);
  const deliveryStatus = text(status.deliveryStatus);
  const deliveryTime = text(status.deliveryTime);
  const openedStatus = text(status.openedStatus);
  const openedTime = text(status.openedTime);
  if (recipient !== undefined) detail.recipient = recipient;
  if (deliveryStatus !== undefined) detail.deliveryStatus = deliveryStatus;
  if (deliveryTime !== undefined) detail.deliveryTime = toIso(deliveryTime);
  if (openedStatus !== undefined) detail.openedStatus = openedStatus;
  if (openedTime !== undefined) detail.openedTime = toIso(openedTime);
  return detail;
}

/** JSON within the field's size; with 100 long entries, the tail is dropped, never cut mid-JSON. */
function serializeDetails(details: DeliveryDetail[]): string {
  let kept = details;
  let json = JSON.stringify(kept);
  while (json.length > DELIVERY_DETAILS_MAX_CHARS && kept.length > 1) {
    kept = kept.slice(0, -1);
    json = JSON.stringify(kept);
  }
  return json;
}

function latestTime(details: DeliveryDetail[]): string | null {
  const times = details.map((d) => Date.parse(d.deliveryTime ?? '')).filter(Number.isFinite);
  return times.length > 0 ? new Date(Math.max(...times)).toISOString() : null;
}

function firstOpenTime(details: DeliveryDetail[], message: Json | null, now: Date): string | null {
  const times = details.map((d) => Date.parse(d.openedTime ?? '')).filter(Number.isFinite);
  if (times.length > 0) return new Date(Math.min(...times)).toISOString();
  const openedWithoutTime =
    details.some((d) => d.openedStatus?.toLowerCase() === 'opened') ||
    (typeof message?.total_opens === 'number' && message.total_opens > 0);
  return openedWithoutTime ? now.toISOString() : null;
}
