import { spawn, spawnSync } from 'node:child_process';
import { existsSync, statSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import Database from 'better-sqlite3';
import { beforeAll, describe, expect, it } from 'vitest';
import { DB_FILE, openSqliteStore } from '../../src/store/store.js';
import { tempDir } from './helpers.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const fixture = path.join(root, 'test/store/fixtures/journal-writer.mjs');
const compiled = ['store', 'sqlite', 'migrations'].map((m) => path.join(root, `dist/src/store/${m}.js`));

/** The child runs the compiled store (`npm test` builds dist/ first); build it if stale. */
beforeAll(() => {
  const fresh = compiled.every((js) => existsSync(js)
    && statSync(js).mtimeMs >= statSync(js.replace(`${path.sep}dist${path.sep}`, path.sep).replace(/\.js$/, '.ts')).mtimeMs);
  if (!fresh) spawnSync('npx', ['tsc', '-p', root], { cwd: root, stdio: 'ignore' });
  for (const js of compiled) expect(existsSync(js), `${js} (run npx tsc)`).toBe(true);
}, 120_000);

/** Starts the writer, waits until it reported `atLeast` writes, SIGKILLs it mid-loop. */
function killMidWrite(dataDir: string, atLeast: number): Promise<number> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [fixture, dataDir], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    let last = 0;
    child.stdout.setEncoding('utf8').on('data', (d: string) => {
      out += d;
      const lines = out.split('\n');
      out = lines.pop() ?? '';
      for (const l of lines) last = Number(l);
      if (last >= atLeast && child.exitCode === null && !child.killed) child.kill('SIGKILL');
    });
    child.stderr.setEncoding('utf8').on('data', (d: string) => { err += d; });
    child.on('exit', (code, signal) => {
      if (signal === 'SIGKILL') resolve(last);
      else reject(new Error(`writer exited ${code}: ${err}`));
    });
  });
}

describe('crash safety', () => {
  it('a writer SIGKILLed mid-write loses at most the write in flight', async () => {
    const { dir, cleanup } = tempDir();
    try {
      for (const target of [300, 600]) {
        const acknowledged = await killMidWrite(dir, target);
        const store = await openSqliteStore(dir);
        const entries = await store.journal.byState('posting');
        // Every acknowledged write survived, at most one more (committed, not yet reported).
        expect(entries.length).toBeGreaterThanOrEqual(acknowledged);
        expect(entries.length).toBeLessThanOrEqual(acknowledged + 1);
        expect((await store.spool.get(`k${acknowledged}`))?.ciphertext).toEqual(new Uint8Array(4096).fill(7));
        await store.close();
        const db = new Database(path.join(dir, DB_FILE), { readonly: true });
        expect(db.pragma('integrity_check', { simple: true })).toBe('ok');
        db.close();
      }
    } finally {
      cleanup();
    }
  });
});
