/**
 * Configuration: read once from the environment (contract §4), validated with zod, and
 * turned into one typed object. A bad setting stops the process at start with a message
 * that names the variable (exit 78, EX_CONFIG) — never a crash loop further in.
 *
 * With nothing of Salesforce, Paubox or KMS configured outside production, the worker
 * runs against the built-in sandbox instead (`mode: 'sandbox'`); main.ts starts it and
 * fills in the service settings before calling `loadConfig` again.
 */
import { readFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { z } from 'zod';
import { checkServiceUrl, ServiceUrlError } from './net/tls.js';

export const EX_CONFIG = 78;

export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

export class ConfigError extends Error {
  override name = 'ConfigError';
  constructor(readonly variable: string, problem: string) {
    super(`${variable}: ${problem}`);
  }
}

export type SalesforceAuth =
  | { kind: 'jwt'; privateKey: string }
  | { kind: 'password'; password: string; clientSecret?: string }
  | { kind: 'client_credentials'; clientSecret: string };

export interface Config {
  sandbox: boolean;
  production: boolean;
  salesforce: { loginUrl: string; clientId: string; username?: string; auth: SalesforceAuth; apiVersion: string };
  paubox: { apiKey: string; baseUrl: string };
  kms: { keyId: string; region: string; endpoint?: string };
  dataDir: string;
  pollIntervalMs: number;
  openTrackingHours: number;
  reconcileIntervalMs: number;
  claimLeaseMs: number;
  /** How long 429/5xx/network failures are retried before the message is Failed. */
  sendDeadlineMs: number;
  /** Re-POST an attempt whose outcome is unknown (off: the record says so and fails). */
  resendUnknown: boolean;
  softBounceGiveUpMs: number;
  spoolMaxAgeMs: number;
  logLevel: LogLevel;
  /** Who claims (Worker__c) — dyno name or host, and pid. */
  workerName: string;
  /** Sent as `Sforce-Call-Options: client=<name>`; change events carrying it are ours. */
  clientName: string;
  /**
   * Whether this worker subscribes to change events. Every subscriber spends the org's
   * daily event deliveries, so with several dynos only `worker.1` subscribes by default
   * and the others work from the reconcile sweep (`CDC_SUBSCRIBE=auto`).
   */
  subscribe: boolean;
}

export type Env = Record<string, string | undefined>;

/** Variables whose presence means "a real service is configured". */
const SERVICE_VARS = [
  'SF_LOGIN_URL', 'SF_CLIENT_ID', 'SF_USERNAME', 'SF_PRIVATE_KEY', 'SF_PRIVATE_KEY_FILE',
  'SF_PASSWORD', 'SF_CLIENT_SECRET', 'PAUBOX_API_KEY', 'PAUBOX_API_USERNAME', 'PAUBOX_BASE_URL',
  'KMS_KEY_ID', 'AWS_ENDPOINT_URL_KMS',
];

export function isProduction(env: Env): boolean {
  return env.NODE_ENV === 'production' || !!env.DYNO;
}

/** True when the built-in sandbox should stand in for every outside service. */
export function wantsSandbox(env: Env): boolean {
  return !isProduction(env) && SERVICE_VARS.every((v) => !env[v]);
}

const int = (min: number, fallback: number) =>
  z.string().trim().regex(/^\d+$/, 'must be a whole number').transform(Number)
    .pipe(z.number().int().min(min)).optional().transform((v) => v ?? fallback);

const EnvSchema = z.object({
  SF_LOGIN_URL: z.string().trim().default('https://login.salesforce.com'),
  SF_CLIENT_ID: z.string().trim().min(1, 'is required (the connected app consumer key)'),
  SF_USERNAME: z.string().trim().optional(),
  SF_PRIVATE_KEY: z.string().optional(),
  SF_PRIVATE_KEY_FILE: z.string().trim().optional(),
  SF_PASSWORD: z.string().optional(),
  SF_CLIENT_SECRET: z.string().optional(),
  SF_API_VERSION: z.string().trim().regex(/^\d{2,3}\.0$/, 'must look like 62.0').default('62.0'),
  PAUBOX_API_KEY: z.string().trim().min(1, 'is required (Paubox API key)'),
  PAUBOX_API_USERNAME: z.string().trim().optional(),
  PAUBOX_BASE_URL: z.string().trim().optional(),
  KMS_KEY_ID: z.string().trim().min(1, 'is required (KMS key id, ARN or alias that wraps data keys)'),
  AWS_REGION: z.string().trim().optional(),
  AWS_DEFAULT_REGION: z.string().trim().optional(),
  AWS_ENDPOINT_URL_KMS: z.string().trim().optional(),
  DATA_DIR: z.string().trim().min(1).default('./data'),
  POLL_INTERVAL_MS: int(1000, 12_000),
  OPEN_TRACKING_HOURS: int(0, 24),
  RECONCILE_INTERVAL_MS: int(1000, 60_000),
  CLAIM_LEASE_MS: int(1000, 120_000),
  SEND_DEADLINE_MS: int(0, 3_600_000),
  RESEND_UNKNOWN: z.enum(['true', 'false', '1', '0']).optional().transform((v) => v === 'true' || v === '1'),
  SOFT_BOUNCE_GIVE_UP_HOURS: int(1, 72),
  SPOOL_MAX_AGE_HOURS: int(1, 24),
  LOG_LEVEL: z.enum(LOG_LEVELS).default('info'),
  WORKER_NAME: z.string().trim().max(80).optional(),
  CDC_SUBSCRIBE: z.enum(['auto', 'true', 'false']).default('auto'),
  DYNO: z.string().optional(),
  NODE_ENV: z.string().optional(),
});

/** Parses the environment; throws ConfigError naming the first bad variable. */
export function loadConfig(env: Env, opts: { sandbox?: boolean } = {}): Config {
  const parsed = EnvSchema.safeParse(stripEmpty(env));
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    const variable = String(issue.path[0] ?? 'environment');
    const problem = issue.code === 'invalid_type' && env[variable] === undefined ? 'is required' : issue.message;
    throw new ConfigError(variable, problem);
  }
  const e = parsed.data;
  const loginUrl = serviceUrl(e.SF_LOGIN_URL, 'SF_LOGIN_URL');
  const baseUrl = serviceUrl(
    e.PAUBOX_BASE_URL ??
      (e.PAUBOX_API_USERNAME ? `https://api.paubox.net/v1/${e.PAUBOX_API_USERNAME}` : 'https://api.paubox.com/v1/email'),
    'PAUBOX_BASE_URL',
  );
  const endpoint = e.AWS_ENDPOINT_URL_KMS ? serviceUrl(e.AWS_ENDPOINT_URL_KMS, 'AWS_ENDPOINT_URL_KMS') : undefined;
  const region = e.AWS_REGION ?? e.AWS_DEFAULT_REGION ?? regionOfArn(e.KMS_KEY_ID);
  if (!region) throw new ConfigError('AWS_REGION', 'is required unless KMS_KEY_ID is a full key ARN');
  const pid = process.pid;
  return {
    sandbox: opts.sandbox ?? false,
    production: isProduction(env),
    salesforce: {
      loginUrl: loginUrl.replace(/\/+$/, ''),
      clientId: e.SF_CLIENT_ID,
      username: e.SF_USERNAME,
      auth: salesforceAuth(e),
      apiVersion: e.SF_API_VERSION,
    },
    paubox: { apiKey: e.PAUBOX_API_KEY, baseUrl: baseUrl.replace(/\/+$/, '') },
    kms: { keyId: e.KMS_KEY_ID, region, ...(endpoint ? { endpoint } : {}) },
    dataDir: e.DATA_DIR,
    pollIntervalMs: e.POLL_INTERVAL_MS,
    openTrackingHours: e.OPEN_TRACKING_HOURS,
    reconcileIntervalMs: e.RECONCILE_INTERVAL_MS,
    claimLeaseMs: e.CLAIM_LEASE_MS,
    sendDeadlineMs: e.SEND_DEADLINE_MS,
    resendUnknown: e.RESEND_UNKNOWN,
    softBounceGiveUpMs: e.SOFT_BOUNCE_GIVE_UP_HOURS * 3_600_000,
    spoolMaxAgeMs: e.SPOOL_MAX_AGE_HOURS * 3_600_000,
    logLevel: e.LOG_LEVEL,
    workerName: (e.WORKER_NAME ?? `${e.DYNO ?? hostname()}:${pid}`).slice(0, 80),
    clientName: 'sdt-worker',
    subscribe: e.CDC_SUBSCRIBE === 'true' || (e.CDC_SUBSCRIBE === 'auto' && isFirstDynoOrSingle(e.DYNO)),
  };
}

/** `auto`: subscribe unless this is a Heroku dyno other than the first of its type. */
function isFirstDynoOrSingle(dyno: string | undefined): boolean {
  const n = dyno ? /\.(\d+)$/.exec(dyno)?.[1] : undefined;
  return n === undefined || n === '1';
}

function salesforceAuth(e: z.infer<typeof EnvSchema>): SalesforceAuth {
  const key = e.SF_PRIVATE_KEY ?? (e.SF_PRIVATE_KEY_FILE ? readKeyFile(e.SF_PRIVATE_KEY_FILE) : undefined);
  if (key !== undefined) {
    if (!/-----BEGIN (RSA )?PRIVATE KEY-----/.test(key)) {
      throw new ConfigError(e.SF_PRIVATE_KEY ? 'SF_PRIVATE_KEY' : 'SF_PRIVATE_KEY_FILE', 'is not a PEM private key');
    }
    if (!e.SF_USERNAME) throw new ConfigError('SF_USERNAME', 'is required for the JWT bearer flow');
    return { kind: 'jwt', privateKey: key.replace(/\\n/g, '\n') };
  }
  if (e.SF_PASSWORD !== undefined) {
    if (!e.SF_USERNAME) throw new ConfigError('SF_USERNAME', 'is required with SF_PASSWORD');
    return { kind: 'password', password: e.SF_PASSWORD, ...(e.SF_CLIENT_SECRET ? { clientSecret: e.SF_CLIENT_SECRET } : {}) };
  }
  if (e.SF_CLIENT_SECRET) return { kind: 'client_credentials', clientSecret: e.SF_CLIENT_SECRET };
  throw new ConfigError('SF_PRIVATE_KEY', 'no Salesforce credentials: set SF_PRIVATE_KEY (JWT), SF_PASSWORD, or SF_CLIENT_SECRET');
}

function readKeyFile(path: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    throw new ConfigError('SF_PRIVATE_KEY_FILE', 'cannot be read');
  }
}

/** https for everything but loopback (sandbox and tests); the TLS floor is set in main.ts. */
function serviceUrl(value: string, variable: string): string {
  try {
    checkServiceUrl(value, variable);
    return value;
  } catch (err) {
    if (err instanceof ServiceUrlError) throw new ConfigError(variable, err.message.slice(variable.length + 1));
    throw err;
  }
}

function regionOfArn(keyId: string): string | undefined {
  return /^arn:aws[\w-]*:kms:([a-z0-9-]+):/.exec(keyId)?.[1];
}

function stripEmpty(env: Env): Env {
  return Object.fromEntries(Object.entries(env).filter(([, v]) => v !== undefined && v !== ''));
}
