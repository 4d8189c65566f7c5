/**
 * The send pipeline end to end: records queued in the sandbox org, a worker on its
 * production code path (jsforce streaming, node-fetch, the AWS SDK), Paubox's log of
 * what it accepted, and the records as a Salesforce user would see them.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { GOOD, queue, record, startStack, statusOf, waitFor, acceptedCountBySubject, type Stack } from '../support/harness.js';

let stack: Stack;
beforeEach(async () => {
  stack = await startStack();
});
afterEach(async () => {
  await stack?.close();
});

const finalStatus = (ids: string[]) => () => statusOf(stack.sandbox, ids).every((s) => s === 'Sent' || s === 'Failed' || s === 'Delivered');

describe('send pipeline', () => {
  it('sends a Queued record once, with every field mapped, and marks it Sent with its tracking id', async () => {
    await stack.startWorker();
    const [id] = queue(stack.sandbox, {
      To_Address__c: 'pat@example.org; "Roe, Jane" <jane@example.org>', Cc_Address__c: 'doc@example.org',
      Bcc_Address__c: 'audit@example.org', From_Address__c: 'care@clinic.example', From_Name__c: 'Care Team',
      Reply_To__c: 'replies@clinic.example', Subject__c: 'Lab results', Html_Body__c: '<p>Fine</p>', Text_Body__c: 'Fine',
      In_Reply_To__c: '<abc@mail.example.org>', Force_Secure_Notification__c: true,
    });
    const rec = await waitFor(() => (record(stack.sandbox, id!).Status__c === 'Sent' ? record(stack.sandbox, id!) : null), 'Sent');
    const accepted = stack.sandbox.paubox.accepted();
    expect(accepted).toHaveLength(1);
    const m = accepted[0]!.message as Record<string, any>;
    expect(m.recipients).toEqual(['pat@example.org', '"Roe, Jane" <jane@example.org>']);
    expect(m.cc).toEqual(['doc@example.org']);
    expect(m.bcc).toEqual(['audit@example.org']);
    expect(m.headers).toMatchObject({
      subject: 'Lab results', from: '"Care Team" <care@clinic.example>', 'reply-to': 'replies@clinic.example',
      'In-Reply-To': '<abc@mail.example.org>', References: '<abc@mail.example.org>',
    });
    expect(accepted[0]!.decoded.html).toBe('<p>Fine</p>');
    expect(m.content['text/plain']).toBe('Fine');
    expect(m.forceSecureNotification).toBe(true);
    expect(m.allowNonTLS).toBe(false);
    expect(rec.Tracking_Id__c).toBe(accepted[0]!.sourceTrackingId);
    expect(rec.Sent_At__c).toBeTruthy();
    expect(rec.Attempts__c).toBe(1);
    const attempts = stack.sandbox.org.query(`SELECT Attempt_Key__c, Outcome__c, Tracking_Id__c FROM Secure_Email_Attempt__c WHERE Message__c = '${id}'`);
    expect(attempts).toEqual([expect.objectContaining({ Attempt_Key__c: `${id}:1`, Outcome__c: 'Sent', Tracking_Id__c: rec.Tracking_Id__c })]);
  });

  it('leaves Draft alone, is not triggered by its own writes, and treats a re-queue as an explicit resend', async () => {
    await stack.startWorker();
    const [draft] = queue(stack.sandbox, { Status__c: 'Draft', Subject__c: 'draft' });
    const [sent] = queue(stack.sandbox, { Subject__c: 'resend me' });
    await waitFor(() => record(stack.sandbox, sent!).Status__c === 'Sent', 'first send');
    // Several sweeps and receipt merges later, still exactly one send.
    await new Promise((r) => setTimeout(r, 3000));
    expect(acceptedCountBySubject(stack.sandbox).get('resend me')).toBe(1);
    stack.sandbox.org.update('Secure_EmailMessage__c', sent!, { Status__c: 'Queued' });
    await waitFor(() => acceptedCountBySubject(stack.sandbox).get('resend me') === 2, 'the resend');
    await waitFor(() => record(stack.sandbox, sent!).Attempts__c === 2 && record(stack.sandbox, sent!).Status__c !== 'Sending', 'attempt 2 written back');
    expect(record(stack.sandbox, draft!).Status__c).toBe('Draft');
    expect(acceptedCountBySubject(stack.sandbox).has('draft')).toBe(false);
  });

  it('sends the 50 records queued while it was stopped, each once', async () => {
    const ids = queue(stack.sandbox, ...Array.from({ length: 50 }, (_, i) => ({ Subject__c: `offline ${i}` })));
    await stack.startWorker();
    await waitFor(finalStatus(ids), 'all 50 sent', 30_000);
    const counts = acceptedCountBySubject(stack.sandbox);
    expect([...counts.values()].every((n) => n === 1)).toBe(true);
    expect(counts.size).toBe(50);
  });

  it('re-reads a record whose long body arrived as a diff, and sends it whole', async () => {
    stack.sandbox.org.control.diffLongText = true;
    await stack.startWorker();
    const long = 'x'.repeat(5000) + ' end';
    const [id] = queue(stack.sandbox, { Status__c: 'Draft', Subject__c: 'long', Text_Body__c: 'short' });
    stack.sandbox.org.update('Secure_EmailMessage__c', id!, { Text_Body__c: long, Status__c: 'Queued' });
    await waitFor(() => record(stack.sandbox, id!).Status__c === 'Sent', 'Sent');
    const m = stack.sandbox.paubox.accepted()[0]!.message as { content: Record<string, string> };
    expect(m.content['text/plain']).toBe(long);
  });

  it('fails bad records with a clear Error__c and no PHI, and sends the good ones beside them', async () => {
    await stack.startWorker();
    const bad: Record<string, Record<string, unknown>> = {
      'no recipient': { To_Address__c: '' },
      'invalid address': { To_Address__c: 'pat@@example' },
      'no body': { Text_Body__c: '', Html_Body__c: '' },
      '101 recipients': { To_Address__c: Array.from({ length: 101 }, (_, i) => `p${i}@example.org`).join(';') },
      'CR/LF in subject': { Subject__c: 'Hi\r\nBcc: evil@example.org' },
      'unverified From': { From_Address__c: 'someone@unverified.example' },
    };
    const ids = Object.fromEntries(Object.entries(bad).map(([name, fields]) => [name, queue(stack.sandbox, { ...fields })[0]!]));
    const [good] = queue(stack.sandbox, { Subject__c: 'good one' });
    await waitFor(finalStatus([...Object.values(ids), good!]), 'all final', 30_000);
    expect(record(stack.sandbox, good!).Status__c).toBe('Sent');
    const errors: Record<string, string> = {};
    for (const [name, id] of Object.entries(ids)) {
      const rec = record(stack.sandbox, id);
      expect(rec.Status__c, name).toBe('Failed');
      errors[name] = String(rec.Error__c);
      expect(errors[name]!.length).toBeLessThanOrEqual(255);
      expect(errors[name]).not.toMatch(/@/);
    }
    expect(errors['no recipient']).toMatch(/recipient/i);
    expect(errors['invalid address']).toMatch(/To_Address__c/);
    expect(errors['no body']).toMatch(/body/i);
    expect(errors['101 recipients']).toMatch(/101/);
    expect(errors['CR/LF in subject']).toMatch(/Subject__c/);
    expect(errors['unverified From']).toMatch(/Paubox refused/);
    expect(stack.sandbox.paubox.accepted().map((a) => (a.message as any).headers.subject)).toEqual(['good one']);
  });

  it('attaches Salesforce Files, and fails a message whose files exceed 10 MB before downloading them', async () => {
    await stack.startWorker();
    const [withFile, tooBig] = queue(stack.sandbox, { Status__c: 'Draft', Subject__c: 'with file' }, { Status__c: 'Draft', Subject__c: 'too big' });
    const pdf = Buffer.from('%PDF-1.4 results');
    stack.sandbox.org.insert('ContentVersion', { Title: 'results', PathOnClient: 'results.pdf', VersionData: pdf.toString('base64'), FirstPublishLocationId: withFile });
    stack.sandbox.org.insert('ContentVersion', { Title: 'scan', PathOnClient: 'scan.tiff', VersionData: Buffer.alloc(11 * 1024 * 1024, 1).toString('base64'), FirstPublishLocationId: tooBig });
    const downloadsBefore = stack.sandbox.org.counter.get('rest.versiondata');
    stack.sandbox.org.update('Secure_EmailMessage__c', withFile!, { Status__c: 'Queued' });
    stack.sandbox.org.update('Secure_EmailMessage__c', tooBig!, { Status__c: 'Queued' });
    await waitFor(finalStatus([withFile!, tooBig!]), 'both final');
    expect(record(stack.sandbox, withFile!).Status__c).toBe('Sent');
    const sent = stack.sandbox.paubox.accepted()[0]!.message as { attachments: Array<Record<string, string>> };
    expect(sent.attachments).toEqual([{ fileName: 'results.pdf', contentType: 'application/pdf', content: pdf.toString('base64') }]);
    expect(record(stack.sandbox, tooBig!)).toMatchObject({ Status__c: 'Failed', Error__c: expect.stringMatching(/11\.0 MB; Paubox allows 10 MB/) });
    expect(stack.sandbox.org.counter.get('rest.versiondata') - downloadsBefore).toBe(1);
  });

  it('spends far less than one Salesforce call per message on claims and write-backs', async () => {
    const ids = queue(stack.sandbox, ...Array.from({ length: 200 }, (_, i) => ({ Subject__c: `economy ${i}` })));
    const before = stack.sandbox.org.apiCalls();
    await stack.startWorker({}, { RECONCILE_INTERVAL_MS: '600000', POLL_INTERVAL_MS: '600000' });
    await waitFor(finalStatus(ids), 'all sent', 30_000);
    const perMessage = (stack.sandbox.org.apiCalls() - before) / ids.length;
    expect(perMessage).toBeLessThan(0.1);
  });
});
