/**
 * Sending claimed messages: fetch their files (streamed into the encrypted spool), build
 * the Paubox messages (pure), post them (bulk when several are ready), and write the
 * outcome back — to the local journal the moment Paubox answers, then to Salesforce in
 * batches.
 *
 * Paubox has no idempotency key, so the order of writes is what keeps a message from
 * going out twice: journal `posting` (fsync) → POST → journal `sent` + tracking id. A
 * crash between the two leaves `posting`: the outcome is unknown and the record says so.
 * A failure that proves nothing was accepted (429, 5xx, connection refused) flips the
 * journal back to `claimed` and is retried with backoff until the deadline.
 */
import { buildMessage, truncateError, MAX_ATTACHMENT_BYTES, type AttachmentContent } from '../domain/message.js';
import { nextRetryAt, abortableSleep, retryUntil, DEFAULT_BACKOFF, type BackoffPolicy } from '../domain/backoff.js';
import type { PauboxMessage } from '../paubox/types.js';
import { PauboxError } from '../paubox/errors.js';
import type { PauboxClient, BulkItemResult } from '../paubox/client.js';
import { chunk, type SalesforceRecords, type MessageUpdate, type AttemptUpdate } from '../salesforce/records.js';
import type { Store, JournalEntry } from '../store/store.js';
import type { Spool } from '../store/spool.js';
import type { Log } from '../log.js';
import type { Claim } from './claim.js';
import { keepAlive, type KeepAlive } from './lease.js';
import type { Attachment } from '../domain/record.js';
import { DecryptError, KeyUnavailableError } from '../crypto/errors.js';

export interface SendDeps {
  sf: SalesforceRecords;
  paubox: PauboxClient;
  store: Store;
  spool: Spool;
  log: Log;
  sendDeadlineMs: number;
  claimLeaseMs: number;
  resendUnknown: boolean;
  backoff?: BackoffPolicy;
  /** Aborted at shutdown: waits end early and unsent claims are handed back. */
  signal?: AbortSignal;
  now?: () => number;
}

export type SendOutcome =
  | { claim: Claim; kind: 'sent'; trackingId: string; sentAt: number; singleRecipient: boolean }
  | { claim: Claim; kind: 'failed'; error: string; attemptOutcome: 'Failed' | 'Unknown' }
  | { claim: Claim; kind: 'handed-back' };

interface Ready { claim: Claim; message: PauboxMessage }

const BULK_MAX = 50;
/** Files not staged because the worker is shutting down: the claim is handed back. */
const HAND_BACK = Symbol('hand back');
/** Records whose files download at once (each file still streams through the spool). */
const FILE_CONCURRENCY = 8;
const WRITE_BACK_DEADLINE_MS = 10 * 60_000;

/** Sends a batch of claims and writes every outcome back. Never throws for one bad record. */
export async function sendClaims(claims: Claim[], deps: SendDeps): Promise<SendOutcome[]> {
  const lease = keepAlive(claims, deps);
  let outcomes: SendOutcome[];
  try {
    outcomes = await prepareAndPost(claims, deps, lease);
  } finally {
    await lease.stop();
  }
  await writeBack(outcomes, deps);
  return outcomes;
}

async function prepareAndPost(claims: Claim[], deps: SendDeps, lease: KeepAlive): Promise<SendOutcome[]> {
  const outcomes: SendOutcome[] = [];
  const ready: Ready[] = [];
  const files = await loadAttachments(claims, deps, lease);
  for (const claim of claims) {
    const attached = files.get(claim.record.Id) ?? [];
    if (attached === HAND_BACK) {
      outcomes.push({ claim, kind: 'handed-back' });
      continue;
    }
    if (typeof attached === 'string') {
      outcomes.push(failed(claim, attached));
      continue;
    }
    const built = buildMessage(claim.record, attached);
    if (built.ok) ready.push({ claim, message: built.message });
    else outcomes.push(failed(claim, built.error));
  }
  await markPosting(ready, deps);
  // One bulk POST at a time per batch: a crash mid-POST leaves at most one part's outcome
  // unknown (the rest still `claimed`, safe to resume), at little cost in throughput since
  // several batches are in flight.
  for (const part of chunk(ready, BULK_MAX)) outcomes.push(...await postWithRetry(part, deps, lease));
  return outcomes;
}

/**
 * Contract §6: before the POST the attempt becomes `Posting`, so anyone who finds it there
 * later knows the outcome may be unknown. One collections call for the whole batch.
 */
async function markPosting(ready: Ready[], deps: SendDeps): Promise<void> {
  if (ready.length === 0) return;
  await retryUntil(() => deps.sf.updateAttempts(ready.map((r) => ({ Id: r.claim.attemptId, Outcome__c: 'Posting' as const }))), {
    deadline: (deps.now ?? Date.now)() + WRITE_BACK_DEADLINE_MS,
    retryable: () => true,
    signal: deps.signal,
    onRetry: ({ attempt, delayMs, error }) => deps.log.warn({ event: 'posting.retry', attempt, delayMs, err: error }),
  });
}

function failed(claim: Claim, error: string, attemptOutcome: 'Failed' | 'Unknown' = 'Failed'): SendOutcome {
  return { claim, kind: 'failed', error: truncateError(error), attemptOutcome };
}

/**
 * Files: ContentDocumentLink → latest ContentVersion → VersionData, streamed into the
 * encrypted spool and read back for the message. A message whose files exceed Paubox's
 * limit fails from the sizes alone, before a byte is downloaded.
 */
async function loadAttachments(claims: Claim[], deps: SendDeps, lease: KeepAlive): Promise<Map<string, AttachmentContent[] | string | typeof HAND_BACK>> {
  const out = new Map<string, AttachmentContent[] | string | typeof HAND_BACK>();
  const listed = await deps.sf.attachments(claims.map((c) => c.record.Id));
  // Several records' files at once: one at a time, a batch whose records all carry a file
  // waited out a Salesforce round trip per file (18 s for 200 at 80 ms) while holding a slot.
  await eachLimit([...listed], FILE_CONCURRENCY, async ([recordId, files]) => {
    const total = files.reduce((n, f) => n + f.size, 0);
    if (total > MAX_ATTACHMENT_BYTES) {
      out.set(recordId, `Attachments total ${(total / 1048576).toFixed(1)} MB; Paubox allows 10 MB`);
      return;
    }
    const claim = claims.find((c) => c.record.Id === recordId)!;
    try {
      out.set(recordId, await retryUntil(() => spoolFiles(recordId, files, deps), {
        deadline: claim.claimedAt + deps.sendDeadlineMs,
        retryable: (err) => !(err instanceof DecryptError) && !isSalesforceRefusal(err),
        signal: deps.signal,
        onRetry: ({ attempt, delayMs, error }) => {
          deps.log.warn({ event: 'attachment.retry', recordId, attempt, delayMs, err: error });
          lease.note(`Waiting to read attached files; retry ${attempt + 1}`);
        },
      }));
    } catch (err) {
      if (deps.signal?.aborted) return void out.set(recordId, HAND_BACK); // shutdown: not a failure
      deps.log.warn({ event: 'attachment.failed', recordId, err });
      out.set(recordId, err instanceof KeyUnavailableError
        ? 'The KMS key stayed unavailable until the retry deadline, so attached files could not be staged; re-queue to try again'
        : 'Could not read an attached file from Salesforce (deleted, or no access); re-queue to try again');
    }
  });
  return out;
}

/** Streams a record's files into the encrypted spool and reads them back for the message. */
async function spoolFiles(recordId: string, files: Attachment[], deps: SendDeps): Promise<AttachmentContent[]> {
  const contents: AttachmentContent[] = [];
  for (const [i, f] of files.entries()) {
    const purpose = `attachment-${i}`;
    const key = await deps.spool.putStream(recordId, purpose, deps.sf.versionData(f.contentVersionId));
    const bytes = await collect(deps.spool.getStream(key, recordId, purpose));
    contents.push({
      fileName: f.pathOnClient || (f.fileExtension ? `${f.title}.${f.fileExtension}` : f.title),
      extension: f.fileExtension, size: bytes.length, content: bytes,
    });
  }
  return contents;
}

/** A 4xx from Salesforce (file deleted, no access): retrying cannot help. */
function isSalesforceRefusal(err: unknown): boolean {
  const e = err as { errorCode?: string; statusCode?: number; name?: string };
  return e?.errorCode === 'NOT_FOUND' || e?.errorCode === 'INSUFFICIENT_ACCESS' || e?.name === 'NOT_FOUND'
    || (typeof e?.statusCode === 'number' && e.statusCode >= 400 && e.statusCode < 500 && e.statusCode !== 429);
}

/** Runs `fn` over `items`, at most `limit` at once. */
async function eachLimit<T>(items: T[], limit: number, fn: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  const lanes = Array.from({ length: Math.min(limit, items.length) }, async () => {
    while (next < items.length) await fn(items[next++]!);
  });
  await Promise.all(lanes);
}

async function collect(stream: AsyncIterable<Uint8Array>): Promise<Buffer> {
  const parts: Uint8Array[] = [];
  for await (const p of stream) parts.push(p);
  return Buffer.concat(parts);
}

/** Posts one bulk-sized part, retrying what provably did not go out, until the deadline. */
async function postWithRetry(part: Ready[], deps: SendDeps, lease: KeepAlive): Promise<SendOutcome[]> {
  if (part.length === 0) return [];
  const now = deps.now ?? Date.now;
  const deadline = Math.min(...part.map((r) => r.claim.claimedAt)) + deps.sendDeadlineMs;
  for (let attempt = 0; ; attempt++) {
    await journal(deps, part, 'posting');
    try {
      const results: BulkItemResult[] = part.length === 1
        ? [{ ok: true, ...(await deps.paubox.send(part[0]!.message)) }]
        : await deps.paubox.sendBulk(part.map((r) => r.message));
      const sentAt = now();
      await journal(deps, part, 'sent', results.map((a) => (a.ok ? a.trackingId : undefined)));
      return part.map((r, i): SendOutcome => {
        const res = results[i]!;
        if (!res.ok) {
          return res.error.kind === 'unknown'
            ? unknownOutcome([r], res.error, deps)[0]!
            : failed(r.claim, `Paubox refused the message: ${res.error.message}`);
        }
        const m = r.message;
        return {
          claim: r.claim, kind: 'sent', trackingId: res.trackingId, sentAt,
          singleRecipient: m.recipients.length + (m.cc?.length ?? 0) + (m.bcc?.length ?? 0) === 1,
        };
      });
    } catch (err) {
      const e = err instanceof PauboxError ? err : new PauboxError('unknown', String(err));
      if (e.kind === 'unknown') return unknownOutcome(part, e, deps);
      await journal(deps, part, 'claimed');
      if (e.kind === 'rejected') {
        // A bulk is refused whole for one bad message: find it by sending singly.
        if (part.length > 1) return (await Promise.all(part.map((r) => postWithRetry([r], deps, lease)))).flat();
        return [failed(part[0]!.claim, `Paubox refused the message: ${e.message}`)];
      }
      const at = nextRetryAt({
        attempt, now: now(), deadline, policy: deps.backoff ?? DEFAULT_BACKOFF, retryAfterMs: e.retryAfterMs,
      });
      if (at === null) {
        return part.map((r) => failed(r.claim,
          `Paubox unavailable until the retry deadline (last: ${e.status ? `HTTP ${e.status}` : e.message}); re-queue to try again`));
      }
      // The reason (PHI-free by construction) says what an operator must fix, e.g. a peer below TLS 1.2.
      deps.log.warn({ event: 'paubox.retry', kind: e.kind, status: e.status, code: e.code, reason: e.message, messages: part.length, attempt, delayMs: at - now() });
      lease.note(`Waiting out Paubox ${e.status ?? e.kind}; retry ${attempt + 1}`); // the lease stays alive meanwhile
      await abortableSleep(at - now(), deps.signal);
      if (deps.signal?.aborted) return part.map((r) => ({ claim: r.claim, kind: 'handed-back' as const }));
    }
  }
}

function unknownOutcome(part: Ready[], e: PauboxError, deps: SendDeps): SendOutcome[] {
  deps.log.error({ event: 'paubox.outcome_unknown', messages: part.length, kind: e.kind, err: e });
  return part.map((r) => failed(r.claim,
    'Outcome unknown: the connection to Paubox broke after the message was sent to it. ' +
    'Check Paubox before re-queueing, or it may arrive twice', 'Unknown'));
}

async function journal(deps: SendDeps, part: Ready[], state: JournalEntry['state'], trackingIds?: Array<string | undefined>): Promise<void> {
  const t = (deps.now ?? Date.now)();
  await deps.store.journal.putMany(part.map((r, i) => ({
    recordId: r.claim.record.Id, attemptKey: r.claim.attemptKey, attemptId: r.claim.attemptId,
    state, claimedAt: r.claim.claimedAt, updatedAt: t,
    ...(trackingIds?.[i] ? { trackingId: trackingIds[i] } : {}),
  })));
}

/** Outcomes onto Salesforce (messages and attempts, batched), then the journal. */
export async function writeBack(outcomes: SendOutcome[], deps: SendDeps): Promise<void> {
  const messages: MessageUpdate[] = [];
  const attempts: AttemptUpdate[] = [];
  for (const o of outcomes) {
    const { record, attemptId } = o.claim;
    const finished = new Date(o.kind === 'sent' ? o.sentAt : (deps.now ?? Date.now)()).toISOString();
    if (o.kind === 'sent') {
      messages.push({ Id: record.Id, Status__c: 'Sent', Tracking_Id__c: o.trackingId, Sent_At__c: finished, Error__c: null });
      attempts.push({ Id: attemptId, Outcome__c: 'Sent', Tracking_Id__c: o.trackingId, Finished_At__c: finished, Error__c: null });
    } else if (o.kind === 'failed') {
      messages.push({ Id: record.Id, Status__c: 'Failed', Error__c: o.error });
      attempts.push({ Id: attemptId, Outcome__c: o.attemptOutcome, Error__c: o.error, Finished_At__c: finished });
    } else {
      messages.push({ Id: record.Id, Status__c: 'Queued', Error__c: 'Handed back at worker shutdown; will be sent again' });
      attempts.push({ Id: attemptId, Outcome__c: 'Failed', Error__c: 'Handed back at worker shutdown', Finished_At__c: finished });
    }
  }
  // PATCHes are idempotent: retried through a Salesforce outage; if it outlasts this, the
  // journal still holds the outcome and recovery writes it at the next start.
  const results = await retryUntil(async () => {
    await deps.sf.updateAttempts(attempts);
    return deps.sf.updateMessages(messages);
  }, {
    deadline: (deps.now ?? Date.now)() + WRITE_BACK_DEADLINE_MS,
    retryable: () => true,
    signal: deps.signal,
    onRetry: ({ attempt, delayMs, error }) => deps.log.warn({ event: 'writeback.retry', attempt, delayMs, err: error }),
  });
  results.forEach((r, i) => {
    if (!r.ok) deps.log.error({ event: 'writeback.failed', recordId: messages[i]!.Id, code: r.error?.code });
  });
  for (const o of outcomes) {
    const recordId = o.claim.record.Id;
    if (o.kind === 'sent') deps.log.info({ event: 'message.sent', recordId, trackingId: o.trackingId, attempt: o.claim.attempt });
    else if (o.kind === 'failed') deps.log.warn({ event: 'message.failed', recordId, attempt: o.claim.attempt, outcome: o.attemptOutcome, reason: o.error });
    else deps.log.info({ event: 'message.handed_back', recordId });
  }
  // Salesforce has it now: the local entries have done their job. One transaction for the
  // journal (a commit per record is a disk sync per record: it capped a burst's throughput).
  await deps.store.journal.deleteMany(outcomes.map((o) => o.claim.record.Id));
  await Promise.all(outcomes.map((o) => deps.spool.shred(o.claim.record.Id)));
}
