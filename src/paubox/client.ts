import type http from 'node:http';
import type https from 'node:https';
import fetch, { type Response } from 'node-fetch';
import { agentFor, checkServiceUrl } from '../net/tls.js';
import { describeErrorBody, hasErrors, PauboxError, scrubDetail } from './errors.js';
import type { PauboxAccepted, PauboxMessage } from './types.js';

/**
 * The Paubox Email API client (reference/paubox.md, contract §5): `POST <base>/messages`,
 * `POST <base>/bulk_messages`, `GET <base>/message_receipt?sourceTrackingId=<id>`.
 *
 * It never retries: whether a failure may be retried depends on whether the request left
 * (see PauboxError), and that decision belongs to the pipeline, which records the attempt.
 */

export const BULK_MAX = 50;
const DEFAULT_TIMEOUT_MS = 30_000;

export interface PauboxClientOptions {
  /** PAUBOX_BASE_URL: everything before `/messages` */
  baseUrl: string;
  apiKey: string;
  timeoutMs?: number;
  agent?: http.Agent | https.Agent;
  /** for Retry-After dates; Date.now by default */
  now?: () => number;
}

export type BulkItemResult = ({ ok: true } & PauboxAccepted) | { ok: false; error: PauboxError };
export type ReceiptResult = { notFound: true } | { notFound: false; receipt: unknown };

export interface PauboxClient {
  send(message: PauboxMessage): Promise<PauboxAccepted>;
  /** ≤ 50 messages (the caller batches); one result per message, in order. */
  sendBulk(messages: readonly PauboxMessage[]): Promise<BulkItemResult[]>;
  receipt(trackingId: string): Promise<ReceiptResult>;
}

interface Reply {
  status: number;
  body: unknown;
  retryAfterMs?: number;
}

type Json = Record<string, unknown>;
const isObject = (v: unknown): v is Json => typeof v === 'object' && v !== null && !Array.isArray(v);

export function createPauboxClient(opts: PauboxClientOptions): PauboxClient {
  const base = checkServiceUrl(opts.baseUrl, 'PAUBOX_BASE_URL').href.replace(/\/+$/, '');
  const agent = opts.agent ?? agentFor(base);
  const timeoutMs = opts.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  const now = opts.now ?? Date.now;
  const headers = {
    Authorization: `Token token=${opts.apiKey}`,
    'Content-Type': 'application/json',
    Accept: 'application/json',
  };

  async function call(method: 'GET' | 'POST', path: string, what: string, payload?: unknown): Promise<Reply> {
    const controller = new AbortController();
    const timer = setTimeout(() => controller.abort(), timeoutMs);
    try {
      const res = await fetch(`${base}${path}`, {
        method,
        headers,
        agent,
        signal: controller.signal,
        ...(payload === undefined ? {} : { body: JSON.stringify(payload) }),
      });
      const body = await readBody(res);
      const retryAfterMs = parseRetryAfter(res.headers.get('retry-after'), now());
      return { status: res.status, body, ...(retryAfterMs === undefined ? {} : { retryAfterMs }) };
    } catch (error) {
      throw transportError(error, what, timeoutMs);
    } finally {
      clearTimeout(timer);
    }
  }

  return {
    async send(message) {
      const reply = await call('POST', '/messages', 'send', { data: { message } });
      if (reply.status < 200 || reply.status >= 300) throw httpError(reply, 'send');
      return accepted(reply.body, reply.status, 'send');
    },

    async sendBulk(messages) {
      if (messages.length === 0) return [];
      if (messages.length > BULK_MAX) throw new RangeError(`sendBulk takes at most ${BULK_MAX} messages`);
      const reply = await call('POST', '/bulk_messages', 'bulk send', { data: { messages } });
      if (reply.status < 200 || reply.status >= 300) throw httpError(reply, 'bulk send');
      return bulkResults(reply, messages.length);
    },

    async receipt(trackingId) {
      const path = `/message_receipt?sourceTrackingId=${encodeURIComponent(trackingId)}`;
      const reply = await call('GET', path, 'receipt');
      if (reply.status === 404) return { notFound: true };
      if (reply.status < 200 || reply.status >= 300) throw httpError(reply, 'receipt');
      if (!isObject(reply.body)) {
        throw new PauboxError('unavailable', `Paubox receipt answer was not JSON (HTTP ${reply.status})`, { status: reply.status });
      }
      if (hasErrors(reply.body) && !hasReceipt(reply.body)) {
        if (/not (been )?found/i.test(describeErrorBody(reply.body))) return { notFound: true };
        throw rejected(reply, 'receipt');
      }
      return { notFound: false, receipt: reply.body };
    },
  };
}

/** The body as JSON, as text, or null — a body that breaks off mid-way is as good as none. */
async function readBody(res: Response): Promise<unknown> {
  let text: string;
  try {
    text = await res.text();
  } catch {
    return null;
  }
  if (text.trim() === '') return null;
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return text; // an HTML error page from a proxy, say: never echoed
  }
}

/** A 2xx send answer: a tracking id means accepted; errors mean refused; else unknown. */
function accepted(body: unknown, status: number, what: string): PauboxAccepted {
  const item = isObject(body) && typeof body.sourceTrackingId !== 'string' && isObject(body.data) ? body.data : body;
  if (isObject(item) && typeof item.sourceTrackingId === 'string' && item.sourceTrackingId !== '') {
    return withHeaders({ trackingId: item.sourceTrackingId }, item.customHeaders);
  }
  if (hasErrors(body)) throw rejected({ status, body }, what);
  throw new PauboxError('unknown', `Paubox answered the ${what} with HTTP ${status} but no tracking id; the message may have been sent`, { status });
}

function bulkResults(reply: Reply, expected: number): BulkItemResult[] {
  const body = reply.body;
  const list = isObject(body) ? (body.messages ?? (isObject(body.data) ? body.data.messages : undefined)) : undefined;
  if (!Array.isArray(list)) {
    if (hasErrors(body)) throw rejected(reply, 'bulk send');
    throw new PauboxError('unknown', `Paubox answered the bulk send with HTTP ${reply.status} but no results; the messages may have been sent`, { status: reply.status });
  }
  if (list.length !== expected) {
    throw new PauboxError('unknown', `Paubox answered the bulk send with ${list.length} results for ${expected} messages; outcome unknown`, { status: reply.status });
  }
  return list.map((item): BulkItemResult => {
    try {
      return { ok: true, ...accepted(item, reply.status, 'bulk send') };
    } catch (error) {
      return { ok: false, error: error as PauboxError };
    }
  });
}

function withHeaders(result: PauboxAccepted, customHeaders: unknown): PauboxAccepted {
  return isObject(customHeaders) ? { ...result, customHeaders } : result;
}

function hasReceipt(body: Json): boolean {
  const data = body.data;
  return isObject(body.message) || (isObject(data) && (isObject(data.message) || isObject(data.data)));
}

// ---------------------------------------------------------------------------------------
// Errors

function httpError(reply: Reply, what: string): PauboxError {
  const { status } = reply;
  const extra = { status, ...(reply.retryAfterMs === undefined ? {} : { retryAfterMs: reply.retryAfterMs }) };
  const detail = describeErrorBody(reply.body);
  const suffix = detail ? `: ${detail}` : '';
  if (status === 429) return new PauboxError('throttled', `Paubox rate-limited the ${what} (HTTP 429)${suffix}`, extra);
  if (status >= 500) return new PauboxError('unavailable', `Paubox could not take the ${what} (HTTP ${status})${suffix}`, extra);
  if (status >= 400) return rejected(reply, what);
  // 1xx/3xx: node-fetch follows redirects, so this is an unexpected answer; nothing sent.
  return new PauboxError('unavailable', `Paubox answered the ${what} with unexpected HTTP ${status}`, extra);
}

function rejected(reply: Pick<Reply, 'status' | 'body'>, what: string): PauboxError {
  const detail = describeErrorBody(reply.body);
  const hint = reply.status === 401 || reply.status === 403 ? ' (check PAUBOX_API_KEY and PAUBOX_BASE_URL)' : '';
  return new PauboxError('rejected', `Paubox rejected the ${what} (HTTP ${reply.status})${hint}${detail ? `: ${detail}` : ''}`, {
    status: reply.status,
  });
}

/** Failures that happen before a byte of the request can have reached Paubox. */
const NOT_SENT_CODES = new Set(['ECONNREFUSED', 'ENOTFOUND', 'EAI_AGAIN', 'EHOSTUNREACH', 'ENETUNREACH', 'EADDRNOTAVAIL', 'EPROTO']);
const TLS_CODE = /^(ERR_TLS_|ERR_SSL_|CERT_|DEPTH_ZERO_SELF_SIGNED_CERT$|SELF_SIGNED_CERT|UNABLE_TO_|HOSTNAME_MISMATCH$|EPROTO$)/;

/** Maps a node-fetch rejection; the original message (it holds the URL) is not kept. */
function transportError(error: unknown, what: string, timeoutMs: number): PauboxError {
  if (error instanceof PauboxError) return error;
  const e = error as { name?: string; code?: unknown; errno?: unknown; type?: string };
  if (e?.name === 'AbortError') {
    return new PauboxError('unknown', `Paubox did not answer the ${what} within ${timeoutMs} ms${maybeSent(what)}`, { code: 'ETIMEDOUT' });
  }
  const code = typeof e?.code === 'string' ? e.code : typeof e?.errno === 'string' ? e.errno : '';
  if (TLS_CODE.test(code)) {
    return new PauboxError('not-sent', `TLS connection to Paubox failed (${code}): the server must offer TLS 1.2 or newer with a trusted certificate; nothing was sent`, { code });
  }
  if (NOT_SENT_CODES.has(code)) {
    return new PauboxError('not-sent', `Could not connect to Paubox (${code}); nothing was sent`, { code });
  }
  const label = code || scrubDetail(e?.type ?? 'network error', 40);
  return new PauboxError('unknown', `Connection to Paubox broke during the ${what} (${label})${maybeSent(what)}`, code ? { code } : {});
}

function maybeSent(what: string): string {
  return what === 'receipt' ? '' : '; the message may have been sent';
}

/** Retry-After as seconds or an HTTP date; undefined when absent or unreadable. */
export function parseRetryAfter(value: string | null, now: number): number | undefined {
  if (!value) return undefined;
  const trimmed = value.trim();
  if (/^\d+(\.\d+)?$/.test(trimmed)) return Math.round(Number(trimmed) * 1000);
  const at = Date.parse(trimmed);
  return Number.isFinite(at) ? Math.max(0, at - now) : undefined;
}
