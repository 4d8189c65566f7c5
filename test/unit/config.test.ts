import { describe, expect, it } from 'vitest';
import { generateKeyPairSync } from 'node:crypto';
import { loadConfig, wantsSandbox, ConfigError } from '../../src/config.js';

const pem = generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
const base = {
  NODE_ENV: 'production', SF_CLIENT_ID: 'cid', SF_USERNAME: 'int@org', SF_PRIVATE_KEY: pem,
  PAUBOX_API_KEY: 'k', KMS_KEY_ID: 'arn:aws:kms:eu-west-1:111122223333:key/abc',
};

function problem(env: Record<string, string | undefined>): string {
  try {
    loadConfig(env);
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    return (err as Error).message;
  }
  throw new Error('expected a ConfigError');
}

describe('configuration', () => {
  it('uses the sandbox only when nothing is configured outside production', () => {
    expect(wantsSandbox({})).toBe(true);
    expect(wantsSandbox({ NODE_ENV: 'production' })).toBe(false);
    expect(wantsSandbox({ DYNO: 'worker.1' })).toBe(false);
    expect(wantsSandbox({ PAUBOX_API_KEY: 'x' })).toBe(false);
  });

  it('reads a complete production environment with the contract defaults', () => {
    const cfg = loadConfig(base);
    expect(cfg.salesforce.auth.kind).toBe('jwt');
    expect(cfg.salesforce.loginUrl).toBe('https://login.salesforce.com');
    expect(cfg.paubox.baseUrl).toBe('https://api.paubox.com/v1/email');
    expect(cfg.kms.region).toBe('eu-west-1'); // from the key ARN
    expect(cfg).toMatchObject({ pollIntervalMs: 12000, openTrackingHours: 24, reconcileIntervalMs: 60000, claimLeaseMs: 120000, dataDir: './data' });
  });

  it('derives the legacy Paubox base from PAUBOX_API_USERNAME', () => {
    expect(loadConfig({ ...base, PAUBOX_API_USERNAME: 'clinic' }).paubox.baseUrl).toBe('https://api.paubox.net/v1/clinic');
  });

  it.each([
    [{ PAUBOX_API_KEY: undefined }, /^PAUBOX_API_KEY: is required/],
    [{ SF_CLIENT_ID: undefined }, /^SF_CLIENT_ID: is required/],
    [{ KMS_KEY_ID: undefined }, /^KMS_KEY_ID: is required/],
    [{ SF_PRIVATE_KEY: 'not a key' }, /^SF_PRIVATE_KEY: is not a PEM private key/],
    [{ SF_PRIVATE_KEY: undefined }, /^SF_PRIVATE_KEY: no Salesforce credentials/],
    [{ POLL_INTERVAL_MS: 'soon' }, /^POLL_INTERVAL_MS: must be a whole number/],
    [{ SF_LOGIN_URL: 'http://login.example.com' }, /^SF_LOGIN_URL: must use https:\/\/ \(plain http:\/\/ is allowed only for loopback hosts\)/],
    [{ PAUBOX_BASE_URL: 'not a url' }, /^PAUBOX_BASE_URL: is not a valid URL/],
    [{ KMS_KEY_ID: 'alias/sdt' }, /^AWS_REGION: is required/],
    [{ LOG_LEVEL: 'loud' }, /^LOG_LEVEL:/],
  ])('names the variable of a bad setting: %o', (change, expected) => {
    expect(problem({ ...base, ...change })).toMatch(expected);
  });

  it('subscribes to change events on one dyno only, unless told otherwise', () => {
    expect(loadConfig(base).subscribe).toBe(true); // not on Heroku: every worker subscribes
    expect(loadConfig({ ...base, DYNO: 'worker.1' }).subscribe).toBe(true);
    expect(loadConfig({ ...base, DYNO: 'worker.2' }).subscribe).toBe(false);
    expect(loadConfig({ ...base, DYNO: 'worker.2', CDC_SUBSCRIBE: 'true' }).subscribe).toBe(true);
    expect(loadConfig({ ...base, CDC_SUBSCRIBE: 'false' }).subscribe).toBe(false);
    expect(problem({ ...base, CDC_SUBSCRIBE: 'maybe' })).toMatch(/^CDC_SUBSCRIBE:/);
  });

  it('accepts plain http for loopback hosts only', () => {
    const cfg = loadConfig({ ...base, SF_LOGIN_URL: 'http://127.0.0.1:4510', PAUBOX_BASE_URL: 'http://localhost:1/v1/email', AWS_ENDPOINT_URL_KMS: 'http://[::1]:9' });
    expect(cfg.salesforce.loginUrl).toBe('http://127.0.0.1:4510');
  });

  it('never puts a secret into its error messages', () => {
    const msg = problem({ ...base, SF_PRIVATE_KEY: 'SECRET-KEY-MATERIAL', SF_USERNAME: 'int@org' });
    expect(msg).not.toContain('SECRET-KEY-MATERIAL');
  });
});
