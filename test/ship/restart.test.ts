/**
 * Restarts as Heroku does them: SIGTERM (contract §7) in the middle of a burst, and a dyno
 * that comes back with an empty disk. Salesforce is the truth, so neither may lose a
 * message or send one twice; what DATA_DIR held (journal, checkpoint, receipt schedule,
 * spool) is cached state that the next worker rebuilds from the org.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { existsSync, rmSync } from 'node:fs';
import { acceptedCountBySubject, queue, record, statusOf, waitFor } from '../support/harness.js';
import type { Sandbox } from '../../src/sandbox/index.js';
import { fastSandbox, nonJson, spawnMain, stopped, tempDir, workerEnv } from './support.js';

const HANDED_BACK = /Handed back at worker shutdown/;

let sandbox: Sandbox;
let dataDir: string;
beforeEach(async () => {
  sandbox = await fastSandbox();
  dataDir = tempDir();
});
afterEach(async () => {
  await sandbox?.close();
  rmSync(dataDir, { recursive: true, force: true });
});

const burst = (n: number, prefix: string, to?: (i: number) => string) =>
  queue(sandbox, ...Array.from({ length: n }, (_, i) => ({ Subject__c: `${prefix} ${i}`, ...(to ? { To_Address__c: to(i) } : {}) })));

/** Each record accepted by Paubox exactly once, by its subject. */
function sentOnce(prefix: string, n: number): void {
  const counts = acceptedCountBySubject(sandbox);
  const mine = [...counts].filter(([subject]) => subject.startsWith(`${prefix} `));
  expect(mine.filter(([, c]) => c !== 1)).toEqual([]);
  expect(mine).toHaveLength(n);
}

/**
 * A worker that has sent some records and is retrying a Paubox outage for the rest when
 * SIGTERM comes: the in-flight sends are cut short and handed back.
 */
async function stopMidBurst(prefix: string, n: number, to?: (i: number) => string): Promise<{ ids: string[]; code: unknown; first: ReturnType<typeof spawnMain> }> {
  sandbox.paubox.control.setLatency(200);
  const early = burst(Math.floor(n / 3), `${prefix}`, to);
  const first = spawnMain(workerEnv(sandbox, dataDir));
  await waitFor(() => statusOf(sandbox, early).every((s) => s === 'Sent'), 'the first third sent', 30_000);
  sandbox.paubox.control.outage(503);
  const late = queue(sandbox, ...Array.from({ length: n - early.length }, (_, i) => ({
    Subject__c: `${prefix} ${early.length + i}`, ...(to ? { To_Address__c: to(early.length + i) } : {}),
  })));
  await waitFor(() => first.logs.events('paubox.retry').length > 0, 'retrying the outage', 30_000);
  first.kill('SIGTERM');
  const code = await Promise.race([first.exited, new Promise((r) => setTimeout(() => r('still running after 25 s'), 25_000))]);
  sandbox.paubox.control.outage(null);
  return { ids: [...early, ...late], code, first };
}

describe('SIGTERM mid-burst', () => {
  it('exits 0 within the budget, leaves every record Sent or handed back Queued, and a new worker sends the rest once', async () => {
    const { ids, code, first } = await stopMidBurst('burst', 240);
    expect(code).toBe(0);
    expect(nonJson(first)).toEqual([]);
    expect(first.logs.lines.at(-1)).toMatchObject({ event: 'worker.stopped' });

    // Nothing left half done: Sent, or Queued again saying why; no Sending, no Failed.
    const after = ids.map((id) => record(sandbox, id));
    const sent = after.filter((r) => r.Status__c === 'Sent' || r.Status__c === 'Delivered');
    const rest = after.filter((r) => !sent.includes(r));
    expect(sent.length).toBeGreaterThan(0);
    expect(rest.length).toBeGreaterThan(0); // it really was stopped mid-burst
    expect(rest.filter((r) => r.Status__c !== 'Queued')).toEqual([]);
    const handedBack = rest.filter((r) => HANDED_BACK.test(String(r.Error__c ?? '')));
    expect(handedBack.length).toBe(first.logs.events('message.handed_back').length);
    expect(handedBack.length).toBeGreaterThan(0);
    const open = sandbox.org.query("SELECT Outcome__c FROM Secure_Email_Attempt__c WHERE Outcome__c IN ('Claimed', 'Posting', 'Unknown')");
    expect(open).toEqual([]);

    const second = spawnMain(workerEnv(sandbox, dataDir));
    try {
      await waitFor(() => statusOf(sandbox, ids).every((s) => s === 'Sent' || s === 'Delivered'), 'all sent', 60_000);
    } finally {
      await waitFor(() => second.logs.events('worker.started').length > 0, 'second worker started');
      expect(await stopped(second)).toBe(0);
    }
    sentOnce('burst', ids.length);
  }, 120_000);
});

describe('a lost DATA_DIR', () => {
  it('between two runs, with sends in flight and receipts pending, loses and duplicates nothing, and rebuilds the receipts', async () => {
    // portal… recipients stay non-final for a minute of sandbox time: receipts pending.
    const { ids, code } = await stopMidBurst('disk', 120, (i) => `portal${i}@example.org`);
    expect(code).toBe(0);
    const sentBefore = statusOf(sandbox, ids).filter((s) => s === 'Sent').length;
    expect(sentBefore).toBeGreaterThan(0);
    expect(sentBefore).toBeLessThan(ids.length);

    // The dyno's disk is gone: journal, checkpoint, receipt schedule and spool.
    rmSync(dataDir, { recursive: true, force: true });
    expect(existsSync(dataDir)).toBe(false);

    const second = spawnMain(workerEnv(sandbox, dataDir));
    try {
      await waitFor(() => second.logs.events('receipts.rebuilt').length > 0, 'receipts rebuilt');
      expect(second.logs.events('receipts.rebuilt')[0]).toMatchObject({ messages: sentBefore });
      await waitFor(() => statusOf(sandbox, ids).every((s) => s === 'Sent'), 'all sent', 60_000);
      // A minute later (sandbox time) every portal delivery is final.
      sandbox.clock.advance(61_000);
      await waitFor(() => statusOf(sandbox, ids).every((s) => s === 'Delivered'), 'all delivered', 60_000);
    } finally {
      await waitFor(() => second.logs.events('worker.started').length > 0, 'second worker started');
      expect(await stopped(second)).toBe(0);
    }
    sentOnce('disk', ids.length);
    expect(existsSync(dataDir)).toBe(true);
  }, 180_000);
});
