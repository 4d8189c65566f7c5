import { Readable } from 'node:stream';
import { afterEach, describe, expect, it } from 'vitest';
import { DecryptError, Envelope } from '../../src/crypto/envelope.js';
import { Spool, SpoolMissError } from '../../src/store/spool.js';
import { openSqliteStore, type Store } from '../../src/store/store.js';
import { caught, FakeKeyring, tempDir } from './helpers.js';

const A = 'a0B5f000001AaAaAAA';
const B = 'a0B5f000001BbBbBAA';
const cleanups: (() => void | Promise<void>)[] = [];
afterEach(async () => { for (const c of cleanups.splice(0).reverse()) await c(); });

async function setup(opts: { frameBytes?: number; now?: () => number } = {}): Promise<{ spool: Spool; store: Store }> {
  const { dir, cleanup } = tempDir();
  const store = await openSqliteStore(dir);
  const envelope = new Envelope(new FakeKeyring());
  cleanups.push(cleanup, () => store.close(), () => envelope.close());
  return { spool: new Spool(store, envelope, opts), store };
}

const bytes = (n: number, seed: number) => Buffer.from(Array.from({ length: n }, (_, i) => (i * 31 + seed) & 0xff));

describe('Spool', () => {
  it('round-trips strings and bytes; refuses another record or purpose', async () => {
    const { spool } = await setup();
    const key = await spool.put(A, 'subject', 'Follow-up on your MRI');
    expect((await spool.get(key, A, 'subject')).toString()).toBe('Follow-up on your MRI');
    const bin = await spool.put(A, 'attachment', bytes(1000, 1));
    expect((await spool.get(bin, A, 'attachment')).equals(bytes(1000, 1))).toBe(true);
    expect(await caught(spool.get(key, B, 'subject'))).toBeInstanceOf(DecryptError);
    expect((await caught(spool.get(key, A, 'body'))).message).toMatch(/wrong purpose/);
  });

  it('refuses a blob copied into another record\'s row', async () => {
    const { spool, store } = await setup();
    const key = await spool.put(A, 'body', 'note for A');
    const row = (await store.spool.get(key))!;
    await store.spool.put('moved', B, 'body', row.ciphertext);
    expect((await caught(spool.get('moved', B, 'body'))).message).toMatch(/wrong record/);
  });

  it('shred deletes a record\'s entries and frames; a later read is a miss', async () => {
    const { spool } = await setup({ frameBytes: 100 });
    const k1 = await spool.put(A, 'body', 'x');
    const k2 = await spool.putStream(A, 'attachment', Readable.from([bytes(450, 2)]));
    const kb = await spool.put(B, 'body', 'y');
    expect(await spool.shred(A)).toBe(1 + 5 + 1); // entry, 5 frames, manifest
    expect(await caught(spool.get(k1, A, 'body'))).toBeInstanceOf(SpoolMissError);
    expect(await caught(spool.getStream(k2, A, 'attachment').toArray())).toBeInstanceOf(SpoolMissError);
    expect((await spool.get(kb, B, 'body')).toString()).toBe('y');
  });

  it('purgeOlderThan removes what is older than the given age, by the spool clock', async () => {
    let now = 10_000_000;
    const { spool } = await setup({ now: () => now });
    const old = await spool.put(A, 'body', 'old');
    now += 3_600_000;
    const young = await spool.put(A, 'body', 'young');
    now += 60_000;
    expect(await spool.purgeOlderThan(3_600_000)).toBe(1);
    expect(await caught(spool.get(old, A, 'body'))).toBeInstanceOf(SpoolMissError);
    expect((await spool.get(young, A, 'body')).toString()).toBe('young');
  });

  it('streams a large blob in bounded frames and back', async () => {
    const { spool, store } = await setup({ frameBytes: 64 * 1024 });
    const data = bytes(1_000_003, 3);
    const chunks = Array.from({ length: Math.ceil(data.length / 10_000) }, (_, i) => data.subarray(i * 10_000, (i + 1) * 10_000));
    const key = await spool.putStream(A, 'attachment', Readable.from(chunks));
    const frames = Math.ceil(data.length / (64 * 1024));
    for (let i = 0; i < frames; i++) {
      expect((await store.spool.get(`${key}#${i}`))!.ciphertext.length).toBeLessThan(64 * 1024 + 512);
    }
    const back = await spool.getStream(key, A, 'attachment').toArray();
    expect(back).toHaveLength(frames);
    expect(Buffer.concat(back).equals(data)).toBe(true);
    const empty = await spool.putStream(A, 'attachment', Readable.from([]));
    expect(Buffer.concat(await spool.getStream(empty, A, 'attachment').toArray())).toHaveLength(0);
  });

  it('detects frames swapped between streams, reordered or cut off', async () => {
    const { spool, store } = await setup({ frameBytes: 100 });
    const s1 = await spool.putStream(A, 'attachment', Readable.from([bytes(300, 4)]));
    const s2 = await spool.putStream(A, 'attachment', Readable.from([bytes(300, 5)]));
    const row = async (k: string) => (await store.spool.get(k))!;

    const f0 = await row(`${s2}#0`);
    await store.spool.put(`${s1}#0`, A, f0.purpose, f0.ciphertext);
    expect(await caught(spool.getStream(s1, A, 'attachment').toArray())).toBeInstanceOf(DecryptError);

    const f1 = await row(`${s2}#1`);
    await store.spool.put(`${s2}#0`, A, f1.purpose.replace(/#1$/, '#0'), f1.ciphertext);
    expect((await caught(spool.getStream(s2, A, 'attachment').toArray())).message).toMatch(/wrong purpose/);

    const s3 = await spool.putStream(A, 'attachment', Readable.from([bytes(300, 6)]));
    await store.spool.delete(`${s3}#2`);
    expect(await caught(spool.getStream(s3, A, 'attachment').toArray())).toBeInstanceOf(SpoolMissError);
  });
});
