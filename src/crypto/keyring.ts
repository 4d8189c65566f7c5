/**
 * Keyrings: where data keys come from. Production and sandbox take the same path, the AWS
 * SDK's KMS client; only the endpoint differs (`AWS_ENDPOINT_URL_KMS` points at the
 * sandbox KMS on loopback). There is deliberately no raw local keyring: nothing in this
 * service can encrypt without KMS, so a misconfiguration cannot silently weaken it.
 */
import https from 'node:https';
import { DecryptCommand, GenerateDataKeyCommand, KMSClient } from '@aws-sdk/client-kms';

export type EncryptionContext = Record<string, string>;

export interface DataKey {
  /** 32 bytes; the caller zeroes it when done. */
  plaintext: Uint8Array;
  /** The data key wrapped by the KMS key (KMS `CiphertextBlob`). */
  wrapped: Uint8Array;
  /** The ARN of the KMS key that wrapped it. */
  keyArn: string;
}

export interface Keyring {
  generateDataKey(context: EncryptionContext): Promise<DataKey>;
  /** Plaintext data key; throws the KMS error (its `name` says which) when refused. */
  unwrap(wrapped: Uint8Array, context: EncryptionContext): Promise<Uint8Array>;
}

export interface KmsKeyringOptions {
  /** Key id, key ARN, `alias/name` or alias ARN (`KMS_KEY_ID`). */
  keyId: string;
  client?: KMSClient;
  region?: string;
  /** Defaults to `AWS_ENDPOINT_URL_KMS`; plain http only for loopback. */
  endpoint?: string;
}

const LOOPBACK = new Set(['127.0.0.1', 'localhost', '[::1]', '::1']);

function isLoopback(url: URL): boolean {
  return LOOPBACK.has(url.hostname) || url.hostname.startsWith('127.');
}

/** A KMS client that refuses TLS below 1.2, even if NODE_OPTIONS lowered Node's default. */
export function createKmsClient(opts: { region?: string; endpoint?: string } = {}): KMSClient {
  const endpoint = opts.endpoint ?? (process.env.AWS_ENDPOINT_URL_KMS || undefined);
  const url = endpoint === undefined ? undefined : new URL(endpoint);
  if (url && url.protocol !== 'https:' && !isLoopback(url)) {
    throw new Error('AWS_ENDPOINT_URL_KMS: plain http is accepted only for loopback hosts');
  }
  // An emulator on loopback does not check signatures; give the SDK something to sign with
  // when no credentials are configured, rather than letting it hunt for instance metadata.
  const sandboxCredentials = url && isLoopback(url) && !process.env.AWS_ACCESS_KEY_ID
    ? { accessKeyId: 'sandbox', secretAccessKey: 'sandbox' }
    : undefined;
  return new KMSClient({
    region: opts.region ?? process.env.AWS_REGION ?? process.env.AWS_DEFAULT_REGION ?? 'us-east-1',
    ...(endpoint ? { endpoint } : {}),
    ...(sandboxCredentials ? { credentials: sandboxCredentials } : {}),
    requestHandler: { httpsAgent: new https.Agent({ minVersion: 'TLSv1.2', keepAlive: true }) },
  });
}

/**
 * Data keys from AWS KMS (`GenerateDataKey`, AES_256). Unwrapping names the configured key,
 * so an entry wrapped by any other key is refused by KMS (`IncorrectKeyException`) even
 * when the credentials could use that other key.
 */
export function kmsKeyring(opts: KmsKeyringOptions): Keyring {
  const client = opts.client ?? createKmsClient(opts);
  const KeyId = opts.keyId;
  return {
    async generateDataKey(context) {
      const out = await client.send(new GenerateDataKeyCommand({ KeyId, KeySpec: 'AES_256', EncryptionContext: context }));
      if (!out.Plaintext || !out.CiphertextBlob || !out.KeyId || out.Plaintext.length !== 32) {
        out.Plaintext?.fill(0);
        throw Object.assign(new Error('GenerateDataKey returned an incomplete answer'), { name: 'MalformedResponse' });
      }
      return { plaintext: out.Plaintext, wrapped: out.CiphertextBlob, keyArn: out.KeyId };
    },
    async unwrap(wrapped, context) {
      const out = await client.send(new DecryptCommand({ KeyId, CiphertextBlob: wrapped, EncryptionContext: context }));
      if (!out.Plaintext || out.Plaintext.length !== 32) {
        out.Plaintext?.fill(0);
        throw Object.assign(new Error('Decrypt returned an incomplete answer'), { name: 'MalformedResponse' });
      }
      return out.Plaintext;
    },
  };
}
