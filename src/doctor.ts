/**
 * `npm start -- --check`: logs in to each outside system and checks what the worker needs,
 * printing one line per check in words an operator can act on. Nothing is sent.
 */
import { connectSalesforce } from './salesforce/connection.js';
import { createPauboxClient } from './paubox/client.js';
import { kmsKeyring, createKmsClient } from './crypto/envelope.js';
import { ATTEMPT_OBJECT, MESSAGE_OBJECT, CHANGE_CHANNEL } from './domain/record.js';
import { loadSchema } from './sandbox/org/schema.js';
import { safeError, type Log } from './log.js';
import type { Config } from './config.js';

type Check = { name: string; ok: boolean; detail: string };

export async function doctor(cfg: Config, log: Log): Promise<boolean> {
  const checks: Check[] = [];
  const run = async (name: string, fn: () => Promise<string>) => {
    try {
      checks.push({ name, ok: true, detail: await fn() });
    } catch (err) {
      checks.push({ name, ok: false, detail: safeError(err).message });
    }
  };
  let session: Awaited<ReturnType<typeof connectSalesforce>> | undefined;
  await run('salesforce.login', async () => {
    session = await connectSalesforce(cfg);
    return `logged in as user ${session.userId}`;
  });
  const expected = loadSchema().objects;
  for (const object of [MESSAGE_OBJECT, ATTEMPT_OBJECT]) {
    await run(`salesforce.object.${object}`, async () => {
      if (!session) throw new Error('not logged in');
      const describe = await session.conn.sobject(object).describe();
      const have = new Set(describe.fields.map((f) => f.name));
      const missing = Object.keys(expected[object]!.fields).filter((f) => !have.has(f));
      if (missing.length) throw new Error(`missing fields: ${missing.join(', ')} — deploy config/salesforce and assign the Secure_Email_Integration permission set`);
      return `${describe.fields.length} fields, all present`;
    });
  }
  await run('salesforce.cdc', () => subscribeOnce(session, cfg));
  await run('paubox.key', async () => {
    const paubox = createPauboxClient({ baseUrl: cfg.paubox.baseUrl, apiKey: cfg.paubox.apiKey });
    await paubox.receipt('00000000-0000-0000-0000-000000000000');
    return 'key accepted';
  });
  await run('kms.key', async () => {
    const keyring = kmsKeyring({ keyId: cfg.kms.keyId, client: createKmsClient({ region: cfg.kms.region, ...(cfg.kms.endpoint ? { endpoint: cfg.kms.endpoint } : {}) }) });
    const key = await keyring.generateDataKey({ service: 'secure-data-transports', check: 'doctor' });
    const back = await keyring.unwrap(key.wrapped, { service: 'secure-data-transports', check: 'doctor' });
    const same = Buffer.from(back).equals(Buffer.from(key.plaintext));
    key.plaintext.fill(0);
    back.fill(0);
    if (!same) throw new Error('data key did not round-trip');
    return `GenerateDataKey and Decrypt work with ${key.keyArn}`;
  });
  for (const c of checks) log[c.ok ? 'info' : 'error']({ event: 'check', check: c.name, ok: c.ok, detail: c.detail });
  return checks.every((c) => c.ok);
}

/** Handshake and subscribe at -1: proves the channel exists and the user may read it. */
function subscribeOnce(session: Awaited<ReturnType<typeof connectSalesforce>> | undefined, _cfg: Config): Promise<string> {
  if (!session) return Promise.reject(new Error('not logged in'));
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
