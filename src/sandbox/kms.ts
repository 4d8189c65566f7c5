import { createCipheriv, createDecipheriv, randomBytes, randomUUID } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { CallCounter } from './counter.js';

/**
 * Sandbox AWS KMS: the JSON 1.1 protocol exactly as `@aws-sdk/client-kms` speaks it
 * (`POST /`, `X-Amz-Target: TrentService.<Op>`, base64 blobs in JSON), so the worker's
 * real SDK code — including its retry of throttling and 5xx — runs unchanged against it.
 *
 * Ciphertext blobs are real AES-256-GCM under each key's own secret material, with the
 * encryption context as AAD, so a wrong context or a flipped bit fails the way it does
 * on the real service (`InvalidCiphertextException`). Blob layout (sandbox-private):
 *
 *   'S' 'K' 0x01 | keyIdLen(1) | keyId (utf8) | iv(12) | tag(16) | ciphertext
 *
 * Errors come back as HTTP 400 with `{"__type", "message"}` like the real service
 * (status codes are not what the SDK keys on; `__type` is). An outage answers 500
 * `KMSInternalException`, which the SDK retries and then surfaces.
 *
 * SigV4 signatures are not verified: any static credentials are accepted.
 */

export const KMS_ACCOUNT = '111122223333';
export const KMS_DEFAULT_ALIAS = 'alias/sdt-sandbox' as const;

export interface KmsOptions {
  port?: number;
  region?: string;
  latencyMs?: number;
}

export interface KmsControl {
  /** The next `n` calls answer `ThrottlingException`. */
  throttle(n: number): void;
  /** Each call is throttled with probability `rate` (0..1), on top of `throttle(n)`. */
  throttleRate(rate: number): void;
  /** While on, every call answers 500 `KMSInternalException`. */
  outage(on: boolean): void;
  disableKey(keyIdOrAlias: string): void;
  enableKey(keyIdOrAlias: string): void;
  setLatency(ms: number): void;
  /** Adds a fresh enabled key (optionally aliased); returns its id. */
  createKey(alias?: string): string;
}

export interface KmsSandbox {
  url: string;
  keyId: string;
  keyArn: string;
  alias: typeof KMS_DEFAULT_ALIAS;
  region: string;
  counter: CallCounter;
  control: KmsControl;
  close(): Promise<void>;
}

interface Key {
  id: string;
  arn: string;
  material: Buffer;
  enabled: boolean;
  createdAt: Date;
  description: string;
}

/** A KMS error as the wire carries it; `status` 400 unless the service itself failed. */
class KmsError extends Error {
  constructor(readonly type: string, message: string, readonly status = 400) {
    super(message);
  }
}

type Body = Record<string, unknown>;

const MAGIC = Buffer.from([0x53, 0x4b, 0x01]);

class KeyRing {
  private readonly keys = new Map<string, Key>();
  private readonly aliases = new Map<string, string>(); // 'alias/x' -> key id

  constructor(private readonly region: string) {}

  create(description = ''): Key {
    const id = randomUUID();
    const key: Key = {
      id,
      arn: this.keyArn(id),
      material: randomBytes(32),
      enabled: true,
      createdAt: new Date(),
      description,
    };
    this.keys.set(id, key);
    return key;
  }

  alias(name: string, keyId: string): void {
    if (!name.startsWith('alias/') || name.startsWith('alias/aws/')) {
      throw new KmsError('ValidationException', `Alias must start with the prefix "alias/" and not use the reserved "alias/aws/".`);
    }
    if (this.aliases.has(name)) throw new KmsError('AlreadyExistsException', `An alias with the name ${this.aliasArn(name)} already exists`);
    this.aliases.set(name, this.resolve(keyId).id);
  }

  keyArn(id: string): string {
    return `arn:aws:kms:${this.region}:${KMS_ACCOUNT}:key/${id}`;
  }

  aliasArn(name: string): string {
    return `arn:aws:kms:${this.region}:${KMS_ACCOUNT}:${name}`;
  }

  /** Key id, key ARN, `alias/name` or alias ARN → key; NotFoundException otherwise. */
  resolve(ref: unknown): Key {
    if (typeof ref !== 'string' || ref.length === 0) {
      throw new KmsError('ValidationException', '1 validation error detected: Value null at \'keyId\' failed to satisfy constraint: Member must not be null');
    }
    const arn = /^arn:aws:kms:[^:]*:\d{12}:(key\/.+|alias\/.+)$/.exec(ref);
    const local = arn ? arn[1]! : ref;
    const id = local.startsWith('alias/') ? this.aliases.get(local) : local.replace(/^key\//, '');
    const key = id === undefined ? undefined : this.keys.get(id);
    if (!key) {
      // The real service's wording for each form.
      throw new KmsError('NotFoundException', local.startsWith('alias/')
        ? `Alias ${this.aliasArn(local)} is not found.`
        : `Key '${this.keyArn(local.replace(/^key\//, ''))}' does not exist`);
    }
    return key;
  }

  byId(id: string): Key | undefined {
    return this.keys.get(id);
  }
}

/** Canonical AAD: the context's entries sorted by key, so map order never matters. */
function contextAad(ctx: unknown): Buffer {
  if (ctx === undefined || ctx === null) return Buffer.alloc(0);
  if (typeof ctx !== 'object' || Array.isArray(ctx)) throw new KmsError('ValidationException', 'EncryptionContext must be a map of strings');
  const entries = Object.entries(ctx as Record<string, unknown>);
  for (const [, v] of entries) {
    if (typeof v !== 'string') throw new KmsError('ValidationException', 'EncryptionContext values must be strings');
  }
  entries.sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  return Buffer.from(JSON.stringify(entries), 'utf8');
}

function seal(key: Key, plaintext: Buffer, ctx: unknown): Buffer {
  const iv = randomBytes(12);
  const cipher = createCipheriv('aes-256-gcm', key.material, iv, { authTagLength: 16 });
  cipher.setAAD(contextAad(ctx));
  const ct = Buffer.concat([cipher.update(plaintext), cipher.final()]);
  const idBytes = Buffer.from(key.id, 'utf8');
  return Buffer.concat([MAGIC, Buffer.from([idBytes.length]), idBytes, iv, cipher.getAuthTag(), ct]);
}

function parseBlob(blob: Buffer): { keyId: string; iv: Buffer; tag: Buffer; ct: Buffer } {
  const bad = new KmsError('InvalidCiphertextException', '');
  if (blob.length < MAGIC.length + 1 || !blob.subarray(0, 3).equals(MAGIC)) throw bad;
  const idLen = blob[3]!;
  let at = 4;
  const keyId = blob.subarray(at, (at += idLen)).toString('utf8');
  const iv = blob.subarray(at, (at += 12));
  const tag = blob.subarray(at, (at += 16));
  if (tag.length !== 16) throw bad;
  return { keyId, iv, tag, ct: blob.subarray(at) };
}

function open(key: Key, parts: ReturnType<typeof parseBlob>, ctx: unknown): Buffer {
  const decipher = createDecipheriv('aes-256-gcm', key.material, parts.iv, { authTagLength: 16 });
  decipher.setAAD(contextAad(ctx));
  decipher.setAuthTag(parts.tag);
  try {
    return Buffer.concat([decipher.update(parts.ct), decipher.final()]);
  } catch {
    // The real service gives no detail for a wrong context or a damaged blob.
    throw new KmsError('InvalidCiphertextException', '');
  }
}

function blobField(body: Body, name: string, max: number): Buffer {
  const v = body[name];
  if (typeof v !== 'string' || v.length === 0) {
    throw new KmsError('ValidationException', `1 validation error detected: Value null at '${name}' failed to satisfy constraint: Member must not be null`);
  }
  const buf = Buffer.from(v, 'base64');
  if (buf.length === 0 || buf.length > max) {
    throw new KmsError('ValidationException', `1 validation error detected: Value at '${name}' failed to satisfy constraint: Member must have length less than or equal to ${max}`);
  }
  return buf;
}

function usable(key: Key): Key {
  if (!key.enabled) throw new KmsError('DisabledException', `${key.arn} is disabled.`);
  return key;
}

function dataKeyLength(body: Body): number {
  const spec = body['KeySpec'];
  const n = body['NumberOfBytes'];
  if ((spec === undefined) === (n === undefined)) {
    throw new KmsError('ValidationException', 'Please specify either number of bytes or key spec.');
  }
  if (spec !== undefined) {
    if (spec === 'AES_256') return 32;
    if (spec === 'AES_128') return 16;
    throw new KmsError('ValidationException', `1 validation error detected: Value '${String(spec)}' at 'keySpec' failed to satisfy constraint: Member must satisfy enum value set: [AES_256, AES_128]`);
  }
  if (typeof n !== 'number' || !Number.isInteger(n) || n < 1 || n > 1024) {
    throw new KmsError('ValidationException', `1 validation error detected: Value '${String(n)}' at 'numberOfBytes' failed to satisfy constraint: Member must have value between 1 and 1024`);
  }
  return n;
}

function keyMetadata(key: Key): Body {
  return {
    AWSAccountId: KMS_ACCOUNT,
    KeyId: key.id,
    Arn: key.arn,
    CreationDate: key.createdAt.getTime() / 1000,
    Enabled: key.enabled,
    Description: key.description,
    KeyUsage: 'ENCRYPT_DECRYPT',
    KeyState: key.enabled ? 'Enabled' : 'Disabled',
    Origin: 'AWS_KMS',
    KeyManager: 'CUSTOMER',
    CustomerMasterKeySpec: 'SYMMETRIC_DEFAULT',
    KeySpec: 'SYMMETRIC_DEFAULT',
    EncryptionAlgorithms: ['SYMMETRIC_DEFAULT'],
    MultiRegion: false,
  };
}

type Operation = (ring: KeyRing, body: Body) => Body;

const operations: Record<string, Operation> = {
  GenerateDataKey(ring, body) {
    const key = usable(ring.resolve(body['KeyId']));
    const plaintext = randomBytes(dataKeyLength(body));
    const blob = seal(key, plaintext, body['EncryptionContext']);
    return { CiphertextBlob: blob.toString('base64'), Plaintext: plaintext.toString('base64'), KeyId: key.arn };
  },
  GenerateDataKeyWithoutPlaintext(ring, body) {
    const { CiphertextBlob, KeyId } = operations['GenerateDataKey']!(ring, body);
    return { CiphertextBlob, KeyId };
  },
  Encrypt(ring, body) {
    const key = usable(ring.resolve(body['KeyId']));
    const blob = seal(key, blobField(body, 'Plaintext', 4096), body['EncryptionContext']);
    return { CiphertextBlob: blob.toString('base64'), KeyId: key.arn, EncryptionAlgorithm: 'SYMMETRIC_DEFAULT' };
  },
  Decrypt(ring, body) {
    const parts = parseBlob(blobField(body, 'CiphertextBlob', 6144));
    const owner = ring.byId(parts.keyId);
    if (!owner) throw new KmsError('InvalidCiphertextException', '');
    if (body['KeyId'] !== undefined && ring.resolve(body['KeyId']).id !== owner.id) {
      throw new KmsError('IncorrectKeyException', 'The key ID in the request does not identify a CMK that can perform this operation.');
    }
    const plaintext = open(usable(owner), parts, body['EncryptionContext']);
    return { Plaintext: plaintext.toString('base64'), KeyId: owner.arn, EncryptionAlgorithm: 'SYMMETRIC_DEFAULT' };
  },
  DescribeKey(ring, body) {
    return { KeyMetadata: keyMetadata(ring.resolve(body['KeyId'])) };
  },
  CreateKey(ring, body) {
    const description = typeof body['Description'] === 'string' ? body['Description'] : '';
    return { KeyMetadata: keyMetadata(ring.create(description)) };
  },
  CreateAlias(ring, body) {
    if (typeof body['AliasName'] !== 'string') throw new KmsError('ValidationException', 'AliasName is required');
    ring.alias(body['AliasName'], String(body['TargetKeyId'] ?? ''));
    return {};
  },
};

function readBody(req: http.IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    req.on('error', reject);
  });
}

function send(res: http.ServerResponse, status: number, body: Body): void {
  const text = JSON.stringify(body);
  res.writeHead(status, {
    'content-type': 'application/x-amz-json-1.1',
    'content-length': Buffer.byteLength(text),
    'x-amzn-requestid': randomUUID(),
  });
  res.end(text);
}

function sendError(res: http.ServerResponse, err: KmsError): void {
  send(res, err.status, { __type: err.type, message: err.message });
}

export async function startKms(opts: KmsOptions = {}): Promise<KmsSandbox> {
  const region = opts.region ?? 'us-east-1';
  const ring = new KeyRing(region);
  const counter = new CallCounter();
  const defaultKey = ring.create('Secure Data Transports sandbox key');
  ring.alias(KMS_DEFAULT_ALIAS, defaultKey.id);

  let latencyMs = opts.latencyMs ?? 0;
  let throttleNext = 0;
  let throttleRate = 0;
  let down = false;

  const setEnabled = (ref: string, enabled: boolean): void => {
    ring.resolve(ref).enabled = enabled;
  };

  /** Decides whether this call is refused before it reaches the key ring. */
  const refusal = (): KmsError | undefined => {
    if (down) return new KmsError('KMSInternalException', 'The request was rejected because an internal exception occurred.', 500);
    if (throttleNext > 0 || (throttleRate > 0 && Math.random() < throttleRate)) {
      if (throttleNext > 0) throttleNext--;
      counter.count('kms.throttled');
      return new KmsError('ThrottlingException', 'Rate exceeded');
    }
    return undefined;
  };

  const handle = async (req: http.IncomingMessage, res: http.ServerResponse): Promise<void> => {
    const text = await readBody(req);
    if (latencyMs > 0) await new Promise((r) => setTimeout(r, latencyMs));
    const target = req.headers['x-amz-target'];
    const op = typeof target === 'string' ? /^TrentService\.(\w+)$/.exec(target)?.[1] : undefined;
    if (req.method !== 'POST' || op === undefined || !(op in operations)) {
      counter.count('kms.unknown');
      return sendError(res, new KmsError('UnknownOperationException', ''));
    }
    counter.count(`kms.${op}`);
    const refused = refusal();
    if (refused) return sendError(res, refused);
    let body: Body;
    try {
      const parsed: unknown = text === '' ? {} : JSON.parse(text);
      if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) throw new Error('not an object');
      body = parsed as Body;
    } catch {
      return sendError(res, new KmsError('SerializationException', 'Start of structure or map found where not expected.'));
    }
    try {
      send(res, 200, operations[op]!(ring, body));
    } catch (err) {
      if (err instanceof KmsError) return sendError(res, err);
      sendError(res, new KmsError('KMSInternalException', 'internal error', 500));
    }
  };

  const server = http.createServer((req, res) => {
    handle(req, res).catch(() => {
      if (!res.headersSent) sendError(res, new KmsError('KMSInternalException', 'internal error', 500));
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port ?? 0, '127.0.0.1', () => resolve());
  });
  const { port } = server.address() as AddressInfo;

  const control: KmsControl = {
    throttle: (n) => { throttleNext = Math.max(0, Math.floor(n)); },
    throttleRate: (rate) => { throttleRate = Math.min(1, Math.max(0, rate)); },
    outage: (on) => { down = on; },
    disableKey: (ref) => setEnabled(ref, false),
    enableKey: (ref) => setEnabled(ref, true),
    setLatency: (ms) => { latencyMs = Math.max(0, ms); },
    createKey: (alias) => {
      const key = ring.create();
      if (alias !== undefined) ring.alias(alias, key.id);
      return key.id;
    },
  };

  return {
    url: `http://127.0.0.1:${port}`,
    keyId: defaultKey.id,
    keyArn: defaultKey.arn,
    alias: KMS_DEFAULT_ALIAS,
    region,
    counter,
    control,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
