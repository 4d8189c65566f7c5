/**
 * Outages: each outside service fails in the ways it is known to, while a burst is going
 * out. Each scenario ends with every message final (or still being retried), none lost,
 * none sent twice, the worker alive (a message queued after the fault still goes out) and
 * the fault named in its logs.
 *
 * Durations: the soak run uses the (REST down 30 s, Paubox 503 for 60 s, …); the
 * quick run in `npm test` shortens each fault to a few seconds and says so in its row.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { startStack, waitFor, type Stack, type LogLine } from '../support/harness.js';
import { allFinal, printRow, queueBurst, scale, sleep, tally, type Burst } from './support.js';

let stack: Stack | undefined;
afterEach(async () => {
  await stack?.close();
  stack = undefined;
});

const N = scale(40, 400);
const TIMEOUT = scale(60_000, 600_000);

interface Outage {
  name: string;
  faultMs: number;
  inject(s: Stack): void | Promise<void>;
  heal(s: Stack): void;
  /** Log events of which at least one must appear while the fault lasts. */
  reported: string[];
  /** Records with Salesforce Files (spool → KMS). */
  withFiles?: boolean;
  env?: Record<string, string>;
  /** Repeated during the fault (e.g. connections cut again and again). */
  every?: { ms: number; act(s: Stack): void };
  /** Fault before the first message: KMS data keys are cached, so only a cold start meets KMS. */
  injectFirst?: boolean;
}

async function queueWithFiles(s: Stack, scenario: string, n: number): Promise<Burst> {
  const b = queueBurst(s.sandbox, scenario, n, () => ({ Status__c: 'Draft' }));
  for (const id of b.ids) {
    s.sandbox.org.insert('ContentVersion', {
      Title: 'results', PathOnClient: 'results.pdf', VersionData: Buffer.from(`%PDF-1.4 ${id}`).toString('base64'), FirstPublishLocationId: id,
    });
  }
  for (const id of b.ids) s.sandbox.org.update('Secure_EmailMessage__c', id, { Status__c: 'Queued' });
  return b;
}

const problems = (lines: LogLine[]) => lines.filter((l) => l.level === 'warn' || l.level === 'error' || l.level === 'fatal');

async function runOutage(o: Outage): Promise<void> {
  stack = await startStack({ env: { SEND_DEADLINE_MS: String(scale(120_000, 900_000)), LOG_LEVEL: 'info', ...o.env } });
  const s = stack;
  await s.startWorker();
  await waitFor(() => s.logs.events('stream.subscribed').length > 0, 'subscribed');
  const queueOne = (name: string, n: number) => (o.withFiles ? queueWithFiles(s, name, n) : Promise.resolve(queueBurst(s.sandbox, name, n)));
  const slug = o.name.replace(/\W+/g, '-');
  const from = s.logs.lines.length;
  if (o.injectFirst) await o.inject(s);
  const bursts: Burst[] = [await queueOne(`${slug}-before`, N / 2)];
  if (!o.injectFirst) await o.inject(s);
  const repeat = o.every ? setInterval(() => o.every!.act(s), o.every.ms) : undefined;
  bursts.push(await queueOne(`${slug}-during`, N / 2));
  await sleep(o.faultMs);
  clearInterval(repeat);
  const during = s.logs.lines.slice(from);
  o.heal(s);
  const healedAt = Date.now();
  bursts.push(await queueOne(`${slug}-after`, 2)); // the worker is alive: new work still goes out
  await waitFor(() => allFinal(s.sandbox, bursts), `${o.name}: every message final`, TIMEOUT, 200);
  const recoverMs = Date.now() - healedAt;
  await sleep(1500);
  const t = tally(s.sandbox, bursts);
  const seen = [...new Set([...problems(during), ...during.filter((l) => o.reported.includes(String(l.event)))].map((l) => String(l.event)))];
  printRow({ scenario: o.name, tally: t, recoverMs, note: `fault ${o.faultMs / 1000}s; logged: ${seen.slice(0, 4).join(', ')}` });
  expect(t.lostIds).toEqual([]);
  expect(t.twiceIds).toEqual([]);
  expect(t.wrongFailed).toBe(0);
  expect(t.failed, 'a transient outage, shorter than the send deadline, fails nothing').toBe(0);
  if (o.reported.length > 0) {
    expect(seen.filter((e) => o.reported.includes(e)), `one of ${o.reported.join(', ')} logged during the fault`).not.toEqual([]);
  }
  expect(s.logs.events('worker.crashed')).toEqual([]);
}

describe('outages', () => {
  it('Salesforce REST down', () => runOutage({
    // jsforce retries a GET for ~15 s before it reports anything: the quick run outlasts that.
    name: 'Salesforce REST down', faultMs: scale(18_000, 30_000),
    inject: (s) => s.sandbox.org.control.restOutage(true),
    heal: (s) => s.sandbox.org.control.restOutage(false),
    reported: ['reconcile.failed', 'batch.failed', 'writeback.retry', 'posting.retry', 'receipts.failed', 'stream.error', 'stream.reauth_failed'],
  }), TIMEOUT + 30_000);

  it('CometD connections dropped again and again', () => runOutage({
    name: 'CometD connections dropped', faultMs: scale(4_000, 30_000),
    inject: (s) => s.sandbox.org.cometd.forgetClients(),
    every: { ms: 700, act: (s) => (s.sandbox.org.cometd.dropConnects(), Math.random() < 0.3 && s.sandbox.org.cometd.forgetClients()) },
    heal: () => undefined,
    reported: ['stream.rehandshake', 'stream.error', 'stream.silent'],
  }), TIMEOUT + 30_000);

  it('sessions expired mid-burst', () => runOutage({
    name: 'sessions expired', faultMs: scale(3_000, 20_000),
    inject: (s) => s.sandbox.org.control.expireSessions(),
    every: { ms: 1500, act: (s) => s.sandbox.org.control.expireSessions() },
    heal: () => undefined,
    reported: ['stream.auth_expired', 'stream.rehandshake'],
  }), TIMEOUT + 30_000);

  it('a silent CometD stall', () => runOutage({
    name: 'silent stall (CometD)', faultMs: scale(6_000, 30_000),
    inject: (s) => s.sandbox.org.cometd.stall(true),
    heal: (s) => s.sandbox.org.cometd.stall(false),
    reported: ['stream.silent'],
  }), TIMEOUT + 30_000);

  it('Paubox 503', () => runOutage({
    name: 'Paubox 503', faultMs: scale(6_000, 60_000),
    inject: (s) => s.sandbox.paubox.control.outage(503),
    heal: (s) => s.sandbox.paubox.control.outage(null),
    reported: ['paubox.retry'],
  }), TIMEOUT + 30_000);

  it('Paubox 429 bursts', () => runOutage({
    name: 'Paubox 429 bursts', faultMs: scale(4_000, 30_000),
    inject: (s) => s.sandbox.paubox.control.failNext(5, 429),
    every: { ms: 1000, act: (s) => s.sandbox.paubox.control.failNext(5, 429) },
    heal: (s) => s.sandbox.paubox.control.failNext(0, 429),
    reported: ['paubox.retry', 'receipts.failed', 'receipts.throttled'],
  }), TIMEOUT + 30_000);

  it('KMS throttling', () => runOutage({
    name: 'KMS throttling', faultMs: scale(4_000, 30_000), withFiles: true, injectFirst: true,
    inject: (s) => s.sandbox.kms.control.throttleRate(0.7),
    heal: (s) => s.sandbox.kms.control.throttleRate(0),
    // Throttling at this rate is absorbed by the SDK's and the envelope's own retries: the
    // messages go out, and a retried call that succeeds is rightly not a log line.
    reported: [],
  }), TIMEOUT + 30_000);

  // Files are staged in the encrypted spool, so a message with files needs KMS: it waits
  // out the outage (retrying under a kept-alive claim) rather than failing.
  it('KMS outage', () => runOutage({
    name: 'KMS outage', faultMs: scale(12_000, 30_000), withFiles: true, injectFirst: true,
    inject: (s) => s.sandbox.kms.control.outage(true),
    heal: (s) => s.sandbox.kms.control.outage(false),
    reported: ['attachment.retry', 'attachment.failed', 'batch.failed', 'receipts.failed'],
  }), TIMEOUT + 30_000);
});
