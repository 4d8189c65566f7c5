/**
 * What receipt polling costs with 1,000 messages in flight, at the default settings
 * (POLL_INTERVAL_MS 12 s, OPEN_TRACKING_HOURS 24, 50 reads/s): the real ReceiptPoller, its
 * SQLite store and envelope, over HTTP to the sandbox Paubox and org. Its clock is the
 * sandbox clock, pushed to the next due read after every round, so 25 hours pass in
 * seconds; every read and write is a real call, counted by the sandbox servers.
 * Prints the figures; asserts they stay far below one read per message per poll interval.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { lastValueFrom, asyncScheduler, type SchedulerLike } from 'rxjs';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { startSandbox, type Sandbox } from '../../src/sandbox/index.js';
import { loadConfig } from '../../src/config.js';
import { createLogger } from '../../src/log.js';
import { openSqliteStore, type Store } from '../../src/store/store.js';
import { Envelope, kmsKeyring, createKmsClient } from '../../src/crypto/envelope.js';
import { connectSalesforce } from '../../src/salesforce/connection.js';
import { salesforceRecords, type MessageUpdate } from '../../src/salesforce/records.js';
import { createPauboxClient } from '../../src/paubox/client.js';
import { ReceiptPoller, type SentMessage } from '../../src/pipeline/receipts.js';
import { openTrackingPollCount } from '../../src/domain/schedule.js';
import type { PauboxMessage } from '../../src/paubox/types.js';

const HOUR = 3600_000;
/** Recipients by kind (address conventions of src/sandbox/paubox-receipts.ts). */
const MIX: Array<[kind: string, count: number, to: (i: number) => string[]]> = [
  ['delivered, never opened', 500, (i) => [`pat${i}@example.org`]],
  ['opened 1 min after delivery', 150, (i) => [`open${i}@example.org`]],
  ['hard bounce', 100, (i) => [`bounce${i}@example.org`]],
  ['secure portal (60 s)', 100, (i) => [`portal${i}@example.org`]],
  ['soft bounce, delivered at 30 min', 50, (i) => [`softok${i}@example.org`]],
  ['mixed: one bounces', 100, (i) => [`a${i}@example.org`, `bouncex${i}@example.org`]],
];

let sandbox: Sandbox;
let dir: string;
let store: Store;
let envelope: Envelope;
beforeAll(async () => {
  sandbox = await startSandbox();
  dir = mkdtempSync(join(tmpdir(), 'sdt-economy-'));
});
afterAll(async () => {
  envelope?.close();
  await store?.close();
  await sandbox?.close();
  rmSync(dir, { recursive: true, force: true });
});

it('1,000 messages in flight: receipt reads per message until final, Salesforce calls per merged status', async () => {
  const cfg = loadConfig({ ...sandbox.env, DATA_DIR: dir }, { sandbox: true });
  expect([cfg.pollIntervalMs, cfg.openTrackingHours]).toEqual([12_000, 24]);
  store = await openSqliteStore(dir);
  envelope = new Envelope(kmsKeyring({ keyId: cfg.kms.keyId, client: createKmsClient({ region: cfg.kms.region, ...(cfg.kms.endpoint ? { endpoint: cfg.kms.endpoint } : {}) }) }));
  const sf = salesforceRecords((await connectSalesforce(cfg)).conn);
  const paubox = createPauboxClient({ baseUrl: cfg.paubox.baseUrl, apiKey: cfg.paubox.apiKey });
  const clock = sandbox.clock;

  // Send the 1,000 through Paubox (bulk, 50 a call) and record them as the send pipeline does.
  const kindOf = new Map<string, string>();
  const sent: SentMessage[] = [];
  const messages = MIX.flatMap(([kind, n, to]) => Array.from({ length: n }, (_, i) => ({ kind, recipients: to(i) })));
  for (let i = 0; i < messages.length; i += 50) {
    const part = messages.slice(i, i + 50);
    const results = await paubox.sendBulk(part.map((m): PauboxMessage => ({
      recipients: m.recipients, headers: { subject: 'Results', from: 'care@clinic.example' },
      content: { 'text/plain': 'Fine.' }, allowNonTLS: false, forceSecureNotification: false,
    })));
    const sentAt = clock.now();
    results.forEach((r, j) => {
      if (!r.ok) throw r.error;
      const recordId = sandbox.org.insert('Secure_EmailMessage__c', {
        Status__c: 'Sent', To_Address__c: part[j]!.recipients.join(', '), From_Address__c: 'care@clinic.example',
        Subject__c: 'Results', Text_Body__c: 'Fine.', Tracking_Id__c: r.trackingId, Sent_At__c: new Date(sentAt).toISOString(), Attempts__c: 1,
      });
      kindOf.set(recordId, part[j]!.kind);
      sent.push({ recordId, trackingId: r.trackingId, sentAt, singleRecipient: part[j]!.recipients.length === 1 });
    });
  }

  // Count reads per message, and the reads it took until its status became final.
  const reads = new Map<string, number>();
  const readsUntilFinal = new Map<string, number>();
  const trackingOf = new Map(sent.map((s) => [s.recordId, s.trackingId]));
  let finalStatuses = 0;
  let mergedRecords = 0;
  const sandboxTime: SchedulerLike = { now: () => clock.now(), schedule: asyncScheduler.schedule.bind(asyncScheduler) };
  const poller = new ReceiptPoller({
    store, envelope, log: createLogger('silent'), scheduler: sandboxTime,
    pollIntervalMs: cfg.pollIntervalMs, openTrackingHours: cfg.openTrackingHours, softBounceGiveUpMs: cfg.softBounceGiveUpMs,
    paubox: { receipt: (id) => (reads.set(id, (reads.get(id) ?? 0) + 1), paubox.receipt(id)) },
    sf: {
      findAwaitingReceipts: (since, limit) => sf.findAwaitingReceipts(since, limit),
      async updateMessages(rows: MessageUpdate[]) {
        const results = await sf.updateMessages(rows);
        rows.forEach((r, i) => {
          if (!results[i]?.ok) return;
          mergedRecords++;
          if (r.Status__c && r.Status__c !== 'Sent') {
            finalStatuses++;
            readsUntilFinal.set(r.Id, reads.get(trackingOf.get(r.Id)!) ?? 0);
          }
        });
        return results;
      },
    },
  });
  await poller.track(sent);
  const start = clock.now();
  const sfBefore = sandbox.org.counter.get('rest.collections.update');
  for (let rounds = 0; rounds < 20_000; rounds++) {
    await lastValueFrom(poller.round());
    const [next] = await store.receipts.due(Number.MAX_SAFE_INTEGER, 1);
    if (!next) break;
    clock.advance(Math.max(1000, next.nextPollAt - clock.now())); // one tick, or straight to the next due read
  }
  const elapsedH = (clock.now() - start) / HOUR;
  const sfWrites = sandbox.org.counter.get('rest.collections.update') - sfBefore;

  // The table.
  const rows = MIX.map(([kind]) => {
    const ids = [...kindOf].filter(([, k]) => k === kind).map(([id]) => id);
    const total = ids.map((id) => reads.get(trackingOf.get(id)!) ?? 0);
    const untilFinal = ids.map((id) => readsUntilFinal.get(id) ?? NaN);
    const avg = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
    return { kind, messages: ids.length, 'reads until final (avg/max)': `${avg(untilFinal).toFixed(2)} / ${Math.max(...untilFinal)}`,
      'reads after final (avg)': +(avg(total) - avg(untilFinal)).toFixed(2), 'reads in all (avg)': +avg(total).toFixed(2) };
  });
  const totalReads = [...reads.values()].reduce((a, b) => a + b, 0);
  const naive = sent.length * Math.ceil((cfg.openTrackingHours * HOUR) / cfg.pollIntervalMs);
  console.log(`\nReceipt polling, ${sent.length} messages, ${elapsedH.toFixed(1)} h on the sandbox clock`);
  console.table(rows);
  console.log([
    `message_receipt calls: ${totalReads} (${(totalReads / sent.length).toFixed(1)}/message); one read per message per`
      + ` ${cfg.pollIntervalMs / 1000} s tick for ${cfg.openTrackingHours} h would be ${naive} (${((100 * totalReads) / naive).toFixed(2)}%)`,
    `open tracking: ${openTrackingPollCount(cfg.openTrackingHours)} reads at most per single-recipient message never opened`,
    `Salesforce: ${sfWrites} sObject Collections calls for ${finalStatuses} final statuses (${(sfWrites / finalStatuses).toFixed(3)} per status)`
      + ` and ${mergedRecords} record updates in all (${(sfWrites / mergedRecords).toFixed(3)} per update)`,
  ].join('\n'));

  expect(finalStatuses).toBe(sent.length);
  expect(await store.receipts.count()).toBe(0);
  const byKind = Object.fromEntries(rows.map((r) => [r.kind, r]));
  expect(byKind['delivered, never opened']!['reads after final (avg)']).toBe(openTrackingPollCount(24));
  expect(byKind['hard bounce']!['reads after final (avg)']).toBe(0);
  expect(byKind['mixed: one bounces']!['reads after final (avg)']).toBe(0);
  expect(totalReads).toBeLessThan(naive / 100);
  expect(sfWrites / finalStatuses).toBeLessThan(0.2);
}, 60_000);
