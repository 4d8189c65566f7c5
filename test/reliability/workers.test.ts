/**
 * Several workers: three worker processes (as the Procfile runs them, each with its own
 * DATA_DIR) on one org share a burst; every message goes out exactly once. The row also
 * reports how many CometD subscriptions they held: each one spends the org's daily event
 * deliveries.
 *
 * Allocation exhausted: the org starts answering `403::Organization total events daily
 * limit exceeded` mid-burst; messages keep going out through reconciliation.
 */
import { afterEach, expect, it } from 'vitest';
import { CHANGE_CHANNEL } from '../../src/domain/record.js';
import { spawnWorker, startStack, waitFor, type Stack, type WorkerProcess } from '../support/harness.js';
import { allFinal, printRow, queueBurst, scale, sleep, tally } from './support.js';

let stack: Stack | undefined;
const children: WorkerProcess[] = [];
afterEach(async () => {
  for (const c of children.splice(0)) (c.kill('SIGKILL'), await c.exited);
  await stack?.close();
  stack = undefined;
});

it('three worker processes send a burst exactly once', async () => {
  const N = scale(3000, 10_000);
  stack = await startStack();
  const s = stack;
  // As Heroku runs them: dynos worker.1..3. Only worker.1 subscribes (CDC_SUBSCRIBE=auto);
  // the others send from the reconcile sweep, so the org spends one delivery per event.
  const env = (n: number) => ({ ...s.env, LOG_LEVEL: 'info', DATA_DIR: `${s.dataDir}/w${n}`, DYNO: `worker.${n}` });
  children.push(spawnWorker(env(1)), spawnWorker(env(2)), spawnWorker(env(3)));
  await waitFor(() => children[0]!.logs.events('stream.subscribed').length > 0, 'worker.1 subscribed', 20_000);
  await waitFor(() => children.slice(1).every((c) => c.logs.events('stream.disabled').length > 0), 'the others not subscribing', 20_000);
  const subscriptions = s.sandbox.org.cometd.subscriptions()[CHANGE_CHANNEL] ?? 0;
  expect(subscriptions).toBe(1);
  const deliveriesBefore = s.sandbox.org.cometd.deliveries();
  const started = Date.now();
  const burst = queueBurst(s.sandbox, 'trio', N);
  await waitFor(() => allFinal(s.sandbox, [burst]), 'every message final', scale(120_000, 600_000), 250);
  const recoverMs = Date.now() - started;
  await sleep(2500); // a few more sweeps: a late duplicate would show here
  const t = tally(s.sandbox, [burst]);
  const share = children.map((c) => c.logs.events('message.sent').length);
  const deliveries = s.sandbox.org.cometd.deliveries() - deliveriesBefore;
  printRow({
    scenario: 'three workers', tally: t, recoverMs,
    note: `${subscriptions} CometD subscriptions, ${deliveries} event deliveries for ${N} records; sends per worker ${share.join('/')}`,
  });
  expect(t.lostIds).toEqual([]);
  expect(t.twiceIds).toEqual([]);
  expect(t.failed).toBe(0);
  expect(children.every((c) => c.logs.events('worker.crashed').length === 0)).toBe(true);
}, scale(170_000, 900_000));

it('keeps sending through reconciliation when the org says the daily event allocation is exhausted', async () => {
  const N = scale(200, 2000);
  stack = await startStack({ env: { LOG_LEVEL: 'info' } });
  const s = stack;
  await s.startWorker();
  await waitFor(() => s.logs.events('stream.subscribed').length > 0, 'subscribed');
  // The allocation runs out partway through the first half: 10 more deliveries, then 403.
  s.sandbox.org.cometd.setDailyDeliveryLimit(s.sandbox.org.cometd.deliveries() + 10);
  const first = queueBurst(s.sandbox, 'alloc-a', N / 2);
  const started = Date.now();
  await waitFor(() => s.logs.events('stream.unavailable').length > 0, 'the worker noticed the exhausted allocation', 30_000, 100);
  const second = queueBurst(s.sandbox, 'alloc-b', N / 2);
  await waitFor(() => allFinal(s.sandbox, [first, second]), 'every message final', scale(60_000, 300_000), 250);
  const recoverMs = Date.now() - started;
  const t = tally(s.sandbox, [first, second]);
  const down = s.logs.events('stream.unavailable');
  printRow({ scenario: 'event allocation exhausted', tally: t, recoverMs, note: `${down.length} stream.unavailable (daily-event-limit) logged` });
  expect(down[0]).toMatchObject({ reason: 'daily-event-limit' });
  expect(t.lostIds).toEqual([]);
  expect(t.twiceIds).toEqual([]);
  expect(t.failed).toBe(0);
}, scale(90_000, 400_000));
