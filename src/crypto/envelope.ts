// Why a thin layer on @aws-sdk/client-kms and not the AWS Encryption SDK: our entries are
// small, written and read only by this service, and the few properties we need (AES-256-GCM,
// a fresh IV, a KMS-wrapped data key, AAD binding record and purpose, bounded key caching)
// fit in ~300 readable lines; the Encryption SDK would add ~69 packages / 32 MB and signing
// we would switch off. Large attachments are framed by the spool (≤1 MiB frames) instead.
/**
 * Envelope encryption of spool entries under data keys wrapped by the customer's KMS key.
 *
 * How "an encryption context naming the record id and the purpose" is met: one data key
 * serves up to `maxUses` entries, so KMS's EncryptionContext cannot name each record.
 * The per-entry binding is the GCM AAD — the whole header: format version ‖ key ARN ‖
 * wrapped key ‖ KMS context ‖ record id ‖ purpose ‖ IV — and the record id and purpose are
 * also in the header in clear, so `open` can say which check failed. The KMS context is
 * key-scoped and non-PHI (`service`, `purpose-family`, plus whatever the caller adds, e.g.
 * a worker name); it is logged by CloudTrail and checked by KMS on every unwrap.
 */
import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import { classifyKmsError, DecryptError, KeyUnavailableError } from './errors.js';
import { assertToken, decodeSealed, encodeHeader, IV_BYTES, TAG_BYTES, type Header } from './format.js';
import { isFresh, UnwrappedKeyCache, zero, type CachedKey, type KeyBounds } from './key-cache.js';
import type { EncryptionContext, Keyring } from './keyring.js';

export { DecryptError, KeyUnavailableError, classifyKmsError, type DecryptCheck } from './errors.js';
export { kmsKeyring, createKmsClient, type Keyring, type KmsKeyringOptions, type DataKey, type EncryptionContext } from './keyring.js';

export interface RetryOptions {
  /** Calls to the keyring before giving up (each may hide the SDK's own retries). */
  tries?: number;
  baseDelayMs?: number;
  maxDelayMs?: number;
}

export interface EnvelopeOptions {
  /** Entries sealed under one data key before a new one is generated (default 1,000). */
  maxUses?: number;
  /** Age after which a cached data key is no longer used (default 5 minutes). */
  maxAgeMs?: number;
  /** Unwrapped keys kept for decryption (default 64). */
  maxCachedKeys?: number;
  /** Added to the KMS encryption context: non-PHI, key-scoped values only. */
  context?: EncryptionContext;
  retry?: RetryOptions;
  now?: () => number;
}

export const DEFAULT_CONTEXT: EncryptionContext = { service: 'secure-data-transports', 'purpose-family': 'sdt-spool' };

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

export class Envelope {
  private readonly bounds: KeyBounds;
  private readonly context: EncryptionContext;
  private readonly retry: Required<RetryOptions>;
  private readonly now: () => number;
  private readonly unwrapped: UnwrappedKeyCache;
  private readonly unwrapping = new Map<string, Promise<void>>();
  private sealing: CachedKey | undefined;
  private generating: Promise<void> | undefined;
  private closed = false;

  constructor(private readonly keyring: Keyring, opts: EnvelopeOptions = {}) {
    this.bounds = { maxUses: opts.maxUses ?? 1000, maxAgeMs: opts.maxAgeMs ?? 5 * 60_000 };
    this.context = { ...DEFAULT_CONTEXT, ...opts.context };
    for (const [k, v] of Object.entries(this.context)) {
      assertToken('KMS context key', k);
      assertToken('KMS context value', v);
    }
    this.retry = { tries: 5, baseDelayMs: 600, maxDelayMs: 5000, ...opts.retry };
    this.now = opts.now ?? Date.now;
    this.unwrapped = new UnwrappedKeyCache(this.bounds, opts.maxCachedKeys ?? 64);
  }

  /** Encrypts `plaintext` for one record and purpose; throws KeyUnavailableError if KMS is. */
  async seal(recordId: string, purpose: string, plaintext: Uint8Array): Promise<Uint8Array> {
    assertToken('record id', recordId);
    assertToken('purpose', purpose);
    return this.withSealingKey((key) => {
      const iv = randomBytes(IV_BYTES);
      const header = encodeHeader({ keyArn: key.keyArn, wrapped: Buffer.from(key.wrapped), context: this.context, recordId, purpose, iv });
      const cipher = createCipheriv('aes-256-gcm', key.plaintext, iv, { authTagLength: TAG_BYTES });
      cipher.setAAD(header);
      return Buffer.concat([header, cipher.update(plaintext), cipher.final(), cipher.getAuthTag()]);
    });
  }

  /**
   * Decrypts an entry sealed for this record and purpose, or throws DecryptError naming the
   * check that failed. KMS throttled or down past the retries: KeyUnavailableError (retry later).
   */
  async open(recordId: string, purpose: string, sealed: Uint8Array): Promise<Buffer> {
    const { header, aad, ciphertext, tag } = decodeSealed(sealed);
    if (header.recordId !== recordId) throw new DecryptError('wrong record');
    if (header.purpose !== purpose) throw new DecryptError('wrong purpose');
    return this.withOpeningKey(header, (key) => {
      const decipher = createDecipheriv('aes-256-gcm', key, header.iv, { authTagLength: TAG_BYTES });
      decipher.setAAD(aad);
      decipher.setAuthTag(tag);
      try {
        return Buffer.concat([decipher.update(ciphertext), decipher.final()]);
      } catch {
        throw new DecryptError('tampered');
      }
    });
  }

  /** Zeroes every cached plaintext key; the envelope refuses work afterwards. */
  close(): void {
    this.closed = true;
    if (this.sealing) zero(this.sealing);
    this.sealing = undefined;
    this.unwrapped.clear();
  }

  /**
   * Runs `use` synchronously with a fresh sealing key, so no other caller can retire (and
   * zero) the key between the freshness check and its use.
   */
  private async withSealingKey<T>(use: (key: CachedKey) => T): Promise<T> {
    for (;;) {
      this.assertOpen();
      const key = this.sealing;
      if (key && isFresh(key, this.bounds, this.now())) {
        key.uses++;
        return use(key);
      }
      if (key) {
        this.sealing = undefined;
        zero(key);
      }
      this.generating ??= this.generate().finally(() => { this.generating = undefined; });
      await this.generating;
    }
  }

  private async generate(): Promise<void> {
    const dk = await this.kms(() => this.keyring.generateDataKey(this.context), (f, tries) => new KeyUnavailableError(f.name, tries));
    if (this.closed) {
      dk.plaintext.fill(0);
      return;
    }
    this.sealing = { ...dk, createdAt: this.now(), uses: 0 };
  }

  private async withOpeningKey<T>(header: Header, use: (key: Uint8Array) => T): Promise<T> {
    const id = UnwrappedKeyCache.id(header.wrapped);
    for (;;) {
      this.assertOpen();
      // Reading back what we just wrote needs no KMS call: the sealing key is at hand.
      if (this.sealing && UnwrappedKeyCache.id(this.sealing.wrapped) === id) return use(this.sealing.plaintext);
      const cached = this.unwrapped.take(id, this.now());
      if (cached) return use(cached.plaintext);
      let pending = this.unwrapping.get(id);
      if (!pending) {
        pending = this.unwrap(id, header).finally(() => this.unwrapping.delete(id));
        this.unwrapping.set(id, pending);
      }
      await pending;
    }
  }

  private async unwrap(id: string, header: Header): Promise<void> {
    const plaintext = await this.kms(
      () => this.keyring.unwrap(header.wrapped, header.context),
      (f, tries) => f.kind === 'transient' ? new KeyUnavailableError(f.name, tries)
        : new DecryptError(f.kind === 'wrong key' ? 'wrong key' : 'KMS refused', f.name),
    );
    if (this.closed) {
      plaintext.fill(0);
      return;
    }
    this.unwrapped.add(id, { plaintext, wrapped: Buffer.from(header.wrapped), keyArn: header.keyArn, createdAt: this.now(), uses: 0 });
  }

  /** Calls KMS, retrying transient failures with bounded exponential backoff. */
  private async kms<T>(call: () => Promise<T>, fail: (f: ReturnType<typeof classifyKmsError>, tries: number) => Error): Promise<T> {
    for (let attempt = 1; ; attempt++) {
      this.assertOpen();
      try {
        return await call();
      } catch (err) {
        const failure = classifyKmsError(err);
        if (failure.kind !== 'transient' || attempt >= this.retry.tries) throw fail(failure, attempt);
        await sleep(this.backoff(attempt));
      }
    }
  }

  private backoff(attempt: number): number {
    const ceiling = Math.min(this.retry.maxDelayMs, this.retry.baseDelayMs * 2 ** (attempt - 1));
    return ceiling / 2 + Math.random() * (ceiling / 2);
  }

  private assertOpen(): void {
    if (this.closed) throw new Error('envelope is closed');
  }
}
