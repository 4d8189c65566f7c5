/**
 * `npm start -- --check`: logs in to each outside system and checks what the worker needs,
 * printing one line per check in words an operator can act on. Nothing is sent.
 */
import { connectSalesforce } from './salesforce/connection.js';
import { createPauboxClient } from './paubox/client.js';
import { kmsKeyring, createKmsClient } from './crypto/envelope.js';
import { ATTEMPT_OBJECT, MESSAGE_OBJECT, CHANGE_CHANNEL } from './domain/record.js';
import { loadSchema } from './sandbox/org/schema.js';
import { safeError, scrub, type Log } from './log.js';
import type { Config } from './config.js';

type Check = { name: string; ok: boolean; detail: string };
/** Turns a failure into what the operator should do about it (no PHI, no secrets). */
type Advice = (err: unknown, message: string) => string;

class NotLoggedIn extends Error {
  constructor() {
    super('skipped: needs the Salesforce login, which failed above');
  }
}

export async function doctor(cfg: Config, log: Log): Promise<boolean> {
  const checks: Check[] = [];
  const run = async (name: string, fn: () => Promise<string>, advise: Advice = (_e, m) => m) => {
    try {
      checks.push({ name, ok: true, detail: await fn() });
    } catch (err) {
      const message = safeError(err).message;
      checks.push({ name, ok: false, detail: err instanceof NotLoggedIn ? message : scrub(advise(err, message), 400) });
    }
  };
  let session: Awaited<ReturnType<typeof connectSalesforce>> | undefined;
  await run('salesforce.login', async () => {
    session = await connectSalesforce(cfg);
    return `logged in as user ${session.userId}`;
  }, (_err, message) => `Salesforce refused the login (${message.slice(0, 80)}): check SF_LOGIN_URL, SF_CLIENT_ID (the connected app's consumer key), ` +
    'SF_USERNAME and SF_PRIVATE_KEY / SF_PASSWORD / SF_CLIENT_SECRET; for JWT the app needs the certificate and the user must be pre-authorized');
  const expected = loadSchema().objects;
  for (const object of [MESSAGE_OBJECT, ATTEMPT_OBJECT]) {
    await run(`salesforce.object.${object}`, async () => {
      if (!session) throw new NotLoggedIn();
      const describe = await session.conn.sobject(object).describe();
      const have = new Set(describe.fields.map((f) => f.name));
      const missing = Object.keys(expected[object]!.fields).filter((f) => !have.has(f));
      if (missing.length) throw new Error(`missing fields: ${missing.join(', ')} — deploy config/salesforce and assign the Secure_Email_Integration permission set`);
      return `${describe.fields.length} fields, all present`;
    });
  }
  await run('salesforce.cdc', () => subscribeOnce(session));
  await run('paubox.key', async () => {
    const paubox = createPauboxClient({ baseUrl: cfg.paubox.baseUrl, apiKey: cfg.paubox.apiKey });
    await paubox.receipt('00000000-0000-0000-0000-000000000000');
    return 'key accepted';
  }, (_err, message) => (/HTTP 40[13]/.test(message) ? message
    : `${message}: check PAUBOX_BASE_URL${cfg.paubox.baseUrl.startsWith('https:') ? ' and that outbound HTTPS to it is allowed' : ''}`));
  await run('kms.key', async () => {
    const keyring = kmsKeyring({ keyId: cfg.kms.keyId, client: createKmsClient({ region: cfg.kms.region, ...(cfg.kms.endpoint ? { endpoint: cfg.kms.endpoint } : {}) }) });
    const key = await keyring.generateDataKey({ service: 'secure-data-transports', check: 'doctor' });
    const back = await keyring.unwrap(key.wrapped, { service: 'secure-data-transports', check: 'doctor' });
    const same = Buffer.from(back).equals(Buffer.from(key.plaintext));
    key.plaintext.fill(0);
    back.fill(0);
    if (!same) throw new Error('data key did not round-trip');
    return `GenerateDataKey and Decrypt work with ${key.keyArn}`;
  }, (err, message) => kmsAdvice(err, message, cfg));
  for (const c of checks) log[c.ok ? 'info' : 'error']({ event: 'check', check: c.name, ok: c.ok, detail: c.detail });
  return checks.every((c) => c.ok);
}

function kmsAdvice(err: unknown, message: string, cfg: Config): string {
  const name = (err instanceof Error ? err.name : '').replace(/^.*#/, '');
  const key = `KMS_KEY_ID ${cfg.kms.keyId}`;
  switch (name) {
    case 'NotFoundException':
      return `${key} does not exist in region ${cfg.kms.region}: check KMS_KEY_ID and AWS_REGION (the key's own region)`;
    case 'DisabledException':
    case 'KMSInvalidStateException':
      return `${key} is disabled or pending deletion: enable it in the AWS KMS console, or set KMS_KEY_ID to an enabled key (${message})`;
    case 'AccessDeniedException':
      return `the AWS credentials may not use ${key}: allow kms:GenerateDataKey and kms:Decrypt for them in the key policy or IAM`;
    case 'UnrecognizedClientException':
    case 'InvalidSignatureException':
    case 'ExpiredTokenException':
    case 'CredentialsProviderError':
      return `AWS refused the credentials (${name}): check AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY`;
    default:
      return `${message}: check ${key}, AWS_REGION and the AWS credentials`;
  }
}

/** Handshake and subscribe at -1: proves the channel exists and the user may read it. */
function subscribeOnce(session: Awaited<ReturnType<typeof connectSalesforce>> | undefined): Promise<string> {
  if (!session) return Promise.reject(new NotLoggedIn());
  return new Promise((resolve, reject) => {
    const ext = {
      outgoing: (msg: { channel: string; ext?: object }, cb: (m: unknown) => void) => {
        if (msg.channel === '/meta/subscribe') msg.ext = { ...msg.ext, replay: { [CHANGE_CHANNEL]: -1 } };
        cb(msg);
      },
      incoming: (msg: { channel: string; successful?: boolean; error?: string }, cb: (m: unknown) => void) => {
        if (msg.channel === '/meta/subscribe') {
          client.disconnect();
          if (msg.successful) resolve(`subscribed to ${CHANGE_CHANNEL}`);
          else reject(new Error(`${msg.error ?? 'subscribe failed'} — enable Change Data Capture for ${MESSAGE_OBJECT}`));
        }
        cb(msg);
      },
    };
    const client = session.conn.streaming.createClient([ext as never]) as unknown as { subscribe(c: string, f: () => void): unknown; disconnect(): void };
    client.subscribe(CHANGE_CHANNEL, () => undefined);
    setTimeout(() => reject(new Error('no answer from CometD within 20 s')), 20_000).unref();
  });
}
