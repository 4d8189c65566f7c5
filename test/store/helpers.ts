import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { Keyring } from '../../src/crypto/envelope.js';

/**
 * A KMS stand-in for unit tests: wraps data keys with AES-GCM under its own master key,
 * the context as AAD, and refuses blobs of another instance like KMS does. It hands out
 * the plaintext keys it generated so tests can check that the envelope zeroes them.
 */
export class FakeKeyring implements Keyring {
  private static next = 0;
  readonly id = `fake-${FakeKeyring.next++}`;
  readonly keyArn = `arn:aws:kms:us-east-1:111122223333:key/${this.id}`;
  private readonly master = randomBytes(32);
  readonly issued: Uint8Array[] = [];
  calls = { generate: 0, unwrap: 0 };
  private failures: string[] = [];

  /** The next calls fail with these KMS error names, in order. */
  failNext(...names: string[]): void {
    this.failures.push(...names);
  }

  private maybeFail(): void {
    const name = this.failures.shift();
    if (name) throw Object.assign(new Error(`fake ${name}`), { name });
  }

  async generateDataKey(context: Record<string, string>) {
    this.calls.generate++;
    this.maybeFail();
    const plaintext = new Uint8Array(randomBytes(32));
    this.issued.push(plaintext);
    const iv = randomBytes(12);
    const c = createCipheriv('aes-256-gcm', this.master, iv);
    c.setAAD(Buffer.from(JSON.stringify(Object.entries(context).sort())));
    const body = Buffer.concat([c.update(plaintext), c.final(), c.getAuthTag()]);
    const wrapped = Buffer.concat([Buffer.from(this.id.padEnd(16)), iv, body]);
    return { plaintext, wrapped: new Uint8Array(wrapped), keyArn: this.keyArn };
  }

  async unwrap(wrapped: Uint8Array, context: Record<string, string>) {
    this.calls.unwrap++;
    this.maybeFail();
    const buf = Buffer.from(wrapped);
    if (buf.subarray(0, 16).toString().trim() !== this.id) {
      throw Object.assign(new Error('fake'), { name: 'IncorrectKeyException' });
    }
    const d = createDecipheriv('aes-256-gcm', this.master, buf.subarray(16, 28));
    d.setAAD(Buffer.from(JSON.stringify(Object.entries(context).sort())));
    d.setAuthTag(buf.subarray(buf.length - 16));
    try {
      return new Uint8Array(Buffer.concat([d.update(buf.subarray(28, buf.length - 16)), d.final()]));
    } catch {
      throw Object.assign(new Error('fake'), { name: 'InvalidCiphertextException' });
    }
  }
}

export function tempDir(prefix = 'sdt-store-'): { dir: string; cleanup: () => void } {
  const dir = mkdtempSync(path.join(os.tmpdir(), prefix));
  return { dir, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

/** Every file under `dir`, recursively, with its bytes. */
export function filesUnder(dir: string): { file: string; bytes: Buffer }[] {
  const out: { file: string; bytes: Buffer }[] = [];
  for (const name of readdirSync(dir)) {
    const file = path.join(dir, name);
    if (statSync(file).isDirectory()) out.push(...filesUnder(file));
    else out.push({ file, bytes: readFileSync(file) });
  }
  return out;
}

export const isZero = (b: Uint8Array): boolean => b.every((x) => x === 0);

export async function caught(p: Promise<unknown>): Promise<Error> {
  try {
    await p;
  } catch (err) {
    return err as Error;
  }
  throw new Error('expected a rejection');
}
