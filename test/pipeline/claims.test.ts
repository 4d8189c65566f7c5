/**
 * Claims other workers left behind (contract §6): a dead worker's `Claimed` attempt is
 * taken over with the next key; its `Posting` attempt has an unknown outcome and the
 * record says so; a claim on a message that moved on is only closed out.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { acceptedCountBySubject, queue, record, spawnWorker, startStack, statusOf, waitFor, type Stack, type WorkerProcess } from '../support/harness.js';

let stack: Stack | undefined;
let other: WorkerProcess | undefined;
afterEach(async () => {
  other?.kill('SIGKILL');
  await other?.exited;
  other = undefined;
  await stack?.close();
  stack = undefined;
});

const attempts = (s: Stack, id: string) =>
  s.sandbox.org.query(`SELECT Attempt_Key__c, Outcome__c, Error__c FROM Secure_Email_Attempt__c WHERE Message__c = '${id}' ORDER BY Attempt_Key__c`);

/** What a worker that died mid-send leaves in the org. */
function deadWorkerLeft(s: Stack, subject: string, outcome: 'Claimed' | 'Posting', status = 'Sending'): string {
  const [id] = queue(s.sandbox, { Status__c: 'Draft', Subject__c: subject });
  s.sandbox.org.insert('Secure_Email_Attempt__c', {
    Message__c: id, Attempt_Key__c: `${id}:1`, Outcome__c: outcome, Worker__c: 'dead-worker', Claimed_At__c: new Date().toISOString(),
  });
  s.sandbox.org.update('Secure_EmailMessage__c', id!, { Status__c: status, Attempts__c: 1 });
  return id!;
}

describe('stale claims', () => {
  it('takes over, marks unknown, or closes out what a dead worker left, once its lease passed', async () => {
    stack = await startStack({ env: { CLAIM_LEASE_MS: '2000' } });
    const s = stack;
    const claimed = deadWorkerLeft(s, 'left claimed', 'Claimed');
    const posting = deadWorkerLeft(s, 'left posting', 'Posting');
    const movedOn = deadWorkerLeft(s, 'moved on', 'Claimed', 'Sent');
    await s.startWorker();
    await waitFor(() => record(s.sandbox, claimed).Status__c === 'Sent', 'the claimed one taken over and sent', 20_000);
    await waitFor(() => record(s.sandbox, posting).Status__c === 'Failed', 'the posting one marked unknown', 20_000);
    await waitFor(() => attempts(s, movedOn)[0]?.Outcome__c === 'Failed', 'the moved-on claim closed', 20_000);

    expect(attempts(s, claimed)).toEqual([
      expect.objectContaining({ Attempt_Key__c: `${claimed}:1`, Outcome__c: 'Failed', Error__c: expect.stringMatching(/lease expired/) }),
      expect.objectContaining({ Attempt_Key__c: `${claimed}:2`, Outcome__c: 'Sent' }),
    ]);
    expect(record(s.sandbox, posting)).toMatchObject({ Status__c: 'Failed', Error__c: expect.stringMatching(/^Outcome unknown/) });
    expect(attempts(s, posting)).toEqual([expect.objectContaining({ Outcome__c: 'Unknown' })]);
    expect(record(s.sandbox, movedOn).Status__c).toBe('Sent'); // untouched
    const sent = acceptedCountBySubject(s.sandbox);
    expect(sent.get('left claimed')).toBe(1);
    expect(sent.has('left posting')).toBe(false); // never re-posted without saying so
    expect(sent.has('moved on')).toBe(false);
  });
});

describe('live claims', () => {
  it('keeps a batch that outlasts the lease alive, so another worker never takes it for dead', async () => {
    stack = await startStack({ env: { CLAIM_LEASE_MS: '1500', RECONCILE_INTERVAL_MS: '1000' } });
    const s = stack;
    s.sandbox.paubox.control.setLatency(4000); // each POST outlasts the lease
    await s.startWorker();
    // A second worker that only sweeps (no subscription): it would mark a silent Posting attempt unknown.
    other = spawnWorker({ ...s.env, DATA_DIR: `${s.dataDir}/other`, DYNO: 'worker.2' });
    await waitFor(() => other!.logs.events('stream.disabled').length > 0, 'the sweeper running');
    const ids = queue(s.sandbox, ...Array.from({ length: 5 }, (_, i) => ({ Subject__c: `slow ${i}` })));
    await waitFor(() => statusOf(s.sandbox, ids).every((x) => x === 'Sent'), 'all sent', 30_000);
    await new Promise((r) => setTimeout(r, 1500)); // a few more sweeps
    expect(statusOf(s.sandbox, ids)).toEqual(ids.map(() => 'Sent'));
    // Not even for a moment: an operator alert, and the record shown Failed meanwhile.
    expect(other!.logs.events('message.outcome_unknown')).toEqual([]);
    const outcomes = s.sandbox.org.query('SELECT Outcome__c FROM Secure_Email_Attempt__c').map((a) => a.Outcome__c);
    expect(outcomes).toEqual(ids.map(() => 'Sent'));
    expect([...acceptedCountBySubject(s.sandbox).values()]).toEqual(ids.map(() => 1));
  });
});
