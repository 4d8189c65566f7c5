import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

/**
 * What Heroku reads to create the app (app.json) and run it (Procfile), against the
 * contract: every configuration variable of §4 is offered, secrets are never pre-filled,
 * and the dyno runs the same command as `npm start` (§7).
 */

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const CONTRACT = '/work/shared/contract.md';

interface EnvVar { description?: string; required?: boolean; value?: unknown; generator?: string }
interface AppJson { name?: string; description?: string; repository?: string; buildpacks?: Array<{ url: string }>; formation?: Record<string, { quantity: number; size?: string }>; env?: Record<string, EnvVar> }

const app = JSON.parse(readFileSync(path.join(ROOT, 'app.json'), 'utf8')) as AppJson;
const env = app.env ?? {};

/** Contract §4 as of writing, used where the contract file is not around. */
const FALLBACK: Array<{ names: string[]; default?: string }> = [
  { names: ['SF_LOGIN_URL'], default: 'https://login.salesforce.com' }, { names: ['SF_CLIENT_ID'] }, { names: ['SF_USERNAME'] },
  { names: ['SF_PRIVATE_KEY', 'SF_PRIVATE_KEY_FILE'] }, { names: ['SF_PASSWORD', 'SF_CLIENT_SECRET'] }, { names: ['SF_CLIENT_SECRET'] },
  { names: ['SF_API_VERSION'] }, { names: ['PAUBOX_API_KEY'] }, { names: ['PAUBOX_API_USERNAME'] }, { names: ['PAUBOX_BASE_URL'] },
  { names: ['KMS_KEY_ID'] }, { names: ['AWS_REGION', 'AWS_ACCESS_KEY_ID', 'AWS_SECRET_ACCESS_KEY', 'AWS_ENDPOINT_URL_KMS'] },
  { names: ['DATA_DIR'], default: './data' }, { names: ['POLL_INTERVAL_MS'], default: '12000' }, { names: ['OPEN_TRACKING_HOURS'], default: '24' },
  { names: ['RECONCILE_INTERVAL_MS'], default: '60000' }, { names: ['CLAIM_LEASE_MS'], default: '120000' }, { names: ['LOG_LEVEL'], default: 'info' },
];

/**
 * The rows of the contract's §4 table: the variables its first cell names, and its default
 * when the default cell is one literal (`12000`), not prose ("SDK defaults", "a current version").
 */
function contractVariables(): Array<{ names: string[]; default?: string }> {
  if (!existsSync(CONTRACT)) return FALLBACK;
  const text = readFileSync(CONTRACT, 'utf8');
  const section = text.slice(text.search(/^## 4\./m)).split(/^## (?!4\.)/m)[0]!;
  return section.split('\n')
    .filter((line) => /^\|\s*`/.test(line))
    .map((line) => {
      const [name = '', dflt = ''] = line.split('|').slice(1).map((c) => c.trim());
      const literal = /^`([^`]+)`$/.exec(dflt);
      return { names: [...name.matchAll(/`([A-Z][A-Z0-9_]+)`/g)].map((m) => m[1]!), ...(literal ? { default: literal[1] } : {}) };
    });
}

const SECRETS = ['SF_PRIVATE_KEY', 'SF_PASSWORD', 'SF_CLIENT_SECRET', 'PAUBOX_API_KEY', 'AWS_SECRET_ACCESS_KEY'];

describe('app.json', () => {
  const rows = contractVariables();

  it('reads the contract table (or its copy) completely', () => {
    const names = rows.flatMap((r) => r.names);
    expect(names).toEqual(expect.arrayContaining(['SF_LOGIN_URL', 'SF_PRIVATE_KEY_FILE', 'AWS_SECRET_ACCESS_KEY', 'CLAIM_LEASE_MS', 'LOG_LEVEL']));
    expect(names.length).toBeGreaterThanOrEqual(23);
  });

  it.runIf(existsSync(CONTRACT))('keeps its copy of the table equal to the contract', () => {
    expect(rows).toEqual(FALLBACK);
  });

  it('offers every variable of contract §4, each described and marked required or not', () => {
    for (const name of new Set(rows.flatMap((r) => r.names))) {
      expect(env, name).toHaveProperty([name]);
      expect(env[name]!.description?.length ?? 0, name).toBeGreaterThan(10);
      expect(typeof env[name]!.required, `${name}.required (Heroku assumes true when absent)`).toBe('boolean');
    }
  });

  it('pre-fills the contract\'s defaults, as strings', () => {
    for (const row of rows.filter((r) => r.default !== undefined)) {
      for (const name of row.names) expect(env[name]!.value, name).toBe(row.default);
    }
    for (const [name, v] of Object.entries(env)) if (v.value !== undefined) expect(typeof v.value, name).toBe('string');
  });

  it('never pre-fills or generates a secret', () => {
    for (const name of SECRETS) {
      expect(env[name], name).toBeDefined();
      expect(env[name]!.value, name).toBeUndefined();
      expect(env[name]!.generator, name).toBeUndefined();
    }
  });

  it('requires what the worker cannot start without, and runs in production', () => {
    for (const name of ['SF_CLIENT_ID', 'PAUBOX_API_KEY', 'KMS_KEY_ID']) expect(env[name]!.required, name).toBe(true);
    expect(env.NODE_ENV).toMatchObject({ value: 'production' });
  });

  it('is a named, repository-less Node.js app with exactly one worker dyno and no web dyno', () => {
    expect(app.name).toBeTruthy();
    expect(app.description).toBeTruthy();
    expect(app).not.toHaveProperty('repository');
    expect(app.buildpacks).toEqual([{ url: 'heroku/nodejs' }]);
    expect(app.formation).toEqual({ worker: { quantity: 1, size: 'basic' } });
  });
});

describe('Procfile', () => {
  const procfile = readFileSync(path.join(ROOT, 'Procfile'), 'utf8');
  const processes = Object.fromEntries(procfile.split('\n').filter((l) => l.trim() && !l.startsWith('#'))
    .map((l) => [l.slice(0, l.indexOf(':')).trim(), l.slice(l.indexOf(':') + 1).trim()]));
  const pkg = JSON.parse(readFileSync(path.join(ROOT, 'package.json'), 'utf8')) as { scripts: Record<string, string> };

  it('runs as worker exactly what `npm start` runs', () => {
    expect(processes.worker).toBeTruthy();
    expect(processes.worker).toBe(pkg.scripts.start);
  });

  it('declares the process types app.json forms, and no other', () => {
    expect(Object.keys(processes).sort()).toEqual(Object.keys(app.formation ?? {}).sort());
  });
});
