import emailAddresses from 'email-addresses';
import type { PauboxAttachment, PauboxHeaders, PauboxMessage } from '../paubox/types.js';
import type { SecureEmailMessage } from './record.js';

/**
 * Turns a `Secure_EmailMessage__c` record and its files into the Paubox message (contract
 * §1, reference/paubox.md), or into one error an admin can act on.
 *
 * Every error string lands in `Error__c` (Text 255) and in logs, so it names fields and
 * positions, never an address, subject or file name.
 */

export const MAX_RECIPIENTS = 100;
export const MAX_ATTACHMENT_BYTES = 10 * 1024 * 1024;
/** `Error__c` is Text(255). */
export const ERROR_MAX_CHARS = 255;

export interface AttachmentContent {
  fileName: string;
  contentType?: string;
  extension?: string | null;
  size: number;
  /** the bytes, or their base64 */
  content: Buffer | string;
}

export type BuildResult = { ok: true; message: PauboxMessage } | { ok: false; error: string };

/** One line, at most `max` characters (Error__c is Text(255)). */
export function truncateError(text: string, max = ERROR_MAX_CHARS): string {
  const line = text.replace(/[\r\n]+/g, ' ').trim();
  return line.length <= max ? line : `${line.slice(0, max - 1)}…`;
}

export function buildMessage(
  record: SecureEmailMessage,
  attachments: readonly AttachmentContent[] = [],
): BuildResult {
  const errors: string[] = [];
  const recipients = collectRecipients(record, errors);
  const headers = buildHeaders(record, errors);
  const content = buildContent(record, errors);
  const files = buildAttachments(attachments, errors);
  if (errors.length > 0 || !headers) return { ok: false, error: summarize(errors) };

  const message: PauboxMessage = {
    recipients: recipients.to,
    headers,
    content,
    allowNonTLS: record.Allow_Non_TLS__c === true,
    forceSecureNotification: record.Force_Secure_Notification__c === true,
  };
  if (recipients.cc.length > 0) message.cc = recipients.cc;
  if (recipients.bcc.length > 0) message.bcc = recipients.bcc;
  if (files.length > 0) message.attachments = files;
  return { ok: true, message };
}

/** Several problems are joined so an admin can fix them in one go; the first comes first. */
function summarize(errors: string[]): string {
  return truncateError(errors.join('; '));
}

// ---------------------------------------------------------------------------------------
// Recipients

type AddressField = 'To_Address__c' | 'Cc_Address__c' | 'Bcc_Address__c';

function collectRecipients(record: SecureEmailMessage, errors: string[]) {
  const seen = new Set<string>();
  const pick = (field: AddressField): string[] => {
    const out: string[] = [];
    splitAddressList(record[field] ?? '').forEach((entry, i) => {
      const mailbox = parseMailbox(entry);
      if (!mailbox) {
        errors.push(`${field}: recipient ${i + 1} is not a valid email address`);
        return;
      }
      const key = mailbox.address.toLowerCase();
      if (seen.has(key)) return; // first occurrence wins across To, Cc and Bcc
      seen.add(key);
      out.push(mailbox.name ? `${quoteDisplayName(mailbox.name)} <${mailbox.address}>` : mailbox.address);
    });
    return out;
  };
  const to = pick('To_Address__c');
  const cc = pick('Cc_Address__c');
  const bcc = pick('Bcc_Address__c');
  if (to.length === 0 && !errors.some((e) => e.startsWith('To_Address__c'))) {
    errors.push('To_Address__c: at least one recipient is required');
  }
  const total = to.length + cc.length + bcc.length;
  if (total > MAX_RECIPIENTS) {
    errors.push(`Too many recipients: ${total} (Paubox allows ${MAX_RECIPIENTS} across To, Cc and Bcc)`);
  }
  return { to, cc, bcc };
}

/**
 * Splits a Salesforce address list on `;` and `,` (like EmailMessage.ToAddress), but not
 * inside a quoted display name, an angle address or a comment: `"Roe, Jane" <j@y.org>` is
 * one recipient. Entries are trimmed and empty ones dropped.
 */
export function splitAddressList(text: string): string[] {
  const entries: string[] = [];
  let current = '';
  let quoted = false;
  let angle = 0;
  let comment = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text[i]!;
    if (quoted) {
      if (c === '\\' && i + 1 < text.length) current += c + text[++i];
      else { if (c === '"') quoted = false; current += c; }
      continue;
    }
    if (c === '"') quoted = true;
    else if (c === '<') angle++;
    else if (c === '>') angle = Math.max(0, angle - 1);
    else if (c === '(') comment++;
    else if (c === ')') comment = Math.max(0, comment - 1);
    else if ((c === ';' || c === ',') && angle === 0 && comment === 0) {
      entries.push(current);
      current = '';
      continue;
    }
    current += c;
  }
  entries.push(current);
  return entries.map((e) => e.trim()).filter((e) => e.length > 0);
}

interface Mailbox { name: string | null; address: string }

/**
 * A bare ASCII `dot-atom@dot-atom` with a dotted domain of letters, digits and inner
 * hyphens: a strict subset of what the full parser accepts, which it would return
 * unchanged with no display name. Most recipients look like this, and the full RFC 5322
 * parser costs about half a millisecond per address: a burst's largest CPU cost.
 */
const PLAIN_ADDRESS = /^[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*@(?:[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?\.)+[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?$/;

/** RFC 5322 mailbox (with RFC 6532 UTF-8), a domain with a TLD; groups are refused. */
function parseMailbox(entry: string): Mailbox | null {
  if (PLAIN_ADDRESS.test(entry)) return { name: null, address: entry };
  if (/[\r\n]/.test(entry)) return null;
  const parsed = emailAddresses.parseOneAddress({ input: entry, rfc6532: true, rejectTLD: true });
  if (!parsed || parsed.type !== 'mailbox') return null;
  return { name: parsed.name || null, address: parsed.address };
}

function quoteDisplayName(name: string): string {
  return `"${name.replace(/\\/g, '\\\\').replace(/"/g, '\\"')}"`;
}

// ---------------------------------------------------------------------------------------
// Headers

function hasLineBreak(value: string | null | undefined): boolean {
  return value != null && /[\r\n]/.test(value);
}

function buildHeaders(record: SecureEmailMessage, errors: string[]): PauboxHeaders | null {
  const before = errors.length;
  const subject = record.Subject__c ?? '';
  if (hasLineBreak(subject)) errors.push('Subject__c contains a line break');
  else if (subject.trim() === '') errors.push('Subject__c is required');

  const from = fromHeader(record, errors);
  const replyTo = (record.Reply_To__c ?? '').trim();
  if (hasLineBreak(record.Reply_To__c)) errors.push('Reply_To__c contains a line break');
  else if (replyTo !== '' && !parseMailbox(replyTo)) errors.push('Reply_To__c is not a valid email address');

  const inReplyTo = messageId(record.In_Reply_To__c, errors);
  if (errors.length > before || from === null) return null;

  const headers: PauboxHeaders = { subject, from };
  if (replyTo !== '') headers['reply-to'] = replyTo;
  if (inReplyTo) {
    // Whether Paubox passes non-X- headers through is undocumented: send both (README).
    headers['In-Reply-To'] = inReplyTo;
    headers.References = inReplyTo;
    headers['X-In-Reply-To'] = inReplyTo;
  }
  return headers;
}

function fromHeader(record: SecureEmailMessage, errors: string[]): string | null {
  const address = (record.From_Address__c ?? '').trim();
  const name = (record.From_Name__c ?? '').trim();
  let ok = true;
  if (hasLineBreak(record.From_Name__c)) { errors.push('From_Name__c contains a line break'); ok = false; }
  if (hasLineBreak(record.From_Address__c)) {
    errors.push('From_Address__c contains a line break');
    return null;
  }
  if (address === '') {
    errors.push('From_Address__c is required (an address on a domain verified with Paubox)');
    return null;
  }
  const mailbox = parseMailbox(address);
  if (!mailbox || mailbox.name) {
    errors.push('From_Address__c is not a valid email address');
    return null;
  }
  if (!ok) return null;
  return name ? `${quoteDisplayName(name)} <${mailbox.address}>` : mailbox.address;
}

/** `In_Reply_To__c` normalized to `<id>`; '' when unset. */
function messageId(value: string | null | undefined, errors: string[]): string {
  if (hasLineBreak(value)) { errors.push('In_Reply_To__c contains a line break'); return ''; }
  const bare = (value ?? '').trim().replace(/^<+/, '').replace(/>+$/, '').trim();
  if (bare === '') return '';
  if (/[\s<>]/.test(bare) || !bare.includes('@')) {
    errors.push('In_Reply_To__c is not a Message-ID (expected <id@domain>)');
    return '';
  }
  return `<${bare}>`;
}

// ---------------------------------------------------------------------------------------
// Content and attachments

function buildContent(record: SecureEmailMessage, errors: string[]): PauboxMessage['content'] {
  const html = record.Html_Body__c ?? '';
  const text = record.Text_Body__c ?? '';
  const content: PauboxMessage['content'] = {};
  if (text.trim() !== '') content['text/plain'] = text;
  // The official SDKs send HTML base64-encoded; it survives any escaping on the way.
  if (html.trim() !== '') content['text/html'] = Buffer.from(html, 'utf8').toString('base64');
  if (!content['text/plain'] && !content['text/html']) {
    errors.push('No body: set Html_Body__c or Text_Body__c');
  }
  return content;
}

const CONTENT_TYPES = new Map(Object.entries({
  pdf: 'application/pdf',
  png: 'image/png',
  jpg: 'image/jpeg',
  jpeg: 'image/jpeg',
  gif: 'image/gif',
  txt: 'text/plain',
  csv: 'text/csv',
  html: 'text/html',
  htm: 'text/html',
  doc: 'application/msword',
  docx: 'application/vnd.openxmlformats-officedocument.wordprocessingml.document',
  xls: 'application/vnd.ms-excel',
  xlsx: 'application/vnd.openxmlformats-officedocument.spreadsheetml.sheet',
  zip: 'application/zip',
  ics: 'text/calendar',
  xml: 'application/xml',
  json: 'application/json',
}));

/** MIME type from the extension (or the file name's); `application/octet-stream` if unknown. */
export function contentTypeFor(fileName: string, extension?: string | null): string {
  const fromName = fileName.includes('.') ? fileName.slice(fileName.lastIndexOf('.') + 1) : '';
  const ext = (extension || fromName).replace(/^\./, '').toLowerCase();
  return CONTENT_TYPES.get(ext) ?? 'application/octet-stream';
}

function buildAttachments(files: readonly AttachmentContent[], errors: string[]): PauboxAttachment[] {
  let total = 0;
  const out: PauboxAttachment[] = [];
  files.forEach((file, i) => {
    if (/[\r\n]/.test(file.fileName)) {
      errors.push(`Attachment ${i + 1}: file name contains a line break`);
      return;
    }
    const content = Buffer.isBuffer(file.content) ? file.content.toString('base64') : file.content.replace(/\s+/g, '');
    const bytes = Buffer.isBuffer(file.content) ? file.content.length : Buffer.byteLength(content, 'base64');
    total += Math.max(bytes, file.size || 0);
    const fileName = file.fileName.trim() || `attachment-${i + 1}${file.extension ? `.${file.extension}` : ''}`;
    const contentType = file.contentType?.trim() || contentTypeFor(fileName, file.extension);
    out.push({ fileName, contentType, content });
  });
  if (total > MAX_ATTACHMENT_BYTES) {
    const mb = (Math.ceil((total / (1024 * 1024)) * 10) / 10).toFixed(1);
    errors.push(`Attachments total ${mb} MB; Paubox allows ${MAX_ATTACHMENT_BYTES / (1024 * 1024)} MB`);
  }
  return out;
}
