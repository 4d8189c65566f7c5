/**
 * DATA_DIR unwritable (a path under a regular file: what a read-only or wrong mount looks
 * like even to root). The worker cannot keep its journal, so it must not send (sending
 * without the journal would lose the "at most once" guard); it must say why, naming
 * DATA_DIR, and the queued messages stay Queued for a worker that can, not lost.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, expect, it } from 'vitest';
import { startSandbox, type Sandbox } from '../../src/sandbox/index.js';
import { FAST_ENV, FAST_SANDBOX, spawnWorker, waitFor, type WorkerProcess } from '../support/harness.js';
import { allFinal, printRow, queueBurst, sleep, tally } from './support.js';

const dir = mkdtempSync(join(tmpdir(), 'sdt-rel-datadir-'));
let sandbox: Sandbox | undefined;
const children: WorkerProcess[] = [];
afterAll(async () => {
  for (const c of children) (c.kill('SIGKILL'), await c.exited);
  await sandbox?.close();
  rmSync(dir, { recursive: true, force: true });
});

it('does not send without a writable DATA_DIR, says so, and a worker that has one sends everything once', async () => {
  sandbox = await startSandbox(FAST_SANDBOX);
  const sb = sandbox;
  writeFileSync(join(dir, 'not-a-dir'), '');
  const burst = queueBurst(sb, 'datadir', 20);
  const bad = spawnWorker({ ...sb.env, ...FAST_ENV, LOG_LEVEL: 'info', DATA_DIR: join(dir, 'not-a-dir', 'data') });
  children.push(bad);
  const code = await Promise.race([bad.exited, sleep(8000).then(() => 'running' as const)]);
  const said = bad.logs.lines.filter((l) => /DATA_DIR|ENOTDIR|data dir/i.test(JSON.stringify(l)));
  expect(sb.paubox.accepted()).toEqual([]);
  const started = Date.now();
  children.push(spawnWorker({ ...sb.env, ...FAST_ENV, LOG_LEVEL: 'info', DATA_DIR: join(dir, 'good') }));
  await waitFor(() => allFinal(sb, [burst]), 'sent by a worker with a writable DATA_DIR', 30_000, 200);
  const t = tally(sb, [burst]);
  printRow({ scenario: 'DATA_DIR unwritable (start)', tally: t, recoverMs: Date.now() - started, note: `bad worker: ${code === 'running' ? 'stayed up' : `exit ${code}`}; ${said.length} log lines name it` });
  expect(said.length, 'a log line names DATA_DIR or the error').toBeGreaterThan(0);
  expect(t.lostIds).toEqual([]);
  expect(t.twiceIds).toEqual([]);
}, 60_000);
