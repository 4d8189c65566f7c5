/**
 * The built-in sandbox: a Salesforce org (OAuth, REST, CometD), Paubox and KMS on
 * loopback, each on its own port. `env` is what points a worker at them — the same
 * variables an operator sets for the real services, so the worker runs its production
 * code path against the sandbox.
 */
import { startSalesforceOrg, type SalesforceOrg, type SalesforceOrgOptions } from './org/server.js';
import { startPaubox, type PauboxSandbox } from './paubox.js';
import { startKms, type KmsSandbox } from './kms.js';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { SandboxClock } from './clock.js';

export interface Sandbox {
  org: SalesforceOrg;
  paubox: PauboxSandbox;
  kms: KmsSandbox;
  clock: SandboxClock;
  /** Environment variables (contract §4) that point a worker at this sandbox. */
  env: Record<string, string>;
  close(): Promise<void>;
}

export interface SandboxOptions {
  org?: Omit<SalesforceOrgOptions, 'clock'>;
  paubox?: { latencyMs?: number };
  kms?: { latencyMs?: number };
  /** Fixed ports (interactive use); 0 = any free port (tests). */
  ports?: { org?: number; paubox?: number; kms?: number };
}

export async function startSandbox(opts: SandboxOptions = {}): Promise<Sandbox> {
  const clock = new SandboxClock();
  const org = await startSalesforceOrg({ ...opts.org, clock, port: opts.ports?.org ?? 0 });
  const paubox = await startPaubox({ clock, port: opts.ports?.paubox ?? 0, ...opts.paubox });
  const kms = await startKms({ port: opts.ports?.kms ?? 0, ...opts.kms });
  const env: Record<string, string> = {
    SF_LOGIN_URL: org.url,
    SF_CLIENT_ID: org.credentials.clientId,
    SF_CLIENT_SECRET: org.credentials.clientSecret,
    SF_USERNAME: org.credentials.username,
    SF_PRIVATE_KEY: org.credentials.privateKeyPem,
    SF_API_VERSION: org.apiVersion,
    PAUBOX_API_KEY: paubox.apiKey,
    PAUBOX_BASE_URL: paubox.url,
    KMS_KEY_ID: kms.alias,
    AWS_REGION: kms.region,
    AWS_ACCESS_KEY_ID: 'sandbox',
    AWS_SECRET_ACCESS_KEY: 'sandbox',
    AWS_ENDPOINT_URL_KMS: kms.url,
  };
  return {
    org, paubox, kms, clock, env,
    async close() {
      await Promise.allSettled([org.close(), paubox.close(), kms.close()]);
    },
  };
}

/**
 * The interactive sandbox (`npm start` with nothing configured, `npm run sandbox`): fixed
 * ports when free, else any, and its environment written to `$DATA_DIR/sandbox.env` for
 * `npm run sandbox:send`. Loopback-only credentials made fresh each run: not secrets of any
 * real system.
 */
export async function startLocalSandbox(dataDir: string): Promise<Sandbox> {
  const sandbox = await startSandbox({ ports: { org: 4510, paubox: 4511, kms: 4512 } }).catch(() => startSandbox());
  mkdirSync(dataDir, { recursive: true, mode: 0o700 });
  writeFileSync(sandboxEnvFile(dataDir),
    Object.entries(sandbox.env).map(([k, v]) => `${k}=${JSON.stringify(v)}`).join('\n') + '\n', { mode: 0o600 });
  return sandbox;
}

export function sandboxEnvFile(dataDir: string): string {
  return join(dataDir, 'sandbox.env');
}

/** What startLocalSandbox wrote; throws when no sandbox was started there. */
export function readSandboxEnv(dataDir: string): Record<string, string> {
  return Object.fromEntries(readFileSync(sandboxEnvFile(dataDir), 'utf8').trim().split('\n')
    .map((l) => [l.slice(0, l.indexOf('=')), JSON.parse(l.slice(l.indexOf('=') + 1)) as string]));
}
