import { randomBytes, randomUUID } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { SandboxClock } from './clock.js';
import { CallCounter } from './counter.js';
import {
  buildReceipt,
  DEFAULT_PAUBOX_PROGRESSION,
  type PauboxProgression,
  type ReceiptBody,
} from './paubox-receipts.js';
import { PauboxRejection, validateMessage, type DecodedMessage } from './paubox-validate.js';

export * from './paubox-receipts.js';
export {
  PAUBOX_KNOWN_HEADERS,
  PAUBOX_MAX_ATTACHMENT_BYTES,
  PAUBOX_MAX_RECIPIENTS,
  PauboxRejection,
  type DecodedMessage,
} from './paubox-validate.js';

/**
 * Sandbox Paubox Email API on loopback: the same endpoints, auth, validation errors,
 * receipts and failures as the reference describes, so the worker's real HTTP client
 * runs against it unchanged. Validation rules and their open choices are in
 * paubox-validate.ts; receipt progression and the address conventions that drive it
 * are in paubox-receipts.ts.
 *
 * Base URLs served (all equivalent): `/v1/email` (`url`), `/v1` (`v1Url`) and the
 * legacy `/v1/<username>` (`legacyUrl(username)`; with `apiUsername` set, another
 * username is 401 as on the legacy host).
 *
 * Failure bodies deliberately use every shape the reference lists, so the worker's
 * error parser meets them all: see PAUBOX_FAULT_BODIES.
 */

export type PauboxEndpoint = 'messages' | 'bulk_messages' | 'message_receipt';

export interface PauboxOptions {
  port?: number;
  clock?: SandboxClock;
  /** default: a random key, exposed as `apiKey` */
  apiKey?: string;
  /** legacy `/v1/<username>` paths must use this username when set */
  apiUsername?: string;
  verifiedDomains?: string[];
  latencyMs?: number;
  progression?: Partial<PauboxProgression>;
}

export interface AcceptedMessage {
  sourceTrackingId: string;
  /** the JSON `message` object exactly as received (text/html possibly base64) */
  message: unknown;
  /** parsed addresses, decoded html and attachments */
  decoded: DecodedMessage;
  /** the RFC Message-ID receipts report, `<uuid@fromdomain>` */
  messageId: string;
  /** sandbox-clock ms */
  receivedAt: number;
  via: 'messages' | 'bulk_messages';
  /** siblings of `message`/`messages` under `data` (override_open_tracking, …) */
  options: Record<string, unknown>;
}

export interface PauboxControl {
  setLatency(ms: number): void;
  /** The next `n` calls (to `endpoint` only, when given) answer `status`. */
  failNext(n: number, status: number, endpoint?: PauboxEndpoint): void;
  /** Every call answers `status` until `outage(null)`. */
  outage(status: number | null): void;
  /** The next `n` sends are accepted and logged, then the socket is destroyed unanswered. */
  dropAfterAccept(n: number): void;
  /**
   * While on, requests are held unanswered. When lifted, held requests whose client is
   * still connected proceed normally; one the client gave up on is never processed.
   */
  stall(on: boolean): void;
  /** Receipts of messages younger than `ms` (sandbox clock) answer 404 as if unknown. */
  receipt404For(ms: number): void;
}

export interface PauboxSandbox {
  /** `http://127.0.0.1:PORT/v1/email`: use as PAUBOX_BASE_URL */
  url: string;
  v1Url: string;
  legacyUrl(username: string): string;
  apiKey: string;
  verifiedDomains: readonly string[];
  clock: SandboxClock;
  counter: CallCounter;
  control: PauboxControl;
  accepted(): AcceptedMessage[];
  byTrackingId(id: string): AcceptedMessage | undefined;
  /** The receipt `message_receipt` would answer now (ignores faults), for tests. */
  receipt(id: string): ReceiptBody | undefined;
  close(): Promise<void>;
}

/** Failure bodies, one documented shape each; 429 carries no Retry-After. */
export const PAUBOX_FAULT_BODIES: Readonly<Record<number, unknown>> = {
  429: { message: 'Too Many Requests' },
  500: { errors: [{ code: 500, title: 'Internal Server Error', details: 'Something went wrong, please try again later' }] },
  502: { error: 'Bad Gateway' },
  503: { errors: 'Service Unavailable' },
  504: { message: 'Gateway Timeout' },
};

const MAX_BODY_BYTES = 64 * 1024 * 1024;

function faultBody(status: number): unknown {
  return PAUBOX_FAULT_BODIES[status] ?? { errors: [{ code: status, title: http.STATUS_CODES[status] ?? 'Error', details: 'sandbox fault' }] };
}

function errorBody(status: number, title: string, details: string): unknown {
  return { errors: [{ code: status, title, details }] };
}

class TooLarge extends Error {}

function readBody(req: http.IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (c: Buffer) => {
      size += c.length;
      if (size > MAX_BODY_BYTES) reject(new TooLarge());
      else chunks.push(c);
    });
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    req.on('error', reject);
  });
}

/** `/v1[/<email|username>]/<endpoint>` → the endpoint and the middle segment. */
function route(pathname: string): { endpoint: PauboxEndpoint; prefix: string | undefined } | undefined {
  const parts = pathname.split('/').filter(Boolean);
  if (parts[0] !== 'v1' || parts.length < 2 || parts.length > 3) return undefined;
  const endpoint = parts.at(-1);
  if (endpoint !== 'messages' && endpoint !== 'bulk_messages' && endpoint !== 'message_receipt') return undefined;
  return { endpoint, prefix: parts.length === 3 ? parts[1] : undefined };
}

function bearerKey(header: string | undefined): string | undefined {
  const m = /^(?:Token\s+token=|Bearer\s+)"?([^"\s]+)"?\s*$/i.exec(header ?? '');
  return m?.[1];
}

function asObject(v: unknown): Record<string, unknown> | undefined {
  return v && typeof v === 'object' && !Array.isArray(v) ? (v as Record<string, unknown>) : undefined;
}

export async function startPaubox(opts: PauboxOptions = {}): Promise<PauboxSandbox> {
  const clock = opts.clock ?? new SandboxClock();
  const apiKey = opts.apiKey ?? randomBytes(24).toString('hex');
  const verifiedDomains = opts.verifiedDomains ?? ['sandbox.example', 'clinic.example'];
  const progression: PauboxProgression = { ...DEFAULT_PAUBOX_PROGRESSION, ...opts.progression };
  const counter = new CallCounter();
  const log: AcceptedMessage[] = [];
  const byId = new Map<string, AcceptedMessage>();

  let latencyMs = opts.latencyMs ?? 0;
  let fail = { remaining: 0, status: 500, endpoint: undefined as PauboxEndpoint | undefined };
  let outageStatus: number | null = null;
  let dropRemaining = 0;
  let stalled = false;
  let held: Array<() => void> = [];
  let receipt404Ms = 0;

  const reply = (res: http.ServerResponse, status: number, body: unknown): void => {
    counter.count(`paubox.status.${status}`);
    const text = JSON.stringify(body);
    res.writeHead(status, { 'content-type': 'application/json; charset=utf-8', 'content-length': Buffer.byteLength(text) });
    res.end(text);
  };

  const accept = (raw: unknown, decoded: DecodedMessage, via: AcceptedMessage['via'], options: Record<string, unknown>): AcceptedMessage => {
    const entry: AcceptedMessage = {
      sourceTrackingId: randomUUID(),
      message: raw,
      decoded,
      messageId: `<${randomUUID()}@${decoded.from.domain}>`,
      receivedAt: clock.now(),
      via,
      options,
    };
    log.push(entry);
    byId.set(entry.sourceTrackingId, entry);
    counter.count('paubox.accepted');
    return entry;
  };

  const sendResult = (e: AcceptedMessage) => ({ sourceTrackingId: e.sourceTrackingId, customHeaders: e.decoded.customHeaders, data: 'Service OK' });

  const receiptOf = (id: string): ReceiptBody | undefined => {
    const e = byId.get(id);
    if (!e) return undefined;
    const all = [...e.decoded.to, ...e.decoded.cc, ...e.decoded.bcc];
    return buildReceipt(e.sourceTrackingId, e.messageId, all, e.receivedAt, clock.now(), progression);
  };

  /** Parses `{"data": …}`; undefined after answering 400 when it is not that. */
  const dataOf = (res: http.ServerResponse, text: string): Record<string, unknown> | undefined => {
    let parsed: unknown;
    try {
      parsed = JSON.parse(text);
    } catch {
      reply(res, 400, errorBody(400, 'Invalid request', 'the body is not valid JSON'));
      return undefined;
    }
    const data = asObject(asObject(parsed)?.['data']);
    if (!data) reply(res, 400, errorBody(400, 'Invalid request', 'data is required'));
    return data;
  };

  /** Accepted sends answer, or, under dropAfterAccept, vanish with the socket. */
  const answerSend = (req: http.IncomingMessage, res: http.ServerResponse, body: unknown): void => {
    if (dropRemaining > 0) {
      dropRemaining--;
      counter.count('paubox.dropped');
      req.socket.destroy();
      return;
    }
    reply(res, 200, body);
  };

  const postMessage = (req: http.IncomingMessage, res: http.ServerResponse, text: string): void => {
    const data = dataOf(res, text);
    if (!data) return;
    const { message, ...options } = data;
    let decoded: DecodedMessage;
    try {
      decoded = validateMessage(message, verifiedDomains);
    } catch (err) {
      if (!(err instanceof PauboxRejection)) throw err;
      return reply(res, err.status, { errors: [err.item()] });
    }
    answerSend(req, res, sendResult(accept(message, decoded, 'messages', options)));
  };

  const postBulk = (req: http.IncomingMessage, res: http.ServerResponse, text: string): void => {
    const data = dataOf(res, text);
    if (!data) return;
    const { messages, ...options } = data;
    if (!Array.isArray(messages) || messages.length === 0) {
      return reply(res, 400, errorBody(400, 'Invalid request', 'data.messages must contain at least one message'));
    }
    // Validate every message before accepting any: one bad message fails the whole request.
    const decoded: DecodedMessage[] = [];
    for (const [i, m] of messages.entries()) {
      try {
        decoded.push(validateMessage(m, verifiedDomains));
      } catch (err) {
        if (!(err instanceof PauboxRejection)) throw err;
        return reply(res, 400, errorBody(400, err.title, `message ${i + 1}: ${err.details}`));
      }
    }
    counter.count('paubox.bulk_message_items', messages.length);
    const entries = decoded.map((d, i) => accept(messages[i], d, 'bulk_messages', options));
    answerSend(req, res, { messages: entries.map(sendResult) });
  };

  const getReceipt = (res: http.ServerResponse, url: URL): void => {
    const id = url.searchParams.get('sourceTrackingId');
    if (!id) return reply(res, 400, errorBody(400, 'Invalid request', 'sourceTrackingId is required'));
    const e = byId.get(id);
    const tooFresh = e !== undefined && clock.now() - e.receivedAt < receipt404Ms;
    const receipt = tooFresh ? undefined : receiptOf(id);
    if (!receipt) return reply(res, 404, errorBody(404, 'Message was not found', 'no message with this sourceTrackingId'));
    reply(res, 200, receipt);
  };

  /** Faults and auth, in the order a real front end applies them; true when answered. */
  const refused = (req: http.IncomingMessage, res: http.ServerResponse, endpoint: PauboxEndpoint, prefix: string | undefined): boolean => {
    if (outageStatus !== null) {
      reply(res, outageStatus, faultBody(outageStatus));
      return true;
    }
    if (fail.remaining > 0 && (fail.endpoint === undefined || fail.endpoint === endpoint)) {
      fail.remaining--;
      reply(res, fail.status, faultBody(fail.status));
      return true;
    }
    const usernameOk = opts.apiUsername === undefined || prefix === undefined || prefix === 'email' || prefix === opts.apiUsername;
    if (bearerKey(req.headers.authorization) !== apiKey || !usernameOk) {
      reply(res, 401, errorBody(401, 'Unauthorized', 'the API key is not valid for this endpoint'));
      return true;
    }
    return false;
  };

  const handle = async (req: http.IncomingMessage, res: http.ServerResponse): Promise<void> => {
    const url = new URL(req.url ?? '/', 'http://sandbox');
    const r = route(url.pathname);
    const method = r?.endpoint === 'message_receipt' ? 'GET' : 'POST';
    if (!r || req.method !== method) {
      await readBody(req).catch(() => '');
      return reply(res, 404, errorBody(404, 'Not Found', 'no such endpoint'));
    }
    counter.count(`paubox.${r.endpoint}`);
    const text = await readBody(req);
    if (stalled) {
      counter.count('paubox.stalled');
      await new Promise<void>((resolve) => held.push(resolve));
      if (req.socket.destroyed) return;
    }
    if (latencyMs > 0) await new Promise((resolve) => setTimeout(resolve, latencyMs));
    if (req.socket.destroyed || refused(req, res, r.endpoint, r.prefix)) return;
    if (r.endpoint === 'messages') postMessage(req, res, text);
    else if (r.endpoint === 'bulk_messages') postBulk(req, res, text);
    else getReceipt(res, url);
  };

  const server = http.createServer((req, res) => {
    handle(req, res).catch((err: unknown) => {
      if (res.headersSent || req.socket.destroyed) return;
      if (err instanceof TooLarge) reply(res, 413, errorBody(413, 'Payload Too Large', 'the request body is too large'));
      else reply(res, 500, faultBody(500));
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port ?? 0, '127.0.0.1', () => resolve());
  });
  const origin = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;

  const release = (): void => {
    const waiting = held;
    held = [];
    for (const resolve of waiting) resolve();
  };

  const control: PauboxControl = {
    setLatency: (ms) => { latencyMs = Math.max(0, ms); },
    failNext: (n, status, endpoint) => { fail = { remaining: Math.max(0, Math.floor(n)), status, endpoint }; },
    outage: (status) => { outageStatus = status; },
    dropAfterAccept: (n) => { dropRemaining = Math.max(0, Math.floor(n)); },
    stall: (on) => {
      stalled = on;
      if (!on) release();
    },
    receipt404For: (ms) => { receipt404Ms = Math.max(0, ms); },
  };

  return {
    url: `${origin}/v1/email`,
    v1Url: `${origin}/v1`,
    legacyUrl: (username) => `${origin}/v1/${encodeURIComponent(username)}`,
    apiKey,
    verifiedDomains,
    clock,
    counter,
    control,
    accepted: () => [...log],
    byTrackingId: (id) => byId.get(id),
    receipt: receiptOf,
    close: () =>
      new Promise<void>((resolve) => {
        stalled = false;
        server.close(() => resolve());
        server.closeAllConnections();
        release();
      }),
  };
}
