import type { ParsedAddress } from './paubox-validate.js';

/**
 * How each recipient's delivery progresses in the sandbox, on the sandbox clock, chosen
 * by how the address's local part begins (case-insensitive; the first match wins, in the
 * order below, so `softok…` is checked before `soft…`):
 *
 *   lateopen…@    delivered after `deliverMs`, opened `lateOpenMs` (1 h) after delivery
 *   open…@        delivered after `deliverMs`, opened `openMs` after delivery
 *   bounce…@      processing, then `hard bounced` after `deliverMs`
 *   softok…@      `soft bounced` from `deliverMs`, then `delivered` at `softOkMs`
 *   soft…@        `soft bounced` from `deliverMs`, for ever
 *   mailboxfull…@ `soft bounced - mailbox full` from `deliverMs`, for ever
 *   internalerr…@ `Internal error. Please check back later.` from `deliverMs`, for ever
 *   portal…@      `TLS not offered, sending via Secure Portal` from `deliverMs`, then
 *                 `delivered via secure portal` at `portalMs`
 *   anything else processing, then `delivered` after `deliverMs`
 *
 * `message_deliveries` is [] for the first `listMs` after the send (as Paubox does right
 * after accepting). Opens are reported only for single-recipient messages (to+cc+bcc = 1):
 * `openedStatus` is 'not opened' / 'opened' there and `null` otherwise, and
 * `total_opens`/`distinct_opens` appear only for single-recipient messages.
 * `deliveryTime` is null while `processing`, else the time the current status was reached.
 * Times are RFC 2822 in UTC (`Mon, 23 Apr 2018 20:27:34 +0000`).
 */

export const PAUBOX_ADDRESS_PREFIX = {
  lateOpen: 'lateopen',
  open: 'open',
  bounce: 'bounce',
  softThenDelivered: 'softok',
  soft: 'soft',
  mailboxFull: 'mailboxfull',
  internalError: 'internalerr',
  portal: 'portal',
} as const;

export const PAUBOX_STATUS = {
  processing: 'processing',
  delivered: 'delivered',
  portalDelivered: 'delivered via secure portal',
  portalPending: 'TLS not offered, sending via Secure Portal',
  softBounced: 'soft bounced',
  mailboxFull: 'soft bounced - mailbox full',
  hardBounced: 'hard bounced',
  internalError: 'Internal error. Please check back later.',
} as const;

export interface PauboxProgression {
  /** message_deliveries stays [] this long after the send */
  listMs: number;
  /** processing → first real status */
  deliverMs: number;
  /** portal… recipients: send → `delivered via secure portal` */
  portalMs: number;
  /** softok… recipients: send → `delivered` */
  softOkMs: number;
  /** open… recipients: delivery → opened */
  openMs: number;
  /** lateopen… recipients: delivery → opened */
  lateOpenMs: number;
}

export const DEFAULT_PAUBOX_PROGRESSION: PauboxProgression = {
  listMs: 500,
  deliverMs: 2_000,
  portalMs: 60_000,
  softOkMs: 30 * 60_000,
  openMs: 60_000,
  lateOpenMs: 60 * 60_000,
};

/** One step of a recipient's timeline: from `at` ms after the send, this status holds. */
interface Step {
  at: number;
  status: string;
}

interface Timeline {
  steps: Step[];
  /** ms after the send at which the recipient opens, if ever */
  openAt?: number;
}

function timelineFor(local: string, p: PauboxProgression): Timeline {
  const l = local.toLowerCase();
  const start: Step = { at: 0, status: PAUBOX_STATUS.processing };
  const then = (...rest: Step[]): Step[] => [start, ...rest];
  const P = PAUBOX_ADDRESS_PREFIX;
  const S = PAUBOX_STATUS;
  if (l.startsWith(P.lateOpen)) return { steps: then({ at: p.deliverMs, status: S.delivered }), openAt: p.deliverMs + p.lateOpenMs };
  if (l.startsWith(P.open)) return { steps: then({ at: p.deliverMs, status: S.delivered }), openAt: p.deliverMs + p.openMs };
  if (l.startsWith(P.bounce)) return { steps: then({ at: p.deliverMs, status: S.hardBounced }) };
  if (l.startsWith(P.softThenDelivered)) {
    return { steps: then({ at: p.deliverMs, status: S.softBounced }, { at: Math.max(p.softOkMs, p.deliverMs), status: S.delivered }) };
  }
  if (l.startsWith(P.soft)) return { steps: then({ at: p.deliverMs, status: S.softBounced }) };
  if (l.startsWith(P.mailboxFull)) return { steps: then({ at: p.deliverMs, status: S.mailboxFull }) };
  if (l.startsWith(P.internalError)) return { steps: then({ at: p.deliverMs, status: S.internalError }) };
  if (l.startsWith(P.portal)) {
    return { steps: then({ at: p.deliverMs, status: S.portalPending }, { at: Math.max(p.portalMs, p.deliverMs), status: S.portalDelivered }) };
  }
  return { steps: then({ at: p.deliverMs, status: S.delivered }) };
}

const DAYS = ['Sun', 'Mon', 'Tue', 'Wed', 'Thu', 'Fri', 'Sat'];
const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];

/** RFC 2822 date-time in UTC, the way Paubox writes receipt times. */
export function rfc2822(ms: number): string {
  const d = new Date(ms);
  const two = (n: number): string => String(n).padStart(2, '0');
  return `${DAYS[d.getUTCDay()]}, ${two(d.getUTCDate())} ${MONTHS[d.getUTCMonth()]} ${d.getUTCFullYear()} `
    + `${two(d.getUTCHours())}:${two(d.getUTCMinutes())}:${two(d.getUTCSeconds())} +0000`;
}

export interface RecipientStatus {
  deliveryStatus: string;
  deliveryTime: string | null;
  openedStatus: 'opened' | 'not opened' | null;
  openedTime: string | null;
}

export interface MessageDelivery {
  recipient: string;
  status: RecipientStatus;
}

export interface ReceiptBody {
  sourceTrackingId: string;
  data: {
    message: {
      id: string;
      message_deliveries: MessageDelivery[];
      total_opens?: number;
      distinct_opens?: number;
    };
  };
}

function recipientStatus(local: string, sentAt: number, now: number, single: boolean, p: PauboxProgression): RecipientStatus {
  const { steps, openAt } = timelineFor(local, p);
  const elapsed = now - sentAt;
  const step = steps.filter((s) => s.at <= elapsed).at(-1) ?? steps[0]!;
  const opened = single && openAt !== undefined && elapsed >= openAt;
  return {
    deliveryStatus: step.status,
    deliveryTime: step.status === PAUBOX_STATUS.processing ? null : rfc2822(sentAt + step.at),
    openedStatus: single ? (opened ? 'opened' : 'not opened') : null,
    openedTime: opened ? rfc2822(sentAt + openAt) : null,
  };
}

/** The `message_receipt` body for one accepted message, as of `now`. */
export function buildReceipt(
  sourceTrackingId: string,
  messageId: string,
  recipients: readonly ParsedAddress[],
  sentAt: number,
  now: number,
  p: PauboxProgression,
): ReceiptBody {
  const single = recipients.length === 1;
  const listed = now - sentAt >= p.listMs;
  const deliveries = listed
    ? recipients.map((r) => ({ recipient: r.address, status: recipientStatus(r.local, sentAt, now, single, p) }))
    : [];
  const message: ReceiptBody['data']['message'] = { id: messageId, message_deliveries: deliveries };
  if (single) {
    const opens = deliveries[0]?.status.openedStatus === 'opened' ? 1 : 0;
    message.total_opens = opens;
    message.distinct_opens = opens;
  }
  return { sourceTrackingId, data: { message } };
}
