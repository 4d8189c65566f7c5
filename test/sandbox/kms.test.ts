import {
  DecryptCommand,
  DescribeKeyCommand,
  EncryptCommand,
  GenerateDataKeyCommand,
  KMSClient,
} from '@aws-sdk/client-kms';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { startKms, type KmsSandbox } from '../../src/sandbox/kms.js';

let kms: KmsSandbox;
let client: KMSClient;

const context = { purpose: 'spool', recordId: 'a0B000000000001AAA', v: '1' };

/** The error's `name` as the SDK surfaces it, or 'resolved' when the call succeeded. */
async function errorName(p: Promise<unknown>): Promise<string> {
  try {
    await p;
    return 'resolved';
  } catch (err) {
    return (err as Error).name;
  }
}

beforeAll(async () => {
  kms = await startKms();
  client = new KMSClient({
    endpoint: kms.url,
    region: 'us-east-1',
    credentials: { accessKeyId: 'AKIDSANDBOX', secretAccessKey: 'sandbox-secret' },
  });
});

afterAll(async () => {
  client.destroy();
  await kms.close();
});

beforeEach(() => {
  kms.control.throttle(0);
  kms.control.outage(false);
  kms.counter.reset();
});

async function dataKey(keyId: string = kms.alias) {
  const out = await client.send(new GenerateDataKeyCommand({ KeyId: keyId, KeySpec: 'AES_256', EncryptionContext: context }));
  return { plaintext: out.Plaintext!, blob: out.CiphertextBlob!, keyId: out.KeyId };
}

describe('sandbox KMS through @aws-sdk/client-kms', () => {
  it('GenerateDataKey then Decrypt gives back the same 32-byte key, without naming the key', async () => {
    const dk = await dataKey();
    expect(dk.plaintext).toHaveLength(32);
    expect(dk.keyId).toBe(kms.keyArn);
    const out = await client.send(new DecryptCommand({ CiphertextBlob: dk.blob, EncryptionContext: context }));
    expect(Buffer.from(out.Plaintext!).equals(Buffer.from(dk.plaintext))).toBe(true);
    expect(out.KeyId).toBe(kms.keyArn);
    expect(kms.counter.get('kms.GenerateDataKey')).toBe(1);
    expect(kms.counter.get('kms.Decrypt')).toBe(1);
  });

  it('addresses the default key by id, ARN, alias and alias ARN', async () => {
    const aliasArn = `arn:aws:kms:us-east-1:111122223333:${kms.alias}`;
    for (const ref of [kms.keyId, kms.keyArn, kms.alias, aliasArn]) {
      const out = await client.send(new DescribeKeyCommand({ KeyId: ref }));
      expect(out.KeyMetadata?.Arn).toBe(kms.keyArn);
    }
  });

  it('refuses a blob under another encryption context, or tampered, as InvalidCiphertextException', async () => {
    const dk = await dataKey();
    const otherContext = { ...context, recordId: 'a0B000000000002AAA' };
    expect(await errorName(client.send(new DecryptCommand({ CiphertextBlob: dk.blob, EncryptionContext: otherContext }))))
      .toBe('InvalidCiphertextException');
    expect(await errorName(client.send(new DecryptCommand({ CiphertextBlob: dk.blob }))))
      .toBe('InvalidCiphertextException');
    const tampered = Uint8Array.from(dk.blob);
    tampered[tampered.length - 1]! ^= 1;
    expect(await errorName(client.send(new DecryptCommand({ CiphertextBlob: tampered, EncryptionContext: context }))))
      .toBe('InvalidCiphertextException');
  });

  it('answers NotFoundException for an unknown alias and IncorrectKeyException for the wrong KeyId', async () => {
    expect(await errorName(dataKey('alias/no-such-key'))).toBe('NotFoundException');
    const dk = await dataKey();
    const other = kms.control.createKey('alias/other');
    expect(await errorName(client.send(new DecryptCommand({ CiphertextBlob: dk.blob, EncryptionContext: context, KeyId: other }))))
      .toBe('IncorrectKeyException');
  });

  it('round-trips Encrypt and Decrypt', async () => {
    const secret = Buffer.from('not PHI, just bytes');
    const enc = await client.send(new EncryptCommand({ KeyId: kms.keyId, Plaintext: secret, EncryptionContext: context }));
    const dec = await client.send(new DecryptCommand({ CiphertextBlob: enc.CiphertextBlob!, EncryptionContext: context, KeyId: kms.alias }));
    expect(Buffer.from(dec.Plaintext!).toString()).toBe('not PHI, just bytes');
  });

  it('lets the SDK retry throttling (3 attempts) and counts every throttled call', async () => {
    kms.control.throttle(2);
    const dk = await dataKey();
    expect(dk.plaintext).toHaveLength(32);
    expect(kms.counter.get('kms.throttled')).toBe(2);
    expect(kms.counter.get('kms.GenerateDataKey')).toBe(3);
  });

  it('surfaces ThrottlingException once throttles outlast the attempts', async () => {
    kms.control.throttle(5);
    expect(await errorName(dataKey())).toBe('ThrottlingException');
    expect(kms.counter.get('kms.throttled')).toBe(3);
  });

  it('answers DisabledException while the key is disabled, and works again once enabled', async () => {
    const dk = await dataKey();
    kms.control.disableKey(kms.alias);
    try {
      expect(await errorName(dataKey())).toBe('DisabledException');
      expect(await errorName(client.send(new DecryptCommand({ CiphertextBlob: dk.blob, EncryptionContext: context }))))
        .toBe('DisabledException');
    } finally {
      kms.control.enableKey(kms.keyId);
    }
    expect((await dataKey()).plaintext).toHaveLength(32);
  });

  it('answers KMSInternalException during an outage, after the SDK retried', async () => {
    kms.control.outage(true);
    expect(await errorName(dataKey())).toBe('KMSInternalException');
    expect(kms.counter.get('kms.GenerateDataKey')).toBe(3);
  });

  it('refuses a request without X-Amz-Target', async () => {
    const res = await fetch(kms.url, { method: 'POST', body: '{}', headers: { 'content-type': 'application/x-amz-json-1.1' } });
    expect(res.status).toBe(400);
    expect(((await res.json()) as { __type: string }).__type).toBe('UnknownOperationException');
  });
});
