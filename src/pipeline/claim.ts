/**
 * Claims (contract §6): a send is owned by whoever inserts its `Secure_Email_Attempt__c`
 * with the unique key `<message Id>:<Attempts__c + 1>`. One insert wins; the others get
 * `DUPLICATE_VALUE` and walk away. The winner journals the claim locally, then moves the
 * message `Queued → Sending`. Everything is batched: one query, one insert and one update
 * for up to 200 messages.
 */
import type { SecureEmailMessage } from '../domain/record.js';
import type { SalesforceRecords, StaleAttempt } from '../salesforce/records.js';
import type { Store } from '../store/store.js';
import type { Log } from '../log.js';

export interface Claim {
  record: SecureEmailMessage;
  attemptId: string;
  attemptKey: string;
  /** The new Attempts__c. */
  attempt: number;
  claimedAt: number;
}

export interface ClaimDeps {
  sf: SalesforceRecords;
  store: Store;
  log: Log;
  workerName: string;
  now?: () => number;
}

/** Reads the messages, claims those still `Queued`, and returns the claims this worker won. */
export async function claimQueued(ids: string[], deps: ClaimDeps): Promise<Claim[]> {
  const records = (await deps.sf.readMessages(ids)).filter((r) => r.Status__c === 'Queued');
  return claimRecords(records.map((record) => ({ record, attempt: Number(record.Attempts__c ?? 0) + 1 })), deps);
}

/**
 * Takes over messages whose claim went stale while still `Claimed` (its worker died before
 * posting): a new attempt with the next key, so two rescuers cannot both win.
 */
export async function takeOver(stale: StaleAttempt[], deps: ClaimDeps): Promise<Claim[]> {
  // The next attempt number follows the stale attempt's own key: its worker may have died
  // before it moved the message to Sending (Attempts__c not yet incremented).
  const next = new Map(stale
    .filter((s) => s.outcome === 'Claimed' && (s.messageStatus === 'Sending' || s.messageStatus === 'Queued'))
    .map((s) => [s.messageId, Number(s.attemptKey.split(':')[1] ?? s.messageAttempts) + 1]));
  if (next.size === 0) return [];
  const records = (await deps.sf.readMessages([...next.keys()]))
    .filter((r) => r.Status__c === 'Sending' || r.Status__c === 'Queued');
  const claims = await claimRecords(records.map((record) => ({ record, attempt: next.get(record.Id)! })), deps);
  const won = new Set(claims.map((c) => c.record.Id));
  const now = new Date((deps.now ?? Date.now)()).toISOString();
  const retired = stale.filter((s) => won.has(s.messageId) && s.outcome === 'Claimed');
  if (retired.length > 0) {
    await deps.sf.updateAttempts(retired.map((s) => ({
      Id: s.attemptId, Outcome__c: 'Failed' as const, Finished_At__c: now,
      Error__c: 'Claim lease expired before posting; taken over by another attempt',
    })));
  }
  return claims;
}

async function claimRecords(items: Array<{ record: SecureEmailMessage; attempt: number }>, deps: ClaimDeps): Promise<Claim[]> {
  if (items.length === 0) return [];
  const now = (deps.now ?? Date.now)();
  const iso = new Date(now).toISOString();
  const wanted = items.map(({ record, attempt }) => ({ record, attempt, attemptKey: `${record.Id}:${attempt}` }));
  const results = await deps.sf.insertAttempts(wanted.map((w) => ({
    Message__c: w.record.Id, Attempt_Key__c: w.attemptKey, Worker__c: deps.workerName,
    Outcome__c: 'Claimed' as const, Claimed_At__c: iso,
  })));
  const claims: Claim[] = [];
  results.forEach((res, i) => {
    const w = wanted[i]!;
    if (res.ok && res.id) claims.push({ ...w, attemptId: res.id, claimedAt: now });
    else if (!res.duplicate) {
      deps.log.warn({ event: 'claim.failed', recordId: w.record.Id, code: res.error?.code });
    }
  });
  if (claims.length === 0) return [];
  await deps.store.journal.putMany(claims.map((c) => ({
    recordId: c.record.Id, attemptKey: c.attemptKey, attemptId: c.attemptId,
    state: 'claimed' as const, claimedAt: now, updatedAt: now,
  })));
  const moved = await deps.sf.updateMessages(claims.map((c) => ({
    Id: c.record.Id, Status__c: 'Sending' as const, Attempts__c: c.attempt, Error__c: null,
  })));
  const owned = claims.filter((c, i) => {
    if (moved[i]?.ok) return true;
    deps.log.warn({ event: 'claim.failed', recordId: c.record.Id, code: moved[i]?.error?.code });
    return false;
  });
  for (const c of owned) {
    c.record.Status__c = 'Sending';
    deps.log.info({ event: 'message.claimed', recordId: c.record.Id, attempt: c.attempt });
  }
  return owned;
}
