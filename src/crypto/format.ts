/**
 * The sealed-entry format, version 1. Everything before the ciphertext is the header; the
 * whole header (IV included) is the GCM additional authenticated data, so changing any of
 * it — the record id, the purpose, the key ARN, the wrapped key — fails authentication.
 *
 *   'S' 'D' 'T' 'E' | version (1) | keyArn | wrappedKey | kmsContext | recordId | purpose | iv (12)
 *   | ciphertext | tag (16)
 *
 * Variable fields are a big-endian u16 length then the bytes. The header holds no PHI:
 * record ids and purposes are checked against a strict alphabet before sealing.
 */
import { DecryptError } from './errors.js';
import type { EncryptionContext } from './keyring.js';

export const FORMAT_VERSION = 1;
const MAGIC = Buffer.from('SDTE', 'latin1');
export const IV_BYTES = 12;
export const TAG_BYTES = 16;

export interface Header {
  keyArn: string;
  wrapped: Buffer;
  context: EncryptionContext;
  recordId: string;
  purpose: string;
  iv: Buffer;
}

/** Ids, purposes and context values: no spaces, no '@', so never an address or a sentence. */
const TOKEN = /^[A-Za-z0-9_.:/#=+-]{1,200}$/;

export function assertToken(what: string, value: string): void {
  if (!TOKEN.test(value)) throw new TypeError(`${what} must match ${TOKEN.source}`);
}

/** Sorted entries, so the same context always serialises to the same bytes. */
export function canonicalContext(ctx: EncryptionContext): string {
  return JSON.stringify(Object.entries(ctx).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
}

function field(bytes: Buffer): Buffer[] {
  if (bytes.length > 0xffff) throw new RangeError('header field too long');
  const len = Buffer.alloc(2);
  len.writeUInt16BE(bytes.length);
  return [len, bytes];
}

export function encodeHeader(h: Header): Buffer {
  return Buffer.concat([
    MAGIC,
    Buffer.from([FORMAT_VERSION]),
    ...field(Buffer.from(h.keyArn, 'utf8')),
    ...field(h.wrapped),
    ...field(Buffer.from(canonicalContext(h.context), 'utf8')),
    ...field(Buffer.from(h.recordId, 'utf8')),
    ...field(Buffer.from(h.purpose, 'utf8')),
    h.iv,
  ]);
}

/** Splits a sealed entry into header (and its raw bytes, the AAD), ciphertext and tag. */
export function decodeSealed(sealed: Uint8Array): { header: Header; aad: Buffer; ciphertext: Buffer; tag: Buffer } {
  const buf = Buffer.from(sealed.buffer, sealed.byteOffset, sealed.byteLength);
  const malformed = (): never => { throw new DecryptError('malformed'); };
  if (buf.length < MAGIC.length + 1 || !buf.subarray(0, MAGIC.length).equals(MAGIC)) malformed();
  if (buf[MAGIC.length] !== FORMAT_VERSION) malformed();
  let at = MAGIC.length + 1;
  const next = (): Buffer => {
    if (at + 2 > buf.length) malformed();
    const len = buf.readUInt16BE(at);
    const start = at + 2;
    at = start + len;
    if (at > buf.length) malformed();
    return buf.subarray(start, at);
  };
  const keyArn = next().toString('utf8');
  const wrapped = next();
  const context = parseContext(next().toString('utf8')) ?? malformed();
  const recordId = next().toString('utf8');
  const purpose = next().toString('utf8');
  if (at + IV_BYTES + TAG_BYTES > buf.length) malformed();
  const iv = buf.subarray(at, (at += IV_BYTES));
  return {
    header: { keyArn, wrapped, context, recordId, purpose, iv },
    aad: buf.subarray(0, at),
    ciphertext: buf.subarray(at, buf.length - TAG_BYTES),
    tag: buf.subarray(buf.length - TAG_BYTES),
  };
}

function parseContext(text: string): EncryptionContext | undefined {
  try {
    const entries: unknown = JSON.parse(text);
    if (!Array.isArray(entries)) return undefined;
    const ctx: EncryptionContext = {};
    for (const e of entries) {
      if (!Array.isArray(e) || typeof e[0] !== 'string' || typeof e[1] !== 'string') return undefined;
      ctx[e[0]] = e[1];
    }
    return ctx;
  } catch {
    return undefined;
  }
}
