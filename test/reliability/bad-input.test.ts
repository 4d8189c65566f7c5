/**
 * Bad input: hostile records generated with fast-check (the seed is printed; replay with
 * REL_SEED=<seed>) and malformed change events. The worker stays up and keeps sending;
 * each record that cannot be sent ends `Failed` with a clear, PHI-free `Error__c`; nothing
 * injected into a header ever reaches Paubox.
 */
import { afterAll, expect, it } from 'vitest';
import fc from 'fast-check';
import { CHANGE_CHANNEL } from '../../src/domain/record.js';
import { startStack, waitFor, type Compose, type Stack } from '../support/harness.js';
import { allFinal, marker, printRow, scale, sleep, tally, type Burst } from './support.js';

const COUNT = scale(1000, 5000);
const SEED = Number(process.env.REL_SEED ?? Date.now() % 1_000_000);
const EVIL = 'attacker.example';

let stack: Stack | undefined;
afterAll(async () => {
  await stack?.close();
});

type Kind = 'unicode' | 'huge' | 'bad-to' | 'lookalike-to' | 'inject-subject' | 'inject-from-name' | 'inject-reply-to' | 'bad-file' | 'recipients-101';
/** Kinds that can never be sent as they stand. */
const MUST_FAIL = new Set<Kind>(['bad-to', 'inject-subject', 'inject-from-name', 'recipients-101']);

const injection = fc.constantFrom('\r\nBcc: evil@attacker.example', '\nBcc: evil@attacker.example', '\rX-Evil: 1', ' \r\n\tBcc: evil@attacker.example');
const softInjection = fc.constantFrom('%0d%0aBcc: evil@attacker.example', '\u2028Bcc: evil@attacker.example', '\u0085X-Evil: 1', '\0Bcc: evil@attacker.example');
const broken = fc.constantFrom(
  'pat@@example.org', 'pat@example', 'pat@example..org', '.pat@example.org', '<pat@example.org', 'pat@example.org>',
  'pat@ex ample.org', 'p\u0000at@example.org', 'pat@example.org\r\nBcc: evil@attacker.example',
  'Undisclosed recipients:;', 'pat', '@example.org', 'pat@[300.1.1.1', '"unterminated@example.org',
);
const lookalike = fc.constantFrom('pat@exаmple.org', 'ｐａｔ@example.org', 'pat@xn--exmple-cua.org', 'pat@example.org\u200b', 'pat@éxample.org', 'PAT@EXAMPLE.ORG', 'pat@-example.org');
const text = (max: number) => fc.oneof(fc.string({ unit: 'binary', maxLength: max }), fc.string({ unit: 'grapheme', maxLength: max }));

const hostile: fc.Arbitrary<{ kind: Kind; fields: Compose }> = fc.oneof(
  fc.record({ kind: fc.constant<Kind>('unicode'), fields: fc.record({ Subject__c: text(200), Text_Body__c: text(2000), Html_Body__c: text(2000), From_Name__c: text(100) }) }),
  fc.record({ kind: fc.constant<Kind>('huge'), fields: fc.record({ Text_Body__c: fc.constantFrom('x'.repeat(131_072), '\u{1F600}'.repeat(32_768)), Html_Body__c: fc.constant(`<p>${'y'.repeat(131_000)}</p>`) }) }),
  fc.record({ kind: fc.constant<Kind>('bad-to'), fields: fc.record({ To_Address__c: broken, Cc_Address__c: fc.option(broken, { nil: undefined }) }, { requiredKeys: ['To_Address__c'] }) }),
  fc.record({ kind: fc.constant<Kind>('lookalike-to'), fields: fc.record({ To_Address__c: lookalike }) }),
  fc.record({ kind: fc.constant<Kind>('inject-subject'), fields: fc.record({ Subject__c: fc.tuple(text(20), injection).map(([a, b]) => `${a}${b}`) }) }),
  fc.record({ kind: fc.constant<Kind>('inject-from-name'), fields: fc.record({ From_Name__c: injection.map((i) => `Clinic${i}`) }) }),
  fc.record({ kind: fc.constant<Kind>('inject-reply-to'), fields: fc.record({ Reply_To__c: fc.oneof(injection, softInjection).map((i) => `replies@clinic.example${i}`), Subject__c: softInjection.map((i) => `Hello${i}`) }) }),
  fc.record({ kind: fc.constant<Kind>('bad-file'), fields: fc.constant({ Status__c: 'Draft' }) }),
  fc.record({ kind: fc.constant<Kind>('recipients-101'), fields: fc.constant({ To_Address__c: Array.from({ length: 101 }, (_, i) => `p${i}@example.org`).join(';') }) }),
);

const MALFORMED_EVENTS: unknown[] = [
  {}, { ChangeEventHeader: null }, { ChangeEventHeader: { recordIds: 'a0S000000000001AAA', changeType: 'UPDATE' } },
  { ChangeEventHeader: { entityName: 'Secure_EmailMessage__c', recordIds: [null, 42, "x' OR Id != '"], changeType: 'CREATE', changeOrigin: '' }, Status__c: 'Queued' },
  { ChangeEventHeader: { entityName: 'Secure_EmailMessage__c', recordIds: ['a0S000000000001AAA'], changeType: 'NOT_A_TYPE', changeOrigin: '' }, Status__c: 'Queued' },
  { ChangeEventHeader: { entityName: 'Secure_EmailMessage__c', recordIds: Array.from({ length: 5000 }, () => 'a0S000000000001AAA'), changeType: 'UPDATE', changeOrigin: '' }, Status__c: 'Queued' },
  { ChangeEventHeader: { entityName: 'Secure_EmailMessage__c', recordIds: ['a0S000000000001AAA'], changeType: 'UPDATE', changeOrigin: '', changedFields: 'Status__c' }, Status__c: { diff: 'x' } },
  { ChangeEventHeader: { entityName: 'Secure_EmailMessage__c', recordIds: ['000000000000000AAA'], changeType: 'GAP_OVERFLOW', changeOrigin: '' } },
];

it(`stays up through ${COUNT} hostile records and malformed change events; every bad one Failed with a clear error`, async () => {
  process.stdout.write(`bad input: seed ${SEED} (replay with REL_SEED=${SEED})\n`);
  const samples = fc.sample(hostile, { seed: SEED, numRuns: COUNT });
  stack = await startStack({ env: { LOG_LEVEL: 'info' } });
  const s = stack;
  await s.startWorker();
  await waitFor(() => s.logs.events('stream.subscribed').length > 0, 'subscribed');

  const kindOf = new Map<string, Kind>();
  const burst: Burst = { scenario: 'bad', ids: [], byMarker: new Map() };
  let refusedAtInsert = 0;
  const started = Date.now();
  samples.forEach(({ kind, fields }, i) => {
    const m = marker('bad', i);
    const subject = `${m} ${fields.Subject__c ?? 'hello'}`.slice(0, 255);
    let id: string;
    try {
      id = s.sandbox.org.insert('Secure_EmailMessage__c', {
        To_Address__c: 'pat@example.org', From_Address__c: 'care@clinic.example', Text_Body__c: 'hi', Status__c: 'Queued', ...fields, Subject__c: subject,
      });
    } catch {
      refusedAtInsert++; // Salesforce's own field validation refused it (e.g. a CR/LF in an Email field)
      return;
    }
    if (kind === 'bad-file') {
      s.sandbox.org.insert('ContentVersion', { Title: 'scan', PathOnClient: 'scan.pdf', VersionData: '%%% not base64 ***', FirstPublishLocationId: id });
      s.sandbox.org.update('Secure_EmailMessage__c', id, { Status__c: 'Queued' });
    }
    kindOf.set(id, kind);
    burst.ids.push(id);
    burst.byMarker.set(m, id);
    if (i % 100 === 50) {
      for (const payload of MALFORMED_EVENTS) s.sandbox.org.events.publish(CHANGE_CHANNEL, 'bad-schema', payload as never);
    }
  });

  await waitFor(() => allFinal(s.sandbox, [burst]), 'every hostile record final', scale(120_000, 600_000), 250);
  const recoverMs = Date.now() - started;
  // Still up and still sending after all that.
  const [after] = [s.sandbox.org.insert('Secure_EmailMessage__c', {
    To_Address__c: 'pat@example.org', From_Address__c: 'care@clinic.example', Text_Body__c: 'hi', Status__c: 'Queued', Subject__c: `${marker('bad', COUNT)} after`,
  })];
  burst.ids.push(after!);
  burst.byMarker.set(marker('bad', COUNT), after!);
  await waitFor(() => s.sandbox.org.get('Secure_EmailMessage__c', after!)?.Status__c === 'Sent', 'a good record after the storm');
  await sleep(500);

  const t = tally(s.sandbox, [burst]);
  const problems: string[] = [];
  for (const [id, kind] of kindOf) {
    const rec = s.sandbox.org.get('Secure_EmailMessage__c', id)!;
    const err = String(rec.Error__c ?? '');
    if (MUST_FAIL.has(kind) && rec.Status__c !== 'Failed') problems.push(`${kind} ${id} is ${String(rec.Status__c)}: ${JSON.stringify([rec.To_Address__c, rec.Cc_Address__c])}`);
    if (rec.Status__c === 'Failed' && (!err || err.length > 255 || /[\r\n]/.test(err) || /@|attacker/.test(err))) {
      problems.push(`${kind} ${id} has an unclear or PHI-bearing Error__c: ${JSON.stringify(err.slice(0, 80))}`);
    }
  }
  for (const a of s.sandbox.paubox.accepted()) {
    const m = a.message as { recipients?: string[]; cc?: string[]; bcc?: string[]; headers?: Record<string, string> };
    const addresses = [...(m.recipients ?? []), ...(m.cc ?? []), ...(m.bcc ?? [])].join(' ');
    if (addresses.includes(EVIL)) problems.push(`an injected recipient reached Paubox: ${a.sourceTrackingId}`);
    for (const [k, v] of Object.entries(m.headers ?? {})) {
      if (/[\r\n]/.test(String(v)) || /evil/i.test(k)) problems.push(`header ${k} carries a line break or injected name (${a.sourceTrackingId})`);
    }
  }
  const failedKinds = [...kindOf].filter(([id]) => s.sandbox.org.get('Secure_EmailMessage__c', id)?.Status__c === 'Failed').length;
  printRow({ scenario: 'bad input (fast-check)', tally: t, recoverMs, note: `seed ${SEED}; ${refusedAtInsert} refused by Salesforce at insert; ${failedKinds} Failed; ${MALFORMED_EVENTS.length * Math.ceil(COUNT / 100)} malformed events` });
  expect(problems.slice(0, 20)).toEqual([]);
  expect(t.lostIds).toEqual([]);
  expect(t.twiceIds).toEqual([]);
  expect(s.logs.events('worker.crashed')).toEqual([]);
}, scale(170_000, 900_000));
