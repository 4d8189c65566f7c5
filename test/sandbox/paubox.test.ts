import fetch from 'node-fetch';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { SandboxClock } from '../../src/sandbox/clock.js';
import { PAUBOX_STATUS, startPaubox, type PauboxSandbox, type ReceiptBody } from '../../src/sandbox/paubox.js';

let paubox: PauboxSandbox;

interface Answer {
  status: number;
  body: unknown;
  retryAfter: string | null;
}

async function call(path: string, init: { method?: string; body?: unknown; auth?: string; base?: string } = {}): Promise<Answer> {
  const res = await fetch(`${init.base ?? paubox.url}${path}`, {
    method: init.method ?? (init.body === undefined ? 'GET' : 'POST'),
    headers: { authorization: init.auth ?? `Token token=${paubox.apiKey}`, 'content-type': 'application/json' },
    body: init.body === undefined ? undefined : typeof init.body === 'string' ? init.body : JSON.stringify(init.body),
  });
  const text = await res.text();
  let body: unknown = text;
  try {
    body = JSON.parse(text);
  } catch { /* keep the text */ }
  return { status: res.status, body, retryAfter: res.headers.get('retry-after') };
}

/** A valid message; `patch` replaces top-level fields, `headers` merges into headers. */
function message(patch: Record<string, unknown> = {}, headers: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    recipients: ['pat@patients.example'],
    headers: { subject: 'Your results', from: 'Clinic <noreply@clinic.example>', ...headers },
    content: { 'text/plain': 'Please call us.' },
    ...patch,
  };
}

const send = (m: unknown, opts: { auth?: string; base?: string } = {}) => call('/messages', { body: { data: { message: m } }, ...opts });
const b64 = (s: string) => Buffer.from(s).toString('base64');
const receipt = async (id: string) => (await call(`/message_receipt?sourceTrackingId=${id}`)).body as ReceiptBody;

beforeAll(async () => {
  paubox = await startPaubox({ apiUsername: 'clinicuser' });
});
afterAll(() => paubox.close());
beforeEach(() => {
  paubox.control.outage(null);
  paubox.control.failNext(0, 500);
  paubox.control.dropAfterAccept(0);
});

describe('sandbox Paubox: requests and answers', () => {
  it('answers a table of valid and invalid requests the way Paubox does', async () => {
    const many = Array.from({ length: 101 }, (_, i) => `p${i}@patients.example`);
    const rows: Array<{ request: string; run: () => Promise<Answer>; status: number }> = [
      { request: 'minimal text/plain message', run: () => send(message()), status: 200 },
      {
        request: 'Name <addr>, cc, bcc, base64 html, attachment, X- and threading headers',
        run: () => send(message({
          recipients: ['Jane Roe <jane@patients.example>'], cc: ['"Roe, J" <j2@patients.example>'], bcc: ['audit@clinic.example'],
          content: { 'text/plain': 'hi', 'text/html': b64('<p>hi</p>') },
          attachments: [{ fileName: 'a.pdf', contentType: 'application/pdf', content: b64('%PDF-1.4') }],
        }, { 'X-Sdt-Record': 'a0B1', 'In-Reply-To': '<x@clinic.example>', References: '<x@clinic.example>', 'reply-to': 'desk@clinic.example' })),
        status: 200,
      },
      { request: 'raw text/html only', run: () => send(message({ content: { 'text/html': '<b>hi</b>' } })), status: 200 },
      { request: 'Authorization: Bearer <key>', run: () => send(message(), { auth: `Bearer ${paubox.apiKey}` }), status: 200 },
      { request: 'base /v1 (no /email)', run: () => send(message(), { base: paubox.v1Url }), status: 200 },
      { request: 'legacy base /v1/<username>', run: () => send(message(), { base: paubox.legacyUrl('clinicuser') }), status: 200 },
      { request: 'legacy base, another username', run: () => send(message(), { base: paubox.legacyUrl('someoneelse') }), status: 401 },
      { request: 'wrong API key', run: () => send(message(), { auth: 'Token token=nope' }), status: 401 },
      { request: 'no Authorization header', run: () => send(message(), { auth: '' }), status: 401 },
      { request: 'recipients: []', run: () => send(message({ recipients: [] })), status: 400 },
      { request: 'invalid recipient address', run: () => send(message({ recipients: ['not an address'] })), status: 400 },
      { request: 'recipient without a dotted domain', run: () => send(message({ recipients: ['pat@localhost'] })), status: 400 },
      { request: 'invalid cc address', run: () => send(message({ cc: ['a@@b.example'] })), status: 400 },
      { request: 'missing subject', run: () => send(message({ headers: { from: 'noreply@clinic.example' } })), status: 400 },
      { request: 'missing from', run: () => send(message({ headers: { subject: 's' } })), status: 400 },
      { request: 'no content', run: () => send(message({ content: {} })), status: 400 },
      { request: 'empty text/plain, no html', run: () => send(message({ content: { 'text/plain': '' } })), status: 400 },
      {
        request: 'attachment content not base64',
        run: () => send(message({ attachments: [{ fileName: 'a.pdf', contentType: 'application/pdf', content: 'not*base64!' }] })),
        status: 400,
      },
      { request: 'raw text/html without any tag', run: () => send(message({ content: { 'text/html': 'Thanks' } })), status: 200 },
      { request: 'text/html truncated base64', run: () => send(message({ content: { 'text/html': b64('<p>Please call the clinic.</p>').slice(0, -2) } })), status: 400 },
      { request: 'from an unverified domain', run: () => send(message({}, { from: 'x@elsewhere.example' })), status: 422 },
      { request: '101 recipients (to+cc+bcc)', run: () => send(message({ recipients: many.slice(0, 50), cc: many.slice(50, 100), bcc: many.slice(100) })), status: 400 },
      { request: 'custom header without X-', run: () => send(message({}, { 'Sdt-Record': 'a0B1' })), status: 400 },
      { request: 'header value with CR LF', run: () => send(message({}, { subject: 'hi\r\nBcc: evil@x.example' })), status: 400 },
      { request: 'body not JSON', run: () => call('/messages', { body: '{oops' }), status: 400 },
      { request: 'receipt for an unknown id', run: () => call('/message_receipt?sourceTrackingId=00000000-0000-0000-0000-000000000000'), status: 404 },
      { request: 'receipt without sourceTrackingId', run: () => call('/message_receipt'), status: 400 },
      { request: 'failNext(1, 429)', run: async () => { paubox.control.failNext(1, 429); return send(message()); }, status: 429 },
      { request: 'failNext(1, 500)', run: async () => { paubox.control.failNext(1, 500); return send(message()); }, status: 500 },
      { request: 'failNext(1, 502)', run: async () => { paubox.control.failNext(1, 502); return send(message()); }, status: 502 },
      { request: 'failNext(1, 503) on receipts only, then a send', run: async () => { paubox.control.failNext(1, 503, 'message_receipt'); return send(message()); }, status: 200 },
      { request: 'outage(503)', run: async () => { paubox.control.outage(503); try { return await send(message()); } finally { paubox.control.outage(null); } }, status: 503 },
    ];
    const table: Array<{ request: string; status: number; body: string }> = [];
    const before = paubox.accepted().length;
    for (const row of rows) {
      const answer = await row.run();
      table.push({ request: row.request, status: answer.status, body: JSON.stringify(answer.body).slice(0, 140) });
      expect.soft(answer.status, row.request).toBe(row.status);
      expect.soft(answer.retryAfter, row.request).toBeNull();
      if (answer.status === 200) expect.soft(answer.body).toMatchObject({ sourceTrackingId: expect.any(String), data: 'Service OK' });
      else expect.soft(answer.body, row.request).toSatisfy((b: unknown) => typeof b === 'object' && b !== null
        && ('errors' in b || 'error' in b || 'message' in b));
    }
    paubox.control.failNext(0, 500);
    console.log('Sandbox Paubox: request → answer\n' + table.map((r) => `${String(r.status).padEnd(4)}${r.request.padEnd(80)} ${r.body}`).join('\n'));
    expect(paubox.accepted().length - before).toBe(rows.filter((r) => r.status === 200).length);
    // Validation errors use the documented {"errors":[{code,title,details}]} shape.
    const noSubject = table.find((r) => r.request === 'missing subject')!;
    expect(JSON.parse(noSubject.body)).toMatchObject({ errors: [{ code: 400, title: expect.any(String), details: expect.any(String) }] });
  });

  it('keeps the raw message and a decoded view, and echoes X- headers as customHeaders', async () => {
    const raw = message({
      content: { 'text/html': b64('<p>Résultats</p>') },
      attachments: [{ fileName: 'r.pdf', contentType: 'application/pdf', content: b64('%PDF-1.7 bytes') }],
    }, { 'X-Sdt-Record': 'a0B2' });
    const answer = await send(raw);
    const { sourceTrackingId, customHeaders } = answer.body as { sourceTrackingId: string; customHeaders: unknown };
    expect(customHeaders).toEqual({ 'X-Sdt-Record': 'a0B2' });
    const logged = paubox.byTrackingId(sourceTrackingId)!;
    expect(logged.message).toEqual(raw);
    expect(logged.decoded.html).toBe('<p>Résultats</p>');
    expect(logged.decoded.htmlWasBase64).toBe(true);
    expect(logged.decoded.attachments[0]!.content.toString()).toBe('%PDF-1.7 bytes');
  });
});

describe('sandbox Paubox: receipts on the sandbox clock', () => {
  let clocked: PauboxSandbox;
  let clock: SandboxClock;
  const at = (path: string) => call(path, { base: clocked.url, auth: `Token token=${clocked.apiKey}` });
  const receiptOf = async (id: string) => (await at(`/message_receipt?sourceTrackingId=${id}`)).body as ReceiptBody;
  const statuses = (r: ReceiptBody) => Object.fromEntries(r.data.message.message_deliveries.map((d) => [d.recipient, d.status.deliveryStatus]));

  beforeAll(async () => {
    clock = new SandboxClock();
    clocked = await startPaubox({ clock, progression: { listMs: 5_000, deliverMs: 30_000, portalMs: 120_000, openMs: 600_000 } });
  });
  afterAll(() => clocked.close());

  async function sendTo(recipients: string[]): Promise<string> {
    const answer = await call('/messages', { base: clocked.url, auth: `Token token=${clocked.apiKey}`, body: { data: { message: message({ recipients }) } } });
    expect(answer.status).toBe(200);
    return (answer.body as { sourceTrackingId: string }).sourceTrackingId;
  }

  it('progresses delivering, hard-bouncing and portal recipients to their final statuses', async () => {
    const id = await sendTo(['pat@patients.example', 'bounce.jo@patients.example', 'Kim <portal.kim@patients.example>']);
    let r = await receiptOf(id);
    expect(r.sourceTrackingId).toBe(id);
    expect(r.data.message.id).toMatch(/^<[0-9a-f-]{36}@clinic\.example>$/);
    expect(r.data.message.message_deliveries).toEqual([]);

    clock.advance(5_000);
    r = await receiptOf(id);
    expect(Object.values(statuses(r))).toEqual(['processing', 'processing', 'processing']);

    clock.advance(30_000);
    r = await receiptOf(id);
    expect(statuses(r)).toEqual({
      'pat@patients.example': PAUBOX_STATUS.delivered,
      'bounce.jo@patients.example': PAUBOX_STATUS.hardBounced,
      'portal.kim@patients.example': PAUBOX_STATUS.portalPending,
    });
    expect(r.data.message.message_deliveries[0]!.status.deliveryTime).toMatch(/^\w{3}, \d{2} \w{3} \d{4} \d{2}:\d{2}:\d{2} [+-]\d{4}$/);
    // Opens are not reported for multi-recipient messages.
    expect(r.data.message.message_deliveries.map((d) => d.status.openedStatus)).toEqual([null, null, null]);
    expect(r.data.message.total_opens).toBeUndefined();

    clock.advance(120_000);
    r = await receiptOf(id);
    expect(statuses(r)['portal.kim@patients.example']).toBe('delivered via secure portal');
    expect(r.data.message.id).toBe(clocked.byTrackingId(id)!.messageId);
  });

  it('reports opens for single-recipient messages, late opens an hour after delivery, and soft bounces', async () => {
    const open = await sendTo(['open.al@patients.example']);
    const late = await sendTo(['lateopen.bo@patients.example']);
    const soft = await sendTo(['soft.cy@patients.example']);
    const softOk = await sendTo(['softok.di@patients.example']);
    clock.advance(30_000);
    expect((await receiptOf(open)).data.message).toMatchObject({
      message_deliveries: [{ status: { deliveryStatus: 'delivered', openedStatus: 'not opened', openedTime: null } }],
      total_opens: 0, distinct_opens: 0,
    });
    clock.advance(600_000);
    const opened = (await receiptOf(open)).data.message;
    expect(opened.message_deliveries[0]!.status.openedStatus).toBe('opened');
    expect(opened.message_deliveries[0]!.status.openedTime).toEqual(expect.any(String));
    expect(opened.total_opens).toBe(1);
    expect((await receiptOf(late)).data.message.message_deliveries[0]!.status.openedStatus).toBe('not opened');
    expect(statuses(await receiptOf(softOk))).toEqual({ 'softok.di@patients.example': 'soft bounced' });
    clock.advance(60 * 60_000);
    expect((await receiptOf(late)).data.message.message_deliveries[0]!.status.openedStatus).toBe('opened');
    expect(statuses(await receiptOf(soft))).toEqual({ 'soft.cy@patients.example': 'soft bounced' });
    expect(statuses(await receiptOf(softOk))).toEqual({ 'softok.di@patients.example': 'delivered' });
  });

  it('answers 404 for a fresh message while receipt404For is set', async () => {
    clocked.control.receipt404For(60_000);
    const id = await sendTo(['pat@patients.example']);
    expect((await at(`/message_receipt?sourceTrackingId=${id}`)).status).toBe(404);
    clock.advance(60_000);
    expect((await at(`/message_receipt?sourceTrackingId=${id}`)).status).toBe(200);
    clocked.control.receipt404For(0);
  });
});

describe('sandbox Paubox: faults and bulk', () => {
  it('accepts then drops: the client sees a reset, the message counts as sent', async () => {
    paubox.control.dropAfterAccept(1);
    const before = paubox.accepted().length;
    const failure = await send(message({}, { subject: 'dropped one' })).then(() => undefined, (err: unknown) => err as Error & { code?: string });
    expect(failure).toBeDefined();
    expect(failure!.name).toBe('FetchError');
    expect(failure!.code).toMatch(/ECONNRESET|EPIPE|ECONNABORTED/);
    const after = paubox.accepted();
    expect(after).toHaveLength(before + 1);
    expect((after.at(-1)!.message as { headers: { subject: string } }).headers.subject).toBe('dropped one');
    expect(paubox.counter.get('paubox.dropped')).toBe(1);
    expect((await send(message())).status).toBe(200);
  });

  it('holds requests while stalled and answers them once the stall lifts', async () => {
    paubox.control.stall(true);
    const stalledBefore = paubox.counter.get('paubox.stalled');
    const pending = send(message());
    while (paubox.counter.get('paubox.stalled') === stalledBefore) await new Promise((r) => setTimeout(r, 5));
    paubox.control.stall(false);
    expect((await pending).status).toBe(200);
  });

  it('bulk of 3 answers 3 tracking ids in request order', async () => {
    const subjects = ['first', 'second', 'third'];
    const answer = await call('/bulk_messages', { body: { data: { messages: subjects.map((s) => message({}, { subject: s })) } } });
    expect(answer.status).toBe(200);
    const items = (answer.body as { messages: Array<{ sourceTrackingId: string; data: string }> }).messages;
    expect(items).toHaveLength(3);
    expect(items.map((i) => i.data)).toEqual(['Service OK', 'Service OK', 'Service OK']);
    const logged = items.map((i) => (paubox.byTrackingId(i.sourceTrackingId)!.message as { headers: { subject: string } }).headers.subject);
    expect(logged).toEqual(subjects);
    expect((await receipt(items[2]!.sourceTrackingId)).sourceTrackingId).toBe(items[2]!.sourceTrackingId);
  });

  it('bulk with one invalid message fails whole with 400 and accepts nothing', async () => {
    const before = paubox.accepted().length;
    const itemsBefore = paubox.counter.get('paubox.bulk_message_items');
    const answer = await call('/bulk_messages', {
      body: { data: { messages: [message(), message({ recipients: ['nope'] }), message()] } },
    });
    expect(answer.status).toBe(400);
    expect(answer.body).toMatchObject({ errors: [{ code: 400, details: expect.stringContaining('message 2') }] });
    expect(paubox.accepted()).toHaveLength(before);
    expect(paubox.counter.get('paubox.bulk_message_items')).toBe(itemsBefore);
  });
});
