/**
 * Crash: the worker process (started as the Procfile starts it) is SIGKILLed again and
 * again while a burst is going out, and restarted on the same DATA_DIR each time.
 *
 * Half the kills land at a random moment; the other half land the instant Paubox accepts
 * a POST, before its answer can reach the worker — between the POST and the journal write,
 * the one window where the outcome is truly unknown. That kill is fired by the test from
 * the sandbox Paubox's own call counter (test-side instrumentation of the fake service),
 * so the worker runs no test-only code path.
 *
 * Promise: nothing lost; nothing accepted twice unless the record says "Outcome unknown".
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, expect, it } from 'vitest';
import fc from 'fast-check';
import { startSandbox, type Sandbox } from '../../src/sandbox/index.js';
import { FAST_ENV, FAST_SANDBOX, spawnWorker, waitFor, type WorkerProcess } from '../support/harness.js';
import { allFinal, printRow, queueBurst, scale, sleep, tally, type Burst } from './support.js';

const KILLS = scale(20, 60);
const PER_WAVE = scale(15, 50);
const SEED = Number(process.env.REL_SEED ?? Date.now() % 1_000_000);

let sandbox: Sandbox | undefined;
let dataDir: string | undefined;
let current: WorkerProcess | undefined;
afterAll(async () => {
  current?.kill('SIGKILL');
  await current?.exited;
  await sandbox?.close();
  if (dataDir) rmSync(dataDir, { recursive: true, force: true });
});

it(`loses nothing and sends nothing twice across ${KILLS} SIGKILLs during a burst`, async () => {
  process.stdout.write(`crash: seed ${SEED} (replay with REL_SEED=${SEED})\n`);
  const rand = fc.sample(fc.integer({ min: 0, max: 1_000_000 }), { seed: SEED, numRuns: KILLS * 2 });
  sandbox = await startSandbox(FAST_SANDBOX);
  const sb = sandbox;
  dataDir = mkdtempSync(join(tmpdir(), 'sdt-rel-crash-'));
  const env = { ...sb.env, ...FAST_ENV, LOG_LEVEL: 'info', DATA_DIR: dataDir, WORKER_NAME: 'crash-worker' };
  // A little latency keeps POSTs in flight, so random kills also land mid-request.
  sb.paubox.control.setLatency(30);

  // Kill the armed worker the moment Paubox accepts a message (before it answers).
  let armed: WorkerProcess | undefined;
  let afterAccept = 0;
  const counter = sb.paubox.counter;
  const count = counter.count.bind(counter);
  counter.count = (kind: string, n?: number) => {
    count(kind, n);
    if (kind === 'paubox.accepted' && armed) {
      armed.kill('SIGKILL');
      armed = undefined;
      afterAccept++;
    }
  };

  const bursts: Burst[] = [];
  for (let k = 0; k < KILLS; k++) {
    bursts.push(queueBurst(sb, `crash-${k}`, PER_WAVE));
    const w = spawnWorker(env);
    current = w;
    if (k % 2 === 1) { // the last kill is one of these: the final restart must recover its journal
      armed = w;
      await Promise.race([w.exited, sleep(15_000)]);
      armed = undefined;
    } else {
      await sleep(300 + (rand[k]! % 2500));
    }
    w.kill('SIGKILL');
    await w.exited;
  }

  const killedAt = Date.now();
  const last = spawnWorker(env);
  current = last;
  await waitFor(() => allFinal(sb, bursts), 'every message final after the last restart', 120_000, 200);
  const recoverMs = Date.now() - killedAt;
  // A few more sweeps: a late duplicate would show up here.
  await sleep(3000);
  const t = tally(sb, bursts);
  printRow({ scenario: 'crash (SIGKILL)', tally: t, recoverMs, note: `${KILLS} kills, ${afterAccept} after Paubox accepted, seed ${SEED}` });
  expect(afterAccept).toBeGreaterThan(0);
  expect(t.lostIds).toEqual([]);
  expect(t.twiceIds).toEqual([]);
  expect(t.wrongFailed).toBe(0);
  expect(last.logs.events('worker.crashed')).toEqual([]);
}, scale(180_000, 900_000));
