/**
 * What can go wrong talking to Paubox, in the terms the send pipeline decides on.
 *
 * - `rejected`: a 4xx other than 429 — permanent for this message (or this key).
 * - `throttled`: 429 — back off, then retry.
 * - `unavailable`: 5xx — Paubox did not accept; retry with backoff.
 * - `not-sent`: failed before the request left (refused, DNS, TLS handshake) — safe to retry.
 * - `unknown`: the request was written but no answer came (reset, timeout, unreadable
 *   success) — Paubox may have sent it; it has no idempotency key, so NEVER re-POST blindly.
 *
 * Messages never contain a request, a body, the Authorization header or an email address:
 * Paubox's own error text may echo an address, so it is scrubbed and cut short.
 */

export type PauboxErrorKind = 'rejected' | 'throttled' | 'unavailable' | 'not-sent' | 'unknown';

export class PauboxError extends Error {
  override readonly name = 'PauboxError';
  readonly kind: PauboxErrorKind;
  readonly status?: number;
  readonly retryAfterMs?: number;
  /** the system error code (ECONNREFUSED, EPROTO, …) when the failure was below HTTP */
  readonly code?: string;

  constructor(kind: PauboxErrorKind, message: string, extra: { status?: number; retryAfterMs?: number; code?: string } = {}) {
    super(message);
    this.kind = kind;
    if (extra.status !== undefined) this.status = extra.status;
    if (extra.retryAfterMs !== undefined) this.retryAfterMs = extra.retryAfterMs;
    if (extra.code !== undefined) this.code = extra.code;
  }

  /** True when retrying cannot send the message twice. */
  get retryable(): boolean {
    return this.kind === 'throttled' || this.kind === 'unavailable' || this.kind === 'not-sent';
  }
}

export function isPauboxError(e: unknown): e is PauboxError {
  return e instanceof PauboxError;
}

const DETAIL_MAX_CHARS = 160;
const ADDRESS = /[^\s<>"'(),;:[\]]+@[^\s<>"'(),;:[\]]+/g;

/**
 * Scrubs what may be PHI from Paubox's own error text: anything that looks like an email
 * address, and quoted values (Paubox may echo a subject or a whole message back), then
 * control characters and length.
 */
export function scrubDetail(text: string, max = DETAIL_MAX_CHARS): string {
  const clean = text
    .replace(ADDRESS, '[address]')
    .replace(/"(?:[^"\\]|\\.)*"/g, '"…"')
    .replace(/(^|[\s(:=[,])'[^']*'(?=$|[\s).,;:\]])/g, "$1'…'")
    .replace(/[\u0000-\u001f\u007f]+/g, ' ')
    .replace(/\s+/g, ' ')
    .trim();
  return clean.length <= max ? clean : `${clean.slice(0, max - 1)}…`;
}

type Json = Record<string, unknown>;
const isObject = (v: unknown): v is Json => typeof v === 'object' && v !== null && !Array.isArray(v);

/**
 * The error text of any body shape Paubox's sources show: `{errors: [{code, title,
 * details}]}`, `{errors: 'text'}`, `{message}`, `{error}`, possibly nested under `data`.
 * Returns '' when the body carries no error.
 */
export function describeErrorBody(body: unknown): string {
  if (!isObject(body)) return '';
  const parts: string[] = [];
  const errors = body.errors;
  if (typeof errors === 'string') parts.push(errors);
  else if (Array.isArray(errors)) parts.push(...errors.map(describeOneError).filter(Boolean));
  else if (isObject(errors)) parts.push(describeOneError(errors));
  if (parts.length === 0 && typeof body.error === 'string') parts.push(body.error);
  if (parts.length === 0 && isObject(body.error)) parts.push(describeOneError(body.error));
  if (parts.length === 0 && typeof body.message === 'string' && !hasTrackingId(body)) parts.push(body.message);
  if (parts.length === 0 && isObject(body.data)) return describeErrorBody(body.data);
  return scrubDetail(parts.filter(Boolean).join('; '));
}

/** True when the body says "error": a non-empty `errors` (or `error`), here or under `data`. */
export function hasErrors(body: unknown): boolean {
  if (!isObject(body)) return false;
  const e = body.errors;
  if ((Array.isArray(e) && e.length > 0) || (typeof e === 'string' && e !== '') || isObject(e)) return true;
  if ((typeof body.error === 'string' && body.error !== '') || isObject(body.error)) return true;
  return isObject(body.data) && hasErrors(body.data);
}

function describeOneError(e: unknown): string {
  if (typeof e === 'string') return e;
  if (!isObject(e)) return '';
  const title = typeof e.title === 'string' ? e.title : typeof e.message === 'string' ? e.message : '';
  const details = typeof e.details === 'string' ? e.details : typeof e.detail === 'string' ? e.detail : '';
  return [title, details].filter(Boolean).join(': ');
}

function hasTrackingId(body: Json): boolean {
  return typeof body.sourceTrackingId === 'string';
}
