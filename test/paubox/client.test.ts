import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { createPauboxClient, type PauboxClient } from '../../src/paubox/client.js';
import { PauboxError, scrubDetail } from '../../src/paubox/errors.js';
import type { PauboxMessage } from '../../src/paubox/types.js';
import { checkServiceUrl, httpsAgent, isLoopback } from '../../src/net/tls.js';

const API_KEY = 'sekrit-api-key-123';

const message = (to = 'patient@example.com'): PauboxMessage => ({
  recipients: [to],
  headers: { subject: 'Results', from: 'noreply@clinic.org' },
  content: { 'text/plain': 'hello' },
  allowNonTLS: false,
  forceSecureNotification: false,
});

interface Seen { method: string; url: string; headers: http.IncomingHttpHeaders; body: unknown }
type Handler = (req: http.IncomingMessage, res: http.ServerResponse, body: string) => void;

let server: http.Server;
let baseUrl: string;
let handler: Handler;
let seen: Seen[];
let client: PauboxClient;

function reply(status: number, body: unknown, headers: Record<string, string> = {}): Handler {
  return (_req, res) => {
    res.writeHead(status, { 'Content-Type': 'application/json', ...headers });
    res.end(typeof body === 'string' ? body : JSON.stringify(body));
  };
}

async function listen(s: http.Server | https.Server): Promise<number> {
  await new Promise<void>((resolve) => s.listen(0, '127.0.0.1', resolve));
  return (s.address() as AddressInfo).port;
}

async function failure(p: Promise<unknown>): Promise<PauboxError> {
  const error = await p.then(() => null, (e: unknown) => e);
  expect(error).toBeInstanceOf(PauboxError);
  const e = error as PauboxError;
  expect(e.message).not.toContain(API_KEY);
  expect(e.message).not.toMatch(/\S@\S/);
  return e;
}

beforeAll(async () => {
  server = http.createServer((req, res) => {
    let body = '';
    req.setEncoding('utf8');
    req.on('data', (c: string) => (body += c));
    req.on('end', () => {
      seen.push({ method: req.method!, url: req.url!, headers: req.headers, body: body ? JSON.parse(body) : undefined });
      handler(req, res, body);
    });
  });
  baseUrl = `http://127.0.0.1:${await listen(server)}/v1/email`;
});

afterAll(() => new Promise<void>((resolve) => { server.closeAllConnections(); server.close(() => resolve()); }));

beforeEach(() => {
  seen = [];
  handler = reply(200, {});
  client = createPauboxClient({ baseUrl: `${baseUrl}/`, apiKey: API_KEY, timeoutMs: 1_000 });
});

describe('send', () => {
  it('POSTs {data: {message}} with the token and returns the tracking id', async () => {
    handler = reply(200, { sourceTrackingId: 'trk-1', customHeaders: { 'X-A': '1' }, data: 'Service OK' });
    await expect(client.send(message())).resolves.toEqual({ trackingId: 'trk-1', customHeaders: { 'X-A': '1' } });
    expect(seen).toHaveLength(1);
    expect(seen[0]).toMatchObject({ method: 'POST', url: '/v1/email/messages', body: { data: { message: message() } } });
    expect(seen[0]!.headers.authorization).toBe(`Token token=${API_KEY}`);
    expect(seen[0]!.headers['content-type']).toBe('application/json');
  });

  it.each([
    ['errors array', 400, { errors: [{ code: 400, title: 'Invalid recipient', details: 'bad jane@example.com here' }] }, 'Invalid recipient: bad [address] here'],
    ['errors text', 422, { errors: 'From domain not verified for noreply@clinic.org' }, 'From domain not verified for [address]'],
    ['message', 400, { message: 'Subject is required' }, 'Subject is required'],
    ['error', 403, { error: 'Forbidden' }, 'Forbidden'],
    ['nested under data', 400, { data: { errors: [{ title: 'Bad base64' }] } }, 'Bad base64'],
    ['an HTML page', 400, '<html>oops a@b.com</html>', 'HTTP 400'],
  ])('a 4xx with %s is rejected, saying what Paubox objected to without addresses', async (_n, status, body, text) => {
    handler = reply(status, body);
    const e = await failure(client.send(message()));
    expect(e).toMatchObject({ kind: 'rejected', status });
    expect(e.retryable).toBe(false);
    expect(e.message).toContain(text);
    expect(e.message.length).toBeLessThanOrEqual(255);
  });

  it('a 401 points at the key', async () => {
    handler = reply(401, { errors: [{ title: 'Unauthorized' }] });
    expect((await failure(client.send(message()))).message).toContain('PAUBOX_API_KEY');
  });

  it('a 2xx that carries errors is rejected', async () => {
    handler = reply(200, { errors: [{ title: 'Missing content' }] });
    expect(await failure(client.send(message()))).toMatchObject({ kind: 'rejected', status: 200 });
  });

  it('a 2xx without a tracking id is an unknown outcome', async () => {
    handler = reply(200, 'Service OK');
    expect(await failure(client.send(message()))).toMatchObject({ kind: 'unknown', status: 200 });
  });

  it('429 is throttled with Retry-After; 503 is unavailable', async () => {
    handler = reply(429, { errors: 'slow down' }, { 'Retry-After': '3' });
    expect(await failure(client.send(message()))).toMatchObject({ kind: 'throttled', status: 429, retryAfterMs: 3000 });
    handler = reply(503, 'upstream down');
    const e = await failure(client.send(message()));
    expect(e).toMatchObject({ kind: 'unavailable', status: 503 });
    expect(e.retryable).toBe(true);
  });

  it('a connection reset after the request was written is unknown', async () => {
    handler = (req) => req.socket.destroy();
    const e = await failure(client.send(message()));
    expect(e.kind).toBe('unknown');
    expect(e.retryable).toBe(false);
    expect(seen).toHaveLength(1); // Paubox did get it
  });

  it('no answer within the timeout is unknown', async () => {
    handler = () => undefined; // never answers
    const quick = createPauboxClient({ baseUrl, apiKey: API_KEY, timeoutMs: 100 });
    expect(await failure(quick.send(message()))).toMatchObject({ kind: 'unknown', code: 'ETIMEDOUT' });
  });

  it('connection refused is not-sent (safe to retry)', async () => {
    const closed = http.createServer();
    const port = await listen(closed);
    await new Promise((r) => closed.close(r));
    const refused = createPauboxClient({ baseUrl: `http://127.0.0.1:${port}/v1/email`, apiKey: API_KEY });
    const e = await failure(refused.send(message()));
    expect(e).toMatchObject({ kind: 'not-sent', code: 'ECONNREFUSED' });
    expect(e.retryable).toBe(true);
  });

  it('never leaks the key or the body into the error', async () => {
    // Paubox echoing the whole message back, recipient included
    const sent = message('someone.private@hospital.org');
    handler = reply(400, { errors: [{ title: 'Invalid message', details: JSON.stringify(sent) }] });
    const e = await failure(client.send(sent));
    expect(e.message).toContain('Invalid message');
    expect(e.message).not.toContain('Results'); // the subject, echoed in quotes
    expect(e.message).not.toContain('someone.private');
    expect(JSON.stringify(e)).not.toContain(API_KEY);
  });
});

describe('scrubDetail', () => {
  it.each([
    ["Subject 'Biopsy results' is too long", "Subject '…' is too long"],
    ['Invalid recipient "Jane Roe" <jane@x.org>', 'Invalid recipient "…" <[address]>'],
    ["can't parse content", "can't parse content"],
    ['line\r\nbreak', 'line break'],
  ])('%j → %j', (input, output) => {
    expect(scrubDetail(input)).toBe(output);
  });
});

describe('sendBulk', () => {
  it('POSTs {data: {messages}} and returns results in order, per message', async () => {
    handler = reply(200, { messages: [
      { sourceTrackingId: 't1', data: 'Service OK' },
      { errors: [{ title: 'Invalid recipient', details: 'x@y.com' }] },
      { sourceTrackingId: 't3' },
    ] });
    const results = await client.sendBulk([message('a@x.com'), message('b@x.com'), message('c@x.com')]);
    expect(seen[0]).toMatchObject({ url: '/v1/email/bulk_messages', body: { data: { messages: [message('a@x.com'), message('b@x.com'), message('c@x.com')] } } });
    expect(results[0]).toEqual({ ok: true, trackingId: 't1' });
    expect(results[1]).toMatchObject({ ok: false, error: { kind: 'rejected' } });
    expect(results[2]).toEqual({ ok: true, trackingId: 't3' });
  });

  it('a result count that does not match is an unknown outcome for the batch', async () => {
    handler = reply(200, { messages: [{ sourceTrackingId: 't1' }] });
    expect(await failure(client.sendBulk([message(), message()]))).toMatchObject({ kind: 'unknown' });
  });

  it('a 400 fails the whole batch as rejected; more than 50 is refused before sending', async () => {
    handler = reply(400, { errors: [{ title: 'Bad message' }] });
    expect(await failure(client.sendBulk([message()]))).toMatchObject({ kind: 'rejected', status: 400 });
    await expect(client.sendBulk(Array.from({ length: 51 }, () => message()))).rejects.toThrow(RangeError);
    await expect(client.sendBulk([])).resolves.toEqual([]);
  });
});

describe('receipt', () => {
  it('GETs message_receipt with the tracking id and returns the body', async () => {
    const body = { sourceTrackingId: 'a b', data: { message: { id: '<m@x>', message_deliveries: [] } } };
    handler = reply(200, body);
    await expect(client.receipt('a b')).resolves.toEqual({ notFound: false, receipt: body });
    expect(seen[0]).toMatchObject({ method: 'GET', url: '/v1/email/message_receipt?sourceTrackingId=a%20b' });
  });

  it.each([
    ['404', 404, { errors: [{ code: 404, title: 'Message was not found' }] }],
    ['404 nested under data', 404, { data: { errors: [{ code: 404, title: 'Message was not found' }] } }],
    ['200 that says not found', 200, { data: { errors: [{ code: 404, title: 'Message was not found' }] } }],
  ])('%s → notFound, not an exception', async (_n, status, body) => {
    handler = reply(status, body);
    await expect(client.receipt('nope')).resolves.toEqual({ notFound: true });
  });

  it('503 is unavailable', async () => {
    handler = reply(503, {});
    expect(await failure(client.receipt('x'))).toMatchObject({ kind: 'unavailable' });
  });
});

describe('transport policy', () => {
  it.each([
    ['localhost', true], ['127.0.0.1', true], ['127.8.9.10', true], ['[::1]', true], ['::1', true],
    ['::ffff:127.0.0.1', true], ['api.paubox.com', false], ['128.0.0.1', false], ['localhost.evil.com', false],
    ['10.0.0.1', false], ['::2', false],
  ])('isLoopback(%s) = %s', (host, expected) => {
    expect(isLoopback(host)).toBe(expected);
  });

  it('refuses http:// to a non-loopback host, naming the variable', () => {
    expect(() => checkServiceUrl('http://api.paubox.com/v1/email', 'PAUBOX_BASE_URL')).toThrow(/PAUBOX_BASE_URL.*https/);
    expect(() => checkServiceUrl('not a url', 'PAUBOX_BASE_URL')).toThrow(/PAUBOX_BASE_URL is not a valid URL/);
    expect(() => checkServiceUrl('ftp://x.org', 'PAUBOX_BASE_URL')).toThrow(/PAUBOX_BASE_URL/);
    expect(checkServiceUrl('http://127.0.0.1:9/x', 'V').port).toBe('9');
    expect(checkServiceUrl('https://api.paubox.com/v1/email', 'V').hostname).toBe('api.paubox.com');
    expect(() => createPauboxClient({ baseUrl: 'http://api.paubox.com/v1/email', apiKey: 'k' })).toThrow(/PAUBOX_BASE_URL/);
  });

  describe('over HTTPS', () => {
    let dir: string;
    let key: Buffer;
    let cert: Buffer;

    beforeAll(() => {
      dir = fs.mkdtempSync(path.join(os.tmpdir(), 'paubox-tls-'));
      execFileSync('openssl', [
        'req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '1', '-subj', '/CN=localhost',
        '-addext', 'subjectAltName=IP:127.0.0.1,DNS:localhost',
        '-keyout', path.join(dir, 'key.pem'), '-out', path.join(dir, 'cert.pem'),
      ], { stdio: 'ignore' });
      key = fs.readFileSync(path.join(dir, 'key.pem'));
      cert = fs.readFileSync(path.join(dir, 'cert.pem'));
    });

    afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

    async function withServer(options: https.ServerOptions, fn: (url: string) => Promise<void>) {
      const s = https.createServer({ key, cert, ...options }, (_req, res) => {
        res.writeHead(200, { 'Content-Type': 'application/json' });
        res.end(JSON.stringify({ sourceTrackingId: 'tls-ok' }));
      });
      s.on('tlsClientError', () => undefined);
      const port = await listen(s);
      try {
        await fn(`https://127.0.0.1:${port}/v1/email`);
      } finally {
        s.closeAllConnections();
        await new Promise((r) => s.close(r));
      }
    }

    it('sends over TLS 1.2+', async () => {
      await withServer({}, async (url) => {
        const tlsClient = createPauboxClient({ baseUrl: url, apiKey: API_KEY, agent: httpsAgent({ ca: cert }) });
        await expect(tlsClient.send(message())).resolves.toEqual({ trackingId: 'tls-ok' });
      });
    });

    it('refuses a server that offers only TLS 1.0/1.1: not-sent, and says TLS', async () => {
      await withServer({ minVersion: 'TLSv1', maxVersion: 'TLSv1.1', ciphers: 'DEFAULT:@SECLEVEL=0' }, async (url) => {
        const tlsClient = createPauboxClient({ baseUrl: url, apiKey: API_KEY, agent: httpsAgent({ ca: cert }) });
        const e = await failure(tlsClient.send(message()));
        expect(e.kind).toBe('not-sent');
        expect(e.message).toContain('TLS');
      });
    });

    it('refuses an untrusted certificate: not-sent', async () => {
      await withServer({}, async (url) => {
        const tlsClient = createPauboxClient({ baseUrl: url, apiKey: API_KEY });
        const e = await failure(tlsClient.send(message()));
        expect(e.kind).toBe('not-sent');
        expect(e.message).toContain('TLS');
      });
    });
  });
});
