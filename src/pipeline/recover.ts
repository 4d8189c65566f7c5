/**
 * After a crash, and on every sweep: finishing what was left half done.
 *
 * From our own journal (this worker's DATA_DIR), at start-up:
 * - `sent` with a tracking id: Paubox has it; only the write-back is missing → write it.
 * - `posting`/`unknown`: the POST may or may not have reached Paubox, and Paubox has no
 *   idempotency key → the attempt becomes `Unknown`, the message `Failed` with an error
 *   that says so (or, with RESEND_UNKNOWN, a new attempt sends it again).
 * - `claimed`/`failed`: nothing left the worker → resume the send under the same claim,
 *   if Salesforce still shows that claim as the current one.
 *
 * From Salesforce, for claims other workers left behind (their journals are out of
 * reach): an attempt still `Claimed` past the lease is taken over with the next attempt
 * key; one still `Posting` past the lease has an unknown outcome.
 */
import { writeBack, sendClaims, type SendDeps, type SendOutcome } from './send.js';
import type { Claim, ClaimDeps } from './claim.js';
import type { StaleAttempt } from '../salesforce/records.js';
import type { JournalEntry } from '../store/store.js';

export const UNKNOWN_OUTCOME_ERROR =
  'Outcome unknown: the worker stopped while posting to Paubox. Check Paubox before re-queueing, or it may arrive twice';

type Deps = SendDeps & ClaimDeps & { claimLeaseMs: number };

export async function recover(deps: Deps): Promise<SendOutcome[]> {
  const entries = await deps.store.journal.byState();
  if (entries.length === 0) return [];
  deps.log.info({ event: 'recovery.started', entries: entries.length });
  const records = new Map((await deps.sf.readMessages(entries.map((e) => e.recordId))).map((r) => [r.Id, r]));
  const claimOf = (e: JournalEntry): Claim | undefined => {
    const record = records.get(e.recordId);
    const attempt = Number(e.attemptKey.split(':')[1]);
    if (!record || !e.attemptId) return undefined;
    return { record, attemptId: e.attemptId, attemptKey: e.attemptKey, attempt, claimedAt: e.claimedAt };
  };
  const finished: SendOutcome[] = [];
  const resume: Claim[] = [];
  for (const e of entries) {
    const claim = claimOf(e);
    const current = claim && claim.record.Status__c === 'Sending' && Number(claim.record.Attempts__c) === claim.attempt;
    if (!claim || (!current && e.state !== 'sent')) {
      await deps.store.journal.delete(e.recordId); // Salesforce moved on (resent, deleted, finished)
      continue;
    }
    if (e.state === 'sent' && e.trackingId) {
      finished.push({ claim, kind: 'sent', trackingId: e.trackingId, sentAt: e.updatedAt, singleRecipient: true });
    } else if (e.state === 'posting' || e.state === 'unknown') {
      if (deps.resendUnknown) resume.push(claim);
      else finished.push({ claim, kind: 'failed', error: UNKNOWN_OUTCOME_ERROR, attemptOutcome: 'Unknown' });
    } else {
      resume.push(claim);
    }
  }
  if (finished.length > 0) await writeBack(finished, deps);
  const resumed = resume.length > 0 ? await sendClaims(resume, deps) : [];
  deps.log.info({ event: 'recovery.finished', writtenBack: finished.length, resumed: resume.length });
  return [...finished, ...resumed];
}

/**
 * Claims gone stale elsewhere: `Claimed` → taken over, `Posting` → outcome unknown.
 * Records this worker is still working on (`busy`) are not stale, whatever their age; a
 * stale claim on a message that has moved on (sent, failed, resent) is only closed out.
 */
export async function sweepStale(
  deps: Deps, takeOver: (stale: StaleAttempt[]) => Promise<Claim[]>, busy: (recordId: string) => boolean = () => false,
): Promise<Claim[]> {
  const cutoff = new Date((deps.now ?? Date.now)() - deps.claimLeaseMs);
  const stale = (await deps.sf.findStaleAttempts(cutoff, 200)).filter((s) => !busy(s.messageId));
  if (stale.length === 0) return [];
  const posting = stale.filter((s) => s.outcome === 'Posting');
  if (posting.length > 0) await markUnknown(posting, deps);
  const claimed = stale.filter((s) => s.outcome === 'Claimed');
  const movedOn = claimed.filter((s) => s.messageStatus !== 'Sending' && s.messageStatus !== 'Queued');
  if (movedOn.length > 0) {
    await deps.sf.updateAttempts(movedOn.map((s) => ({
      Id: s.attemptId, Outcome__c: 'Failed' as const, Error__c: 'Claim abandoned; the message moved on without it',
      Finished_At__c: new Date((deps.now ?? Date.now)()).toISOString(),
    })));
  }
  return takeOver(claimed.filter((s) => !movedOn.includes(s)));
}

async function markUnknown(posting: StaleAttempt[], deps: Deps): Promise<void> {
  const now = new Date((deps.now ?? Date.now)()).toISOString();
  await deps.sf.updateAttempts(posting.map((s) => ({
    Id: s.attemptId, Outcome__c: 'Unknown' as const, Error__c: UNKNOWN_OUTCOME_ERROR.slice(0, 255), Finished_At__c: now,
  })));
  const sending = posting.filter((s) => s.messageStatus === 'Sending');
  await deps.sf.updateMessages(sending.map((s) => ({
    Id: s.messageId, Status__c: deps.resendUnknown ? 'Queued' as const : 'Failed' as const,
    Error__c: deps.resendUnknown ? 'Previous attempt had an unknown outcome; sending again as configured' : UNKNOWN_OUTCOME_ERROR.slice(0, 255),
  })));
  for (const s of posting) deps.log.warn({ event: 'message.outcome_unknown', recordId: s.messageId, attemptId: s.attemptId });
}
