/**
 * The composition root: builds each outside system's adapter from the configuration and
 * hands them to the pipeline. Nothing here knows HTTP; nothing below knows the config.
 */
import { openSqliteStore } from './store/store.js';
import { Spool, startPurgeTimer } from './store/spool.js';
import { Envelope, kmsKeyring, createKmsClient } from './crypto/envelope.js';
import { connectSalesforce, type SalesforceSession } from './salesforce/connection.js';
import { retryUntil } from './domain/backoff.js';
import { salesforceRecords } from './salesforce/records.js';
import { createPauboxClient } from './paubox/client.js';
import { ReceiptPoller } from './pipeline/receipts.js';
import { startPipeline } from './pipeline/pipeline.js';
import type { Config } from './config.js';
import type { Log } from './log.js';

export interface Worker {
  stop(): Promise<void>;
}

export interface WorkerOptions {
  /** Test hooks for timings the real services fix (watchdog margin, daily-limit back-off). */
  watchdogMarginMs?: number;
  dailyLimitBackoffMs?: number;
  statsIntervalMs?: number;
}

/**
 * Salesforce down or unreachable at start is a wait, not a crash loop: retried with
 * backoff until it answers. A refused login is a configuration problem and is thrown
 * (main.ts turns it into exit 78).
 */
async function connectUntilReachable(cfg: Config, log: Log): Promise<SalesforceSession> {
  return retryUntil(() => connectSalesforce(cfg), {
    deadline: Number.POSITIVE_INFINITY,
    policy: { initialMs: 1000, maxMs: 60_000, factor: 2, jitter: 0.2 },
    retryable: (err) => !isLoginRefused(err),
    onRetry: ({ attempt, delayMs, error }) => log.warn({ event: 'salesforce.unreachable', attempt, delayMs, err: error }),
  });
}

export function isLoginRefused(err: unknown): boolean {
  const e = err as { name?: string; errorCode?: string; message?: string };
  return /invalid_grant|invalid_client|authentication failure|unsupported_grant_type/i.test(`${e?.name} ${e?.errorCode} ${e?.message}`);
}

export async function startWorker(cfg: Config, log: Log, opts: WorkerOptions = {}): Promise<Worker> {
  const store = await openSqliteStore(cfg.dataDir);
  // A burst seals two to three entries per message (receipt state, files): at 1,000 uses a
  // data key, 10,000 messages cost ~30 GenerateDataKey calls. The 5-minute age bound is what
  // limits a key's exposure; 10,000 uses stays far below AES-GCM's random-IV limit (2^32).
  const envelope = new Envelope(kmsKeyring({
    keyId: cfg.kms.keyId,
    client: createKmsClient({ region: cfg.kms.region, ...(cfg.kms.endpoint ? { endpoint: cfg.kms.endpoint } : {}) }),
  }), { maxUses: 10_000 });
  const spool = new Spool(store, envelope);
  const stopPurge = startPurgeTimer(spool, cfg.spoolMaxAgeMs);
  const session = await connectUntilReachable(cfg, log);
  const sf = salesforceRecords(session.conn);
  const paubox = createPauboxClient({ baseUrl: cfg.paubox.baseUrl, apiKey: cfg.paubox.apiKey });
  const abort = new AbortController();
  const receipts = new ReceiptPoller({
    store, envelope, paubox, sf, log,
    pollIntervalMs: cfg.pollIntervalMs, openTrackingHours: cfg.openTrackingHours, softBounceGiveUpMs: cfg.softBounceGiveUpMs,
  });
  log.info({ event: 'worker.started', worker: cfg.workerName, userId: session.userId, sandbox: cfg.sandbox });
  const pipeline = await startPipeline({
    session, sf, store, spool, paubox, receipts, log,
    workerName: cfg.workerName, clientName: cfg.clientName, subscribe: cfg.subscribe,
    reconcileIntervalMs: cfg.reconcileIntervalMs, claimLeaseMs: cfg.claimLeaseMs,
    sendDeadlineMs: cfg.sendDeadlineMs, resendUnknown: cfg.resendUnknown,
    signal: abort.signal,
    ...(opts.watchdogMarginMs !== undefined ? { watchdogMarginMs: opts.watchdogMarginMs } : {}),
    ...(opts.dailyLimitBackoffMs !== undefined ? { dailyLimitBackoffMs: opts.dailyLimitBackoffMs } : {}),
  });

  const statsTimer = setInterval(() => {
    const usage = sf.apiUsage();
    log.info({
      event: 'stats', inFlight: pipeline.stats.inFlight(), sent: pipeline.stats.sent, failed: pipeline.stats.failed,
      changeEvents: pipeline.stats.received, oldestQueuedAgeMs: pipeline.stats.oldestQueuedAgeMs(),
      streamDown: pipeline.stats.streamDown(), receiptPolls: receipts.stats.polls,
      ...(usage ? { apiUsed: usage.used, apiLimit: usage.limit } : {}),
    });
  }, opts.statsIntervalMs ?? 60_000);
  statsTimer.unref();

  return {
    async stop() {
      clearInterval(statsTimer);
      abort.abort();
      await pipeline.stop();
      stopPurge();
      envelope.close();
      await store.close();
      log.info({ event: 'worker.stopped' });
    },
  };
}
