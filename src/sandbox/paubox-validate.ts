import emailAddresses from 'email-addresses';

/**
 * What the sandbox Paubox checks in a message before accepting it, and how it reads the
 * content. Each rule answers the way the reference says Paubox does; where the reference
 * leaves a choice open, the choice is written next to the rule.
 *
 * Decisions (the worker must cope with these; the real service may differ):
 * - An unverified `from` domain is 422 (the reference lists both 400 and 422; 422 is the
 *   "semantically invalid" answer, and it exercises the worker's non-400 4xx path).
 *   Everything else invalid is 400.
 * - Headers: `subject`, `from`, `reply-to`, `In-Reply-To` and `References` are known
 *   (case-insensitive); any other header must start with `X-` or the message is 400.
 *   No header value may contain CR or LF (header injection).
 * - `text/html` is accepted raw or base64 (the official SDKs send base64). It is decoded
 *   when the whole value (whitespace ignored) is strict base64 whose UTF-8 text contains
 *   `<`. A value of 16 or more characters made only of base64 characters (line breaks
 *   aside: no `<`, no spaces) that is NOT valid base64 (e.g. truncated) is 400 "bad
 *   base64": it can only be damaged base64, not HTML. Anything else is raw HTML.
 * - Attachment `content` must be strict base64 (whitespace and line breaks ignored) and
 *   non-empty; `fileName` and `contentType` are required. More than 10 MiB of decoded
 *   attachments in one message is 400.
 * - Addresses are parsed with `email-addresses`; `Name <a@b.org>` forms are accepted,
 *   groups and lists are not, and the domain must have a dot (`a@localhost` is refused).
 */

export const PAUBOX_MAX_RECIPIENTS = 100;
export const PAUBOX_MAX_ATTACHMENT_BYTES = 10 * 1024 * 1024;
export const PAUBOX_KNOWN_HEADERS = ['subject', 'from', 'reply-to', 'in-reply-to', 'references'] as const;

export interface PauboxErrorItem {
  code: number;
  title: string;
  details: string;
}

/** A refusal with the HTTP status and the `{"errors":[…]}` item Paubox answers with. */
export class PauboxRejection extends Error {
  constructor(readonly status: number, readonly title: string, readonly details: string) {
    super(`${title}: ${details}`);
  }

  item(): PauboxErrorItem {
    return { code: this.status, title: this.title, details: this.details };
  }
}

export interface ParsedAddress {
  /** the bare `local@domain` Paubox reports in receipts */
  address: string;
  local: string;
  domain: string;
}

export interface DecodedAttachment {
  fileName: string;
  contentType: string;
  content: Buffer;
}

/** The message as the sandbox understood it: addresses parsed, content decoded. */
export interface DecodedMessage {
  from: ParsedAddress;
  to: ParsedAddress[];
  cc: ParsedAddress[];
  bcc: ParsedAddress[];
  subject: string;
  headers: Record<string, string>;
  /** `X-` headers, echoed back as `customHeaders` */
  customHeaders: Record<string, string>;
  text?: string;
  html?: string;
  /** true when `text/html` arrived base64-encoded */
  htmlWasBase64: boolean;
  attachments: DecodedAttachment[];
  allowNonTLS: boolean;
  forceSecureNotification: boolean;
}

const invalid = (title: string, details: string): PauboxRejection => new PauboxRejection(400, title, details);

const STRICT_BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;
const BASE64_CHARS = /^[A-Za-z0-9+/=]+$/;

/** Decodes strict base64 (whitespace ignored), or undefined when it is not. */
export function strictBase64(value: string): Buffer | undefined {
  const compact = value.replace(/\s+/g, '');
  return STRICT_BASE64.test(compact) ? Buffer.from(compact, 'base64') : undefined;
}

/**
 * A bare ASCII `dot-atom@dot-atom` with a dotted domain of letters, digits and inner
 * hyphens: a strict subset of what the full parser accepts, which it returns unchanged,
 * split at the `@` (test/sandbox/paubox-address.test.ts checks this, and the quoted-name
 * form below, on generated addresses). Nearly every address looks like this, and the full RFC 5322 parse was the
 * sandbox's largest cost in a burst.
 */
const PLAIN_ADDRESS = /^[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*@(?:[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?\.)+[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?$/;

const PLAIN_SOURCE = PLAIN_ADDRESS.source.slice(1, -1);
/** `"Clinic" <care@clinic.example>` (what the worker sends as `from`): a quoted name of printable ASCII, no escapes. */
const QUOTED_NAME_ADDRESS = new RegExp(`^"[!#-\\[\\]-~]+(?: [!#-\\[\\]-~]+)*" <(${PLAIN_SOURCE})>$`);

/** An address (or `Name <address>`) as Paubox reads it; throws a 400 rejection when invalid. */
export function parseAddress(value: unknown, field: string): ParsedAddress {
  if (typeof value !== 'string') return parseAddressFully(value, field);
  if (PLAIN_ADDRESS.test(value)) return splitAddress(value);
  const named = QUOTED_NAME_ADDRESS.exec(value);
  return named ? splitAddress(named[1]!) : parseAddressFully(value, field);
}

function splitAddress(address: string): ParsedAddress {
  const at = address.indexOf('@');
  return { address, local: address.slice(0, at), domain: address.slice(at + 1).toLowerCase() };
}

/** The full RFC 5322 parse (exported for the test that holds the plain path to it). */
export function parseAddressFully(value: unknown, field: string): ParsedAddress {
  const parsed = typeof value === 'string' ? emailAddresses.parseOneAddress({ input: value, rejectTLD: true }) : null;
  if (!parsed || parsed.type !== 'mailbox') {
    // Never echo the address itself: error bodies end up in logs.
    throw invalid('Invalid email address', `${field} contains an address that is not valid`);
  }
  return { address: parsed.address, local: parsed.local, domain: parsed.domain.toLowerCase() };
}

function addressList(value: unknown, field: string): ParsedAddress[] {
  if (value === undefined || value === null) return [];
  if (!Array.isArray(value)) throw invalid('Invalid request', `${field} must be an array of addresses`);
  return value.map((v) => parseAddress(v, field));
}

function checkHeaders(raw: unknown): Record<string, string> {
  if (raw === undefined || raw === null || typeof raw !== 'object' || Array.isArray(raw)) {
    throw invalid('Invalid request', 'headers are required');
  }
  const headers: Record<string, string> = {};
  for (const [name, value] of Object.entries(raw as Record<string, unknown>)) {
    const known = (PAUBOX_KNOWN_HEADERS as readonly string[]).includes(name.toLowerCase());
    if (!known && !/^x-/i.test(name)) {
      throw invalid('Invalid header', `custom header ${name} must start with X-`);
    }
    if (typeof value !== 'string') throw invalid('Invalid header', `header ${name} must be a string`);
    if (/[\r\n]/.test(value)) throw invalid('Invalid header', `header ${name} must not contain CR or LF`);
    headers[name] = value;
  }
  return headers;
}

function header(headers: Record<string, string>, name: string): string | undefined {
  const key = Object.keys(headers).find((k) => k.toLowerCase() === name);
  return key === undefined ? undefined : headers[key];
}

/** `text/html` raw or base64; see the decisions at the top of this file. */
function readHtml(value: string): { html: string; wasBase64: boolean } {
  const decoded = strictBase64(value);
  if (decoded) {
    const text = decoded.toString('utf8');
    if (text.includes('<') && !text.includes('\uFFFD')) return { html: text, wasBase64: true };
  }
  // Damaged base64 looks like one long run of base64 characters; prose has spaces.
  const compact = value.replace(/[\r\n]+/g, '');
  if (!decoded && compact.length >= 16 && BASE64_CHARS.test(compact)) {
    throw invalid('Invalid base64', 'content text/html is not valid base64');
  }
  return { html: value, wasBase64: false };
}

function readContent(raw: unknown): { text?: string; html?: string; htmlWasBase64: boolean } {
  const content = (raw && typeof raw === 'object' ? raw : {}) as Record<string, unknown>;
  const text = content['text/plain'];
  const html = content['text/html'];
  const hasText = typeof text === 'string' && text.length > 0;
  const hasHtml = typeof html === 'string' && html.length > 0;
  if (!hasText && !hasHtml) throw invalid('Invalid request', 'content must include text/plain or text/html');
  const out: { text?: string; html?: string; htmlWasBase64: boolean } = { htmlWasBase64: false };
  if (hasText) out.text = text;
  if (hasHtml) {
    const read = readHtml(html);
    out.html = read.html;
    out.htmlWasBase64 = read.wasBase64;
  }
  return out;
}

function readAttachments(raw: unknown): DecodedAttachment[] {
  if (raw === undefined || raw === null) return [];
  if (!Array.isArray(raw)) throw invalid('Invalid request', 'attachments must be an array');
  let total = 0;
  return raw.map((a: unknown, i) => {
    const att = (a && typeof a === 'object' ? a : {}) as Record<string, unknown>;
    const { fileName, contentType, content } = att;
    if (typeof fileName !== 'string' || fileName === '') throw invalid('Invalid attachment', `attachment ${i + 1} has no fileName`);
    if (typeof contentType !== 'string' || contentType === '') throw invalid('Invalid attachment', `attachment ${i + 1} has no contentType`);
    const bytes = typeof content === 'string' && content !== '' ? strictBase64(content) : undefined;
    if (!bytes) throw invalid('Invalid base64', `attachment ${i + 1} content is not valid base64`);
    total += bytes.length;
    if (total > PAUBOX_MAX_ATTACHMENT_BYTES) throw invalid('Attachments too large', 'attachments exceed 10 MB per message');
    return { fileName, contentType, content: bytes };
  });
}

/**
 * Checks one `message` object (the value under `data.message`, or one item of
 * `data.messages`) and returns what the sandbox understood, or throws a PauboxRejection.
 */
export function validateMessage(raw: unknown, verifiedDomains: readonly string[]): DecodedMessage {
  if (!raw || typeof raw !== 'object' || Array.isArray(raw)) throw invalid('Invalid request', 'data.message is required');
  const m = raw as Record<string, unknown>;
  if (!Array.isArray(m['recipients']) || m['recipients'].length === 0) {
    throw invalid('Invalid request', 'recipients must contain at least one address');
  }
  const to = addressList(m['recipients'], 'recipients');
  const cc = addressList(m['cc'], 'cc');
  const bcc = addressList(m['bcc'], 'bcc');
  if (to.length + cc.length + bcc.length > PAUBOX_MAX_RECIPIENTS) {
    throw invalid('Too many recipients', `a message may have at most ${PAUBOX_MAX_RECIPIENTS} recipients (to, cc and bcc)`);
  }
  const headers = checkHeaders(m['headers']);
  const subject = header(headers, 'subject');
  if (subject === undefined || subject.trim() === '') throw invalid('Invalid request', 'headers.subject is required');
  const fromValue = header(headers, 'from');
  if (fromValue === undefined || fromValue.trim() === '') throw invalid('Invalid request', 'headers.from is required');
  const from = parseAddress(fromValue, 'headers.from');
  const replyTo = header(headers, 'reply-to');
  if (replyTo !== undefined) parseAddress(replyTo, 'headers.reply-to');
  const content = readContent(m['content']);
  const attachments = readAttachments(m['attachments']);
  if (!verifiedDomains.map((d) => d.toLowerCase()).includes(from.domain)) {
    throw new PauboxRejection(422, 'Unprocessable Entity', 'the from address does not belong to a verified domain');
  }
  const customHeaders = Object.fromEntries(Object.entries(headers).filter(([k]) => /^x-/i.test(k)));
  return {
    from, to, cc, bcc, subject, headers, customHeaders, ...content, attachments,
    allowNonTLS: m['allowNonTLS'] === true,
    forceSecureNotification: m['forceSecureNotification'] === true || m['forceSecureNotification'] === 'true',
  };
}
