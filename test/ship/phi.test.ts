/**
 * Contract §7: no recipient address, subject, body, attachment name or content, token or
 * key in any log line — nor PHI in any Error__c. The whole flow runs in a worker process
 * started as the Procfile starts it, at trace level, through success and every failure
 * path an error message can come from, with a unique marker in every PHI field and in
 * the secrets; then its stdout, stderr and every error stored in Salesforce are searched.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { randomBytes } from 'node:crypto';
import { rmSync } from 'node:fs';
import { record, statusOf, waitFor, type Compose } from '../support/harness.js';
import type { Sandbox } from '../../src/sandbox/index.js';
import { allOutput, fastSandbox, nonJson, spawnMain, stopped, tempDir, workerEnv } from './support.js';

const run = randomBytes(4).toString('hex');
/** A marker per field: lower case, so an address keeps it when a system lowercases it. */
const markers = new Map<string, string>();
const mk = (field: string) => {
  const m = `zq${field.toLowerCase().replace(/[^a-z]/g, '')}${run}`;
  markers.set(field, m);
  return m;
};

let sandbox: Sandbox;
let dataDir: string;
beforeAll(async () => {
  // The Paubox key is ours to choose; the org makes its own secrets (read back from env).
  sandbox = await fastSandbox({ paubox: { apiKey: mk('PauboxKey') } as { latencyMs?: number } });
  dataDir = tempDir();
});
afterAll(async () => {
  await sandbox?.close();
  rmSync(dataDir, { recursive: true, force: true });
});

function marked(tag: string, extra: Compose = {}): Compose {
  return {
    To_Address__c: `"${mk(`${tag}ToName`)}" <${mk(`${tag}To`)}@example.org>; ${mk(`${tag}To2`)}@example.org`,
    Cc_Address__c: `${mk(`${tag}Cc`)}@example.org`,
    Bcc_Address__c: `${mk(`${tag}Bcc`)}@example.org`,
    From_Address__c: `${mk(`${tag}From`)}@clinic.example`,
    From_Name__c: mk(`${tag}FromName`),
    Reply_To__c: `${mk(`${tag}Reply`)}@clinic.example`,
    Subject__c: `Results ${mk(`${tag}Subject`)}`,
    Html_Body__c: `<p>${mk(`${tag}Html`)}</p>`,
    Text_Body__c: `Dear ${mk(`${tag}Text`)}`,
    In_Reply_To__c: `<${mk(`${tag}Irt`)}@mail.example.org>`,
    Status__c: 'Draft',
    ...extra,
  };
}

function insertQueued(fields: Compose, file?: string): string {
  const id = sandbox.org.insert('Secure_EmailMessage__c', fields);
  if (file) {
    const content = Buffer.from(`%PDF-1.4 ${mk(`${file}Content`)}`);
    markers.set(`${file}ContentBase64`, content.toString('base64').slice(4, 30));
    sandbox.org.insert('ContentVersion', {
      Title: mk(`${file}Title`), PathOnClient: `${mk(`${file}Path`)}.pdf`,
      VersionData: content.toString('base64'), FirstPublishLocationId: id,
    });
  }
  sandbox.org.update('Secure_EmailMessage__c', id, { Status__c: 'Queued' });
  return id;
}

const settled = (ids: string[]) => () => statusOf(sandbox, ids).every((s) => !['Queued', 'Sending'].includes(s)) || null;

describe('no PHI and no secret in logs or errors', () => {
  it('holds through sends, receipts, bad records, Paubox refusals (422, 400) and a 500 storm', async () => {
    const env = workerEnv(sandbox, dataDir, { LOG_LEVEL: 'trace', SEND_DEADLINE_MS: '4000' });
    const secrets = {
      SF_CLIENT_SECRET: env.SF_CLIENT_SECRET!, PAUBOX_API_KEY: env.PAUBOX_API_KEY!,
      SF_PRIVATE_KEY: env.SF_PRIVATE_KEY!.split('\n')[1]!, // a line of the key body
    };
    const w = spawnMain(env);
    try {
      await waitFor(() => w.logs.events('worker.started').length > 0, 'worker.started');

      // Success, with a file and receipts (delivered, and a bounce), in one bulk.
      const good = insertQueued(marked('good', { To_Address__c: `${mk('goodTo')}@example.org` }), 'file');
      const many = insertQueued(marked('many'), 'file2');
      const bounced = insertQueued(marked('bounce', { To_Address__c: `bounce${mk('bounceTo')}@example.org` }));
      // Refused before sending: a malformed address; refused by Paubox (400): an unverified From.
      const badAddress = insertQueued(marked('bad', { To_Address__c: `${mk('badTo')}@@example` }));
      const unverified = insertQueued(marked('unv', { From_Address__c: `${mk('unvFrom')}@unverified.example` }));
      await waitFor(settled([good, many, bounced, badAddress, unverified]), 'first round settled', 30_000);
      const after = statusOf(sandbox, [good, many, bounced, badAddress, unverified]);
      expect(after.slice(0, 3).every((s) => ['Sent', 'Delivered', 'Bounced'].includes(s))).toBe(true);
      expect(after.slice(3)).toEqual(['Failed', 'Failed']);

      // A bare 400 from Paubox.
      sandbox.paubox.control.failNext(1, 400, 'messages');
      const refused = insertQueued(marked('four'));
      await waitFor(settled([refused]), '400 settled', 30_000);
      expect(record(sandbox, refused)).toMatchObject({ Status__c: 'Failed', Error__c: expect.stringMatching(/400/) });

      // A 500 storm outlasting the retry deadline, while Salesforce also fails a call.
      sandbox.paubox.control.outage(500);
      sandbox.org.control.failNext(1, 500, 'UNKNOWN_EXCEPTION');
      const storm = insertQueued(marked('storm'));
      await waitFor(settled([storm]), 'storm failed', 30_000);
      sandbox.paubox.control.outage(null);
      expect(record(sandbox, storm).Status__c).toBe('Failed');

      // The bounce recipient beside delivered cc/bcc: Partially Delivered.
      await waitFor(() => record(sandbox, bounced).Status__c === 'Partially Delivered' &&
        record(sandbox, good).Status__c === 'Delivered', 'receipts merged', 30_000);
    } finally {
      expect(await stopped(w)).toBe(0);
    }

    // The scan means something only if the markers went where they belong …
    const paubox = JSON.stringify(sandbox.paubox.accepted().map((a) => a.message));
    for (const field of ['goodTo', 'manyToName', 'manyCc', 'manyBcc', 'goodSubject', 'goodFromName', 'filePath', 'manyIrt']) {
      expect(paubox, field).toContain(markers.get(field));
    }
    // … and the log covered the flow and its failures.
    for (const event of ['message.claimed', 'message.sent', 'message.failed', 'receipt.merged', 'paubox.retry', 'worker.stopped']) {
      expect(w.logs.events(event).length, event).toBeGreaterThan(0);
    }
    expect(nonJson(w)).toEqual([]);

    const output = allOutput(w).toLowerCase();
    const errors = [
      ...sandbox.org.query('SELECT Id, Error__c FROM Secure_EmailMessage__c'),
      ...sandbox.org.query('SELECT Id, Error__c FROM Secure_Email_Attempt__c'),
    ].map((r) => String(r.Error__c ?? '')).join('\n').toLowerCase();
    expect(errors).toMatch(/To_Address__c/i); // the bad address is named by field, not value
    expect(errors).toMatch(/paubox refused/);
    expect(errors).toMatch(/unavailable/);
    for (const [field, marker] of markers) {
      expect(output, `${field} in the log`).not.toContain(marker.toLowerCase());
      expect(errors, `${field} in an Error__c`).not.toContain(marker.toLowerCase());
    }
    for (const [name, secret] of Object.entries(secrets)) {
      expect(allOutput(w), `${name} in the log`).not.toContain(secret);
    }
  }, 120_000);
});
