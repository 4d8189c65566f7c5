/**
 * The process as an operator meets it (contract §4, §7), started exactly as the Procfile
 * starts it: configuration mistakes in production end it at once with exit 78 and one
 * line naming the variable; with nothing configured it runs the sandbox and says so
 * first; an unexpected failure exits non-zero with a JSON line, never half alive; and
 * every byte it writes is a JSON line (Node's own warnings included).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { waitFor } from '../support/harness.js';
import type { Sandbox } from '../../src/sandbox/index.js';
import { fastSandbox, nonJson, procfileCommand, spawnMain, stopped, tempDir, workerEnv } from './support.js';

let sandbox: Sandbox;
const dirs: string[] = [];
beforeAll(async () => {
  sandbox = await fastSandbox();
});
afterAll(async () => {
  await sandbox?.close();
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});
const dir = () => {
  const d = tempDir();
  dirs.push(d);
  return d;
};

describe('production configuration errors', () => {
  const without = (env: Record<string, string>, ...names: string[]) =>
    Object.fromEntries(Object.entries(env).filter(([k]) => !names.includes(k)));

  const cases: Array<[string, () => Record<string, string>, string]> = [
    ['nothing configured (NODE_ENV=production)', () => ({ NODE_ENV: 'production' }), 'SF_CLIENT_ID'],
    ['no Paubox key on a dyno', () => ({ ...without(sandbox.env, 'PAUBOX_API_KEY'), DYNO: 'worker.1' }), 'PAUBOX_API_KEY'],
    ['no KMS key', () => ({ ...without(sandbox.env, 'KMS_KEY_ID'), NODE_ENV: 'production' }), 'KMS_KEY_ID'],
    ['a poll interval in words', () => ({ ...sandbox.env, NODE_ENV: 'production', POLL_INTERVAL_MS: 'soon' }), 'POLL_INTERVAL_MS'],
    ['plain http to a real host', () => ({ ...sandbox.env, NODE_ENV: 'production', SF_LOGIN_URL: 'http://login.salesforce.com' }), 'SF_LOGIN_URL'],
    ['a private key that is not PEM', () => ({ ...sandbox.env, DYNO: 'worker.1', SF_PRIVATE_KEY: 'not a key' }), 'SF_PRIVATE_KEY'],
    ['an unknown log level', () => ({ ...sandbox.env, NODE_ENV: 'production', LOG_LEVEL: 'loud' }), 'LOG_LEVEL'],
    ['a key alias and no region', () => ({ ...without(sandbox.env, 'AWS_REGION'), NODE_ENV: 'production' }), 'AWS_REGION'],
  ];

  it.each(cases)('%s: exit 78 with one line naming the variable', async (_name, env, variable) => {
    const w = spawnMain({ ...env(), DATA_DIR: dir() });
    expect(await w.exited).toBe(78);
    expect(nonJson(w)).toEqual([]);
    expect(w.logs.lines).toHaveLength(1);
    const [line] = w.logs.lines;
    expect(line).toMatchObject({ level: 'fatal', event: 'config.invalid', variable });
    expect(String(line!.msg)).toContain(variable);
  });
});

describe('starting', () => {
  it('with nothing configured outside production, runs the sandbox and says so in its first line', async () => {
    const w = spawnMain({ DATA_DIR: dir() });
    try {
      await waitFor(() => w.logs.events('worker.started').length > 0, 'the worker on the sandbox');
      expect(w.logs.lines[0]).toMatchObject({ event: 'sandbox.starting', msg: expect.stringMatching(/sandbox/i) });
      expect(w.logs.events('worker.started')[0]).toMatchObject({ sandbox: true });
    } finally {
      expect(await stopped(w)).toBe(0);
    }
    expect(nonJson(w)).toEqual([]);
  });

  it('writes only JSON lines: Node warnings (the AWS SDK version notice) become node.warning lines', async () => {
    const w = spawnMain(workerEnv(sandbox, dir()));
    await waitFor(() => w.logs.events('worker.started').length > 0, 'worker.started');
    expect(await stopped(w)).toBe(0);
    expect(nonJson(w)).toEqual([]);
    // Node 20 is below the SDK's next floor, so the notice is there to be routed.
    if (Number(process.versions.node.split('.')[0]) < 22) {
      expect(w.logs.events('node.warning').map((l) => String(l.msg))).toEqual([expect.stringContaining('NodeVersionSupportWarning')]);
    }
  });

  it('npm start runs exactly the Procfile command', async () => {
    const { readFileSync } = await import('node:fs');
    const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { scripts: { start: string } };
    expect(pkg.scripts.start.split(/\s+/)).toEqual(procfileCommand());
  });
});

describe('an unexpected failure', () => {
  it('exits non-zero with a JSON line when DATA_DIR cannot be created, rather than running half alive', async () => {
    // A DATA_DIR under a regular file: no mkdir can succeed there, whoever runs the test.
    const file = join(dir(), 'not-a-directory');
    writeFileSync(file, '');
    const w = spawnMain(workerEnv(sandbox, join(file, 'data')));
    const code = await w.exited;
    expect(code).not.toBe(0);
    expect(code).not.toBe(null);
    expect(nonJson(w)).toEqual([]);
    const last = w.logs.lines.at(-1)!;
    expect(last).toMatchObject({ level: 'fatal', event: 'worker.crashed', err: expect.objectContaining({ code: 'ENOTDIR' }) });
    expect(w.logs.events('worker.started')).toEqual([]);
  });
});
