/**
 * The spool: PHI that must sit on disk for a while (message content, attachment bytes,
 * receipts), sealed by the envelope layer before it reaches the store. Entries belong to
 * one record and one purpose; `shred` deletes a record's entries when it reaches a final
 * state, and `purgeOlderThan` bounds how long anything forgotten can stay.
 *
 * Large attachments go through `putStream`/`getStream`: sealed in frames of at most
 * `frameBytes` (1 MiB), so memory stays bounded whatever the file size. Each frame's
 * purpose names its stream and position, and a sealed manifest holds the frame count and
 * length, so frames cannot be reordered, swapped between streams or truncated unnoticed.
 */
import { randomUUID } from 'node:crypto';
import { Readable } from 'node:stream';
import { DecryptError, type Envelope } from '../crypto/envelope.js';
import type { Store } from './store.js';

export const FRAME_BYTES = 1024 * 1024;

/** The entry is gone (shredded, purged, or the store was lost): fetch it again from Salesforce. */
export class SpoolMissError extends Error {
  override readonly name = 'SpoolMissError';
  constructor(readonly key: string) {
    super(`spool entry ${key} not found`);
  }
}

export interface SpoolOptions {
  frameBytes?: number;
  now?: () => number;
}

interface Manifest { frames: number; bytes: number }

const framePurpose = (purpose: string, key: string, i: number): string => `${purpose}#${key}#${i}`;
const manifestPurpose = (purpose: string): string => `${purpose}#stream`;
const frameKey = (key: string, i: number): string => `${key}#${i}`;

export class Spool {
  private readonly frameBytes: number;
  private readonly now: () => number;

  constructor(private readonly store: Store, private readonly envelope: Envelope, opts: SpoolOptions = {}) {
    this.frameBytes = Math.min(opts.frameBytes ?? FRAME_BYTES, FRAME_BYTES);
    this.now = opts.now ?? Date.now;
  }

  /** Seals and stores `data`; returns the entry's key (random, no PHI). */
  async put(recordId: string, purpose: string, data: Uint8Array | string): Promise<string> {
    const key = randomUUID();
    await this.putSealed(key, recordId, purpose, data, this.now());
    return key;
  }

  /** The plaintext of an entry; SpoolMissError if gone, DecryptError if not this record's or purpose's. */
  async get(key: string, recordId: string, purpose: string): Promise<Buffer> {
    const row = await this.store.spool.get(key);
    if (!row) throw new SpoolMissError(key);
    if (row.recordId !== recordId) throw new DecryptError('wrong record');
    if (row.purpose !== purpose) throw new DecryptError('wrong purpose');
    return this.envelope.open(recordId, purpose, row.ciphertext);
  }

  async delete(key: string): Promise<boolean> {
    return this.store.spool.delete(key);
  }

  /** Crypto-shredding: deletes every entry (and stream frame) of the record. */
  async shred(recordId: string): Promise<number> {
    return this.store.spool.deleteForRecord(recordId);
  }

  async purgeOlderThan(ageMs: number): Promise<number> {
    return this.store.spool.purgeOlderThan(ageMs, this.now());
  }

  /** Seals a byte stream in bounded frames; returns the key `getStream` takes. */
  async putStream(recordId: string, purpose: string, source: AsyncIterable<Uint8Array | string>): Promise<string> {
    const key = randomUUID();
    const createdAt = this.now();
    let frames = 0;
    let bytes = 0;
    const flush = async (frame: Buffer): Promise<void> => {
      await this.putSealed(frameKey(key, frames), recordId, framePurpose(purpose, key, frames), frame, createdAt);
      frames++;
      bytes += frame.length;
    };
    try {
      let pending: Buffer[] = [];
      let pendingBytes = 0;
      for await (const chunk of source) {
        pending.push(typeof chunk === 'string' ? Buffer.from(chunk, 'utf8') : Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength));
        pendingBytes += pending[pending.length - 1]!.length;
        while (pendingBytes >= this.frameBytes) {
          const all = Buffer.concat(pending, pendingBytes);
          await flush(all.subarray(0, this.frameBytes));
          const rest = Buffer.from(all.subarray(this.frameBytes));
          all.fill(0);
          pending = [rest];
          pendingBytes = rest.length;
        }
      }
      if (pendingBytes > 0 || frames === 0) {
        const last = Buffer.concat(pending, pendingBytes);
        await flush(last);
        last.fill(0);
      }
      await this.putSealed(key, recordId, manifestPurpose(purpose), JSON.stringify({ frames, bytes } satisfies Manifest), createdAt);
      return key;
    } catch (err) {
      for (let i = 0; i < frames; i++) await this.store.spool.delete(frameKey(key, i)).catch(() => false);
      throw err;
    }
  }

  /** Streams a `putStream` entry back, one frame in memory at a time. */
  getStream(key: string, recordId: string, purpose: string): Readable {
    const spool = this;
    return Readable.from((async function* frames() {
      const manifest = JSON.parse((await spool.get(key, recordId, manifestPurpose(purpose))).toString('utf8')) as Manifest;
      let bytes = 0;
      for (let i = 0; i < manifest.frames; i++) {
        const frame = await spool.get(frameKey(key, i), recordId, framePurpose(purpose, key, i));
        bytes += frame.length;
        yield frame;
      }
      if (bytes !== manifest.bytes) throw new DecryptError('tampered');
    })(), { objectMode: false });
  }

  private async putSealed(key: string, recordId: string, purpose: string, data: Uint8Array | string, createdAt: number): Promise<void> {
    const plaintext = typeof data === 'string' ? Buffer.from(data, 'utf8') : data;
    try {
      const sealed = await this.envelope.seal(recordId, purpose, plaintext);
      await this.store.spool.put(key, recordId, purpose, sealed, createdAt);
    } finally {
      if (typeof data === 'string') plaintext.fill(0); // our copy; the caller's bytes are theirs
    }
  }
}

export interface PurgeTimerOptions {
  everyMs?: number;
  onPurged?: (count: number) => void;
  onError?: (err: unknown) => void;
}

/**
 * Purges entries older than `maxAgeMs` now (start-up) and then every `everyMs` (hourly).
 * The interval is unref'd so it never keeps the process alive; call the result to stop it.
 */
export function startPurgeTimer(spool: Pick<Spool, 'purgeOlderThan'>, maxAgeMs: number, opts: PurgeTimerOptions = {}): () => void {
  const run = (): void => {
    spool.purgeOlderThan(maxAgeMs).then((n) => opts.onPurged?.(n), (err: unknown) => opts.onError?.(err));
  };
  run();
  const timer = setInterval(run, opts.everyMs ?? 3_600_000);
  timer.unref();
  return () => clearInterval(timer);
}
