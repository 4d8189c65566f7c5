/**
 * The built-in sandbox: a Salesforce org (OAuth, REST, CometD), Paubox and KMS on
 * loopback, each on its own port. `env` is what points a worker at them — the same
 * variables an operator sets for the real services, so the worker runs its production
 * code path against the sandbox.
 */
import { startSalesforceOrg, type SalesforceOrg, type SalesforceOrgOptions } from './org/server.js';
import { startPaubox, type PauboxSandbox } from './paubox.js';
import { startKms, type KmsSandbox } from './kms.js';
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
