/**
 * `npm start -- --check` (src/doctor.ts): logs in to each outside system, checks what the
 * worker needs, and says what is wrong in words an operator can act on. Run as the
 * Procfile command plus `--check`, against the sandbox and against broken setups.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { rmSync } from 'node:fs';
import type { Sandbox } from '../../src/sandbox/index.js';
import { fastSandbox, nonJson, spawnMain, tempDir, workerEnv } from './support.js';
import type { LogLine } from '../support/harness.js';

let sandbox: Sandbox;
let dataDir: string;
beforeAll(async () => {
  sandbox = await fastSandbox();
  dataDir = tempDir();
});
afterAll(async () => {
  await sandbox?.close();
  rmSync(dataDir, { recursive: true, force: true });
});

const CHECKS = [
  'salesforce.login', 'salesforce.object.Secure_EmailMessage__c', 'salesforce.object.Secure_Email_Attempt__c',
  'salesforce.cdc', 'paubox.key', 'kms.key',
];

async function check(extra: Record<string, string> = {}): Promise<{ code: number | null; checks: Map<string, LogLine> }> {
  const w = spawnMain(workerEnv(sandbox, dataDir, { LOG_LEVEL: 'info', ...extra }), ['--check']);
  const code = await w.exited;
  expect(nonJson(w)).toEqual([]);
  return { code, checks: new Map(w.logs.events('check').map((l) => [String(l.check), l])) };
}

describe('npm start -- --check', () => {
  it('against a working setup: every check ok, exit 0, nothing sent', async () => {
    const { code, checks } = await check();
    expect([...checks.keys()]).toEqual(CHECKS);
    for (const c of checks.values()) expect(c, String(c.check)).toMatchObject({ ok: true });
    expect(code).toBe(0);
    expect(sandbox.paubox.accepted()).toEqual([]);
  });

  it('a wrong Paubox key: names PAUBOX_API_KEY and what to do, exit non-zero', async () => {
    const { code, checks } = await check({ PAUBOX_API_KEY: 'not-the-key' });
    expect(code).not.toBe(0);
    expect(checks.get('paubox.key')).toMatchObject({ ok: false, detail: expect.stringContaining('PAUBOX_API_KEY') });
    expect(String(checks.get('paubox.key')!.detail)).not.toContain('not-the-key');
    expect([...checks.values()].filter((c) => !c.ok).map((c) => c.check)).toEqual(['paubox.key']);
  });

  it('a KMS key id that does not exist: names KMS_KEY_ID and what to do, exit non-zero', async () => {
    const { code, checks } = await check({ KMS_KEY_ID: 'alias/no-such-key' });
    expect(code).not.toBe(0);
    expect(checks.get('kms.key')).toMatchObject({ ok: false, detail: expect.stringMatching(/KMS_KEY_ID.*alias\/no-such-key|alias\/no-such-key.*KMS_KEY_ID/) });
    expect([...checks.values()].filter((c) => !c.ok).map((c) => c.check)).toEqual(['kms.key']);
  });

  it('a disabled KMS key: says it is disabled and to enable it', async () => {
    sandbox.kms.control.disableKey(sandbox.env.KMS_KEY_ID!);
    try {
      const { code, checks } = await check();
      expect(code).not.toBe(0);
      expect(checks.get('kms.key')).toMatchObject({ ok: false, detail: expect.stringMatching(/disabled/i) });
    } finally {
      sandbox.kms.control.enableKey(sandbox.env.KMS_KEY_ID!);
    }
  });

  it('a Salesforce login refused: names the variables to check, and the checks that need a login say so', async () => {
    const { code, checks } = await check({ SF_CLIENT_ID: 'wrong-consumer-key' });
    expect(code).not.toBe(0);
    expect(checks.get('salesforce.login')).toMatchObject({ ok: false, detail: expect.stringMatching(/SF_CLIENT_ID/) });
    expect(checks.get('salesforce.cdc')).toMatchObject({ ok: false, detail: expect.stringMatching(/login/i) });
    expect(checks.get('paubox.key')).toMatchObject({ ok: true });
    expect(checks.get('kms.key')).toMatchObject({ ok: true });
  });
});
