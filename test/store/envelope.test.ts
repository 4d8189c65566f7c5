import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { DecryptError, Envelope, KeyUnavailableError, kmsKeyring } from '../../src/crypto/envelope.js';
import { startKms, type KmsSandbox } from '../../src/sandbox/kms.js';
import { Spool } from '../../src/store/spool.js';
import { openSqliteStore } from '../../src/store/store.js';
import { caught, FakeKeyring, isZero, tempDir } from './helpers.js';

const RECORD = 'a0B5f000001AbCdEAA';
const OTHER = 'a0B5f000001ZzZzZAA';
const text = (s: string) => new TextEncoder().encode(s);
const FAST_RETRY = { tries: 5, baseDelayMs: 5, maxDelayMs: 20 };

describe('Envelope with a stand-in keyring', () => {
  it('round-trips and leaves no plaintext in the sealed bytes', async () => {
    const env = new Envelope(new FakeKeyring());
    const body = 'Dear Ms. Alvarez, your biopsy results are ready.';
    const sealed = await env.seal(RECORD, 'body', text(body));
    expect(Buffer.from(sealed).includes(body)).toBe(false);
    expect((await env.open(RECORD, 'body', sealed)).toString('utf8')).toBe(body);
    env.close();
  });

  it('refuses tampering, another record, another purpose and another key, naming the check', async () => {
    const ring = new FakeKeyring();
    const env = new Envelope(ring);
    const sealed = await env.seal(RECORD, 'body', text('clinical note'));

    const flipped = Uint8Array.from(sealed);
    flipped[flipped.length - 20]! ^= 0x01;
    const t = await caught(env.open(RECORD, 'body', flipped));
    expect(t).toBeInstanceOf(DecryptError);
    expect(t.message).toMatch(/tampered/);

    expect((await caught(env.open(OTHER, 'body', sealed))).message).toMatch(/wrong record/);
    expect((await caught(env.open(RECORD, 'subject', sealed))).message).toMatch(/wrong purpose/);

    const stranger = new Envelope(new FakeKeyring());
    const k = await caught(stranger.open(RECORD, 'body', sealed));
    expect(k).toBeInstanceOf(DecryptError);
    expect(k.message).toMatch(/wrong key/);
    expect(k.message).not.toMatch(/clinical/);
    env.close();
    stranger.close();
  });

  it('refuses a header rewritten to claim another record (the header is authenticated)', async () => {
    const env = new Envelope(new FakeKeyring());
    const sealed = Buffer.from(await env.seal(RECORD, 'body', text('note')));
    const forged = Buffer.from(sealed.toString('latin1').replace(RECORD, OTHER), 'latin1');
    expect(forged.equals(sealed)).toBe(false);
    expect((await caught(env.open(OTHER, 'body', forged))).message).toMatch(/tampered/);
    expect((await caught(env.open(RECORD, 'body', Buffer.from('garbage')))).message).toMatch(/malformed/);
    env.close();
  });

  it('rotates the data key after maxUses or maxAgeMs and zeroes the retired key', async () => {
    const ring = new FakeKeyring();
    let now = 1_000_000;
    const env = new Envelope(ring, { maxUses: 3, maxAgeMs: 60_000, now: () => now });
    for (let i = 0; i < 3; i++) await env.seal(RECORD, 'body', text(`m${i}`));
    expect(ring.calls.generate).toBe(1);
    await env.seal(RECORD, 'body', text('m3'));
    expect(ring.calls.generate).toBe(2);
    expect(isZero(ring.issued[0]!)).toBe(true);
    now += 60_000;
    await env.seal(RECORD, 'body', text('m4'));
    expect(ring.calls.generate).toBe(3);
    expect(isZero(ring.issued[1]!)).toBe(true);
    env.close();
    expect(isZero(ring.issued[2]!)).toBe(true);
  });

  it('shares one GenerateDataKey among concurrent writers', async () => {
    const ring = new FakeKeyring();
    const env = new Envelope(ring, { maxUses: 1000 });
    await Promise.all(Array.from({ length: 500 }, (_, i) => env.seal(RECORD, 'body', text(`m${i}`))));
    expect(ring.calls.generate).toBe(1);
    env.close();
  });

  it('caches unwrapped keys for reading, zeroes them on close', async () => {
    const ring = new FakeKeyring();
    const writer = new Envelope(ring);
    const sealed = await Promise.all(Array.from({ length: 20 }, (_, i) => writer.seal(RECORD, 'body', text(`m${i}`))));
    writer.close();
    const reader = new Envelope(ring);
    const opened = await Promise.all(sealed.map((s) => reader.open(RECORD, 'body', s)));
    expect(opened.map((b) => b.toString())).toEqual(sealed.map((_, i) => `m${i}`));
    expect(ring.calls.unwrap).toBe(1);
    reader.close();
    await expect(reader.open(RECORD, 'body', sealed[0]!)).rejects.toThrow(/closed/);
  });

  it('never puts a record id or purpose that could be PHI into a header', async () => {
    const env = new Envelope(new FakeKeyring());
    await expect(env.seal('jane.doe@example.com', 'body', text('x'))).rejects.toThrow(TypeError);
    await expect(env.seal(RECORD, 'Biopsy results', text('x'))).rejects.toThrow(TypeError);
    expect(() => new Envelope(new FakeKeyring(), { context: { patient: 'Jane Doe' } })).toThrow(TypeError);
    env.close();
  });

  it('gives up after the bounded retries with KeyUnavailableError, and retries transient failures', async () => {
    const ring = new FakeKeyring();
    const env = new Envelope(ring, { retry: FAST_RETRY });
    ring.failNext('ThrottlingException', 'ThrottlingException');
    expect((await env.open(RECORD, 'body', await env.seal(RECORD, 'body', text('ok')))).toString()).toBe('ok');
    env.close();

    const down = new Envelope(ring, { retry: FAST_RETRY });
    ring.failNext(...Array(5).fill('ThrottlingException'));
    const err = await caught(down.seal(RECORD, 'body', text('x')));
    expect(err).toBeInstanceOf(KeyUnavailableError);
    expect(err.message).toBe('KMS key unavailable (ThrottlingException) after 5 tries');
    down.close();
  });
});

describe('Envelope against the sandbox KMS (the real SDK path)', () => {
  let kms: KmsSandbox;
  beforeAll(async () => { kms = await startKms(); });
  afterAll(async () => { await kms.close(); });
  beforeEach(() => kms.counter.reset());
  afterEach(() => { kms.control.throttle(0); kms.control.outage(false); kms.control.enableKey(kms.alias); });

  const envelope = (opts: ConstructorParameters<typeof Envelope>[1] = {}, keyId: string = kms.alias) =>
    new Envelope(kmsKeyring({ keyId, endpoint: kms.url, region: kms.region }), { retry: FAST_RETRY, ...opts });

  it('round-trips and refuses an entry wrapped by another KMS key', async () => {
    const env = envelope();
    const sealed = await env.seal(RECORD, 'attachment', text('MRI report'));
    expect((await envelope().open(RECORD, 'attachment', sealed)).toString()).toBe('MRI report');
    const other = envelope({}, kms.control.createKey());
    const err = await caught(other.open(RECORD, 'attachment', sealed));
    expect(err).toBeInstanceOf(DecryptError);
    expect(err.message).toMatch(/wrong key.*IncorrectKeyException/);
    env.close();
    other.close();
  });

  it('calls GenerateDataKey at most once per 1,000 writes over 10,000 spool writes', async () => {
    const { dir, cleanup } = tempDir();
    const store = await openSqliteStore(dir);
    const env = envelope();
    const spool = new Spool(store, env);
    try {
      for (let batch = 0; batch < 100; batch++) {
        await Promise.all(Array.from({ length: 100 }, (_, i) => spool.put(`a0B${batch}x${i}`, 'body', `message ${batch}/${i}`)));
      }
      expect(kms.counter.get('kms.GenerateDataKey')).toBeGreaterThanOrEqual(10);
      expect(kms.counter.get('kms.GenerateDataKey')).toBeLessThanOrEqual(12);
    } finally {
      env.close();
      await store.close();
      cleanup();
    }
  });

  it('throttling beyond the SDK retries ends in KeyUnavailableError, not plaintext', async () => {
    const env = envelope();
    kms.control.throttle(1000);
    const err = await caught(env.seal(RECORD, 'body', text('Subject: your HIV test')));
    expect(err).toBeInstanceOf(KeyUnavailableError);
    expect(err.message).toBe('KMS key unavailable (ThrottlingException) after 5 tries');
    // Each of our tries hid the SDK's own attempts.
    expect(kms.counter.get('kms.GenerateDataKey')).toBeGreaterThan(5);
    kms.control.throttle(0);
    expect(await env.seal(RECORD, 'body', text('later'))).toBeInstanceOf(Uint8Array);
    env.close();
  });

  it('an outage is transient; a disabled key is refused at once, for writes and reads', async () => {
    const writer = envelope();
    const sealed = await writer.seal(RECORD, 'body', text('x'));
    writer.close();
    kms.control.outage(true);
    expect((await caught(envelope().seal(RECORD, 'body', text('x')))).message).toBe('KMS key unavailable (KMSInternalException) after 5 tries');
    kms.control.outage(false);
    kms.control.disableKey(kms.alias);
    kms.counter.reset();
    expect((await caught(envelope().seal(RECORD, 'body', text('x')))).message).toBe('KMS key unavailable (DisabledException) after 1 try');
    const refused = await caught(envelope().open(RECORD, 'body', sealed));
    expect(refused).toBeInstanceOf(DecryptError);
    expect(refused.message).toMatch(/KMS refused.*DisabledException/);
  });
});
