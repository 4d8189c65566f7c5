/**
 * A claim's lease (contract §6) is measured from its attempt's last write: another
 * worker's stale sweep takes an attempt untouched for `CLAIM_LEASE_MS` for a dead one
 * (`Claimed` → taken over, `Posting` → outcome unknown). A live batch can outlast that —
 * a burst queued behind others, files waiting for KMS, Paubox retries — so while a batch
 * is being worked on its attempts are touched every lease/3, saying what they wait for.
 */
import type { SalesforceRecords } from '../salesforce/records.js';
import type { Log } from '../log.js';
import type { Claim } from './claim.js';

export interface KeepAlive {
  /** What the attempts show in `Error__c` at the next touch. */
  note(text: string): void;
  /** Stops touching (awaits a touch in flight), before the outcome is written. */
  stop(): Promise<void>;
}

export function keepAlive(claims: Claim[], deps: { sf: SalesforceRecords; log: Log; claimLeaseMs: number }): KeepAlive {
  let text = 'In progress';
  let touching: Promise<unknown> = Promise.resolve();
  const timer = setInterval(() => {
    touching = deps.sf.updateAttempts(claims.map((c) => ({ Id: c.attemptId, Error__c: text })))
      .catch((err) => deps.log.warn({ event: 'heartbeat.failed', records: claims.length, err }));
  }, Math.max(100, deps.claimLeaseMs / 3));
  timer.unref();
  return {
    note: (t) => {
      text = t;
    },
    async stop() {
      clearInterval(timer);
      await touching;
    },
  };
}
