import { describe, expect, it } from 'vitest';
import {
  buildMessage, contentTypeFor, splitAddressList, truncateError, type AttachmentContent,
} from '../../src/domain/message.js';
import type { SecureEmailMessage } from '../../src/domain/record.js';

const base: SecureEmailMessage = {
  Id: 'a0B000000000001AAA',
  Status__c: 'Queued',
  To_Address__c: 'patient@example.com',
  From_Address__c: 'noreply@clinic.org',
  Subject__c: 'Your results',
  Text_Body__c: 'Hello',
};

function build(overrides: Partial<SecureEmailMessage>, files: AttachmentContent[] = []) {
  return buildMessage({ ...base, ...overrides }, files);
}

function ok(overrides: Partial<SecureEmailMessage>, files: AttachmentContent[] = []) {
  const r = build(overrides, files);
  if (!r.ok) throw new Error(`expected ok, got: ${r.error}`);
  return r.message;
}

function fail(overrides: Partial<SecureEmailMessage>, files: AttachmentContent[] = []) {
  const r = build(overrides, files);
  if (r.ok) throw new Error('expected an error');
  expect(r.error.length).toBeLessThanOrEqual(255);
  return r.error;
}

describe('recipients', () => {
  it.each([
    ['a@x.com;b@x.com', ['a@x.com', 'b@x.com']],
    ['a@x.com, b@x.com', ['a@x.com', 'b@x.com']],
    [' a@x.com ;; , b@x.com ; ', ['a@x.com', 'b@x.com']],
    ['"Roe, Jane" <jane@y.org>; b@x.com', ['"Roe, Jane" <jane@y.org>', 'b@x.com']],
    ['Jane Roe <jane@y.org>', ['"Jane Roe" <jane@y.org>']],
    ['A@X.com; a@x.COM', ['A@X.com']],
  ])('To %j → %j', (to, expected) => {
    expect(ok({ To_Address__c: to }).recipients).toEqual(expected);
  });

  it('deduplicates across To, Cc and Bcc, first occurrence wins, and omits empty lists', () => {
    const m = ok({ To_Address__c: 'a@x.com', Cc_Address__c: 'A@x.com; c@x.com', Bcc_Address__c: 'c@X.com' });
    expect(m.recipients).toEqual(['a@x.com']);
    expect(m.cc).toEqual(['c@x.com']);
    expect(m.bcc).toBeUndefined();
  });

  it.each([
    ['To_Address__c', 'a@x.com; not-an-address', 'To_Address__c: recipient 2 is not a valid email address'],
    ['Cc_Address__c', 'jane@localhost', 'Cc_Address__c: recipient 1 is not a valid email address'],
    ['Bcc_Address__c', 'x@y.com, a@@b.com', 'Bcc_Address__c: recipient 2 is not a valid email address'],
  ] as const)('an invalid %s is refused without echoing it', (field, value, message) => {
    const error = fail({ [field]: value });
    expect(error).toBe(message);
    expect(error).not.toContain('@');
  });

  it('requires at least one To recipient even when Cc is set', () => {
    expect(fail({ To_Address__c: ' ; ', Cc_Address__c: 'a@x.com' })).toBe('To_Address__c: at least one recipient is required');
  });

  it('allows 100 recipients and refuses 101, counted after deduplication', () => {
    const addrs = (n: number, p: string) => Array.from({ length: n }, (_, i) => `${p}${i}@x.com`).join(';');
    expect(ok({ To_Address__c: addrs(50, 't'), Cc_Address__c: addrs(50, 'c') + ';t0@x.com' }).cc).toHaveLength(50);
    expect(fail({ To_Address__c: addrs(60, 't'), Bcc_Address__c: addrs(41, 'b') })).toBe(
      'Too many recipients: 101 (Paubox allows 100 across To, Cc and Bcc)',
    );
  });

  it('splits only outside quotes, angle brackets and comments', () => {
    expect(splitAddressList('"a;b" <a@x.com>, (c,d) e@x.com;f@x.com')).toEqual(['"a;b" <a@x.com>', '(c,d) e@x.com', 'f@x.com']);
  });
});

describe('headers', () => {
  it('builds subject, from with a quoted name, reply-to and threading headers', () => {
    const m = ok({
      From_Name__c: 'Dr. "House", MD',
      Reply_To__c: 'desk@clinic.org',
      In_Reply_To__c: 'abc123@mail.clinic.org',
    });
    expect(m.headers).toEqual({
      subject: 'Your results',
      from: '"Dr. \\"House\\", MD" <noreply@clinic.org>',
      'reply-to': 'desk@clinic.org',
      'In-Reply-To': '<abc123@mail.clinic.org>',
      References: '<abc123@mail.clinic.org>',
      'X-In-Reply-To': '<abc123@mail.clinic.org>',
    });
  });

  it('keeps an already bracketed Message-ID as is and sends a bare from address', () => {
    const m = ok({ In_Reply_To__c: ' <id@h.org> ' });
    expect(m.headers['In-Reply-To']).toBe('<id@h.org>');
    expect(m.headers.from).toBe('noreply@clinic.org');
    expect(m.headers['reply-to']).toBeUndefined();
  });

  it.each([
    [{ Subject__c: 'Hi\r\nBcc: evil@x.com' }, 'Subject__c contains a line break'],
    [{ Subject__c: 'Hi\nthere' }, 'Subject__c contains a line break'],
    [{ From_Name__c: 'Clinic\r\nX-Evil: 1' }, 'From_Name__c contains a line break'],
    [{ From_Address__c: 'a@x.com\nBcc: b@x.com' }, 'From_Address__c contains a line break'],
    [{ Reply_To__c: 'a@x.com\r' }, 'Reply_To__c contains a line break'],
    [{ In_Reply_To__c: '<a@b>\r\nBcc: c@d.com' }, 'In_Reply_To__c contains a line break'],
    [{ Subject__c: '  ' }, 'Subject__c is required'],
    [{ Subject__c: null }, 'Subject__c is required'],
    [{ From_Address__c: null }, 'From_Address__c is required (an address on a domain verified with Paubox)'],
    [{ From_Address__c: 'not valid' }, 'From_Address__c is not a valid email address'],
    [{ Reply_To__c: 'nope' }, 'Reply_To__c is not a valid email address'],
    [{ In_Reply_To__c: 'no id here' }, 'In_Reply_To__c is not a Message-ID (expected <id@domain>)'],
  ] as Array<[Partial<SecureEmailMessage>, string]>)('%j is refused: %s', (overrides, message) => {
    expect(fail(overrides)).toBe(message);
  });

  it('reports several problems at once, within 255 characters', () => {
    const error = fail({ Subject__c: '', Text_Body__c: null, To_Address__c: 'bad' });
    expect(error).toContain('To_Address__c: recipient 1 is not a valid email address');
    expect(error).toContain('Subject__c is required');
    expect(error).toContain('No body: set Html_Body__c or Text_Body__c');
  });
});

describe('content and flags', () => {
  it('sends text as is and html base64-encoded', () => {
    const html = '<p>Résultats &amp; notes</p>';
    const m = ok({ Html_Body__c: html, Text_Body__c: 'plain' });
    expect(m.content['text/plain']).toBe('plain');
    expect(Buffer.from(m.content['text/html']!, 'base64').toString('utf8')).toBe(html);
  });

  it('needs one body', () => {
    expect(fail({ Text_Body__c: '  ', Html_Body__c: null })).toBe('No body: set Html_Body__c or Text_Body__c');
  });

  it.each([
    [null, null, false, false],
    [true, false, true, false],
    [false, true, false, true],
  ])('Force_Secure_Notification__c=%s Allow_Non_TLS__c=%s', (force, allow, f, a) => {
    const m = ok({ Force_Secure_Notification__c: force, Allow_Non_TLS__c: allow });
    expect(m.forceSecureNotification).toBe(f);
    expect(m.allowNonTLS).toBe(a);
  });
});

describe('attachments', () => {
  const file = (fileName: string, bytes: number, extra: Partial<AttachmentContent> = {}): AttachmentContent => ({
    fileName, size: bytes, content: Buffer.alloc(bytes, 1), ...extra,
  });

  it('encodes content as base64 and types it from the extension', () => {
    const m = ok({}, [
      file('report.PDF', 3),
      { fileName: 'notes', extension: 'txt', size: 2, content: Buffer.from('hi').toString('base64') },
      file('data.bin', 1),
    ]);
    expect(m.attachments).toEqual([
      { fileName: 'report.PDF', contentType: 'application/pdf', content: Buffer.alloc(3, 1).toString('base64') },
      { fileName: 'notes', contentType: 'text/plain', content: 'aGk=' },
      { fileName: 'data.bin', contentType: 'application/octet-stream', content: 'AQ==' },
    ]);
  });

  it.each([
    ['a.pdf', 'application/pdf'], ['a.png', 'image/png'], ['a.jpg', 'image/jpeg'], ['a.jpeg', 'image/jpeg'],
    ['a.gif', 'image/gif'], ['a.csv', 'text/csv'], ['a.html', 'text/html'], ['a.docx',
      'application/vnd.openxmlformats-officedocument.wordprocessingml.document'],
    ['a.xls', 'application/vnd.ms-excel'], ['a.zip', 'application/zip'], ['a.ics', 'text/calendar'],
    ['a.xml', 'application/xml'], ['a.json', 'application/json'], ['pdf', 'application/octet-stream'],
    ['a.constructor', 'application/octet-stream'],
  ])('%s → %s', (name, type) => {
    expect(contentTypeFor(name)).toBe(type);
  });

  it('allows exactly 10 MB in total and refuses more, without naming the files', () => {
    const tenMb = 10 * 1024 * 1024;
    expect(ok({}, [file('a.pdf', tenMb - 1), file('b.pdf', 1)]).attachments).toHaveLength(2);
    const error = fail({}, [file('secret-diagnosis.pdf', tenMb), file('b.pdf', 1024 * 1024)]);
    expect(error).toBe('Attachments total 11.0 MB; Paubox allows 10 MB');
  });

  it('counts the declared size when it is larger than the bytes given', () => {
    expect(fail({}, [{ fileName: 'a.pdf', size: 11 * 1024 * 1024, content: '' }])).toBe('Attachments total 11.0 MB; Paubox allows 10 MB');
  });

  it('refuses a file name with a line break', () => {
    expect(fail({}, [file('a\r\nb.pdf', 1)])).toBe('Attachment 1: file name contains a line break');
  });
});

describe('truncateError', () => {
  it('keeps short messages and cuts long ones to 255 characters on one line', () => {
    expect(truncateError('short')).toBe('short');
    const cut = truncateError('x'.repeat(300));
    expect(cut).toHaveLength(255);
    expect(cut.endsWith('…')).toBe(true);
    expect(truncateError('a\r\nb')).toBe('a b');
  });
});
