/**
 * Change Data Capture as an RxJS stream, through jsforce's streaming client (faye, CometD).
 *
 * faye handles the ordinary reconnects itself (`403::Unknown client` → re-handshake and
 * resubscribe). What it does not handle, and every long-running Salesforce consumer trips
 * over, is handled here in one place:
 * - advice `none` (`401::Authentication invalid`): faye goes silent forever → new token,
 *   new client, resubscribe from our own checkpoint;
 * - a subscribe that fails (replay id past retention, daily allocation exhausted) is never
 *   reported by faye → we watch `/meta/subscribe` replies ourselves;
 * - a connection that goes silent without an error (half-open socket, stalled proxy) →
 *   a watchdog rebuilds the client when nothing has been heard for longer than the
 *   server's own connect timeout allows.
 * The replay id sent on every (re)subscribe is our checkpoint — the last event whose work
 * is done — never the last one received (jsforce's Replay extension records on receipt).
 */
import { Observable } from 'rxjs';
import type { Log } from '../log.js';
import type { SalesforceSession } from './connection.js';
import type { ChangeEventData } from '../sandbox/org/events.js';

export type StreamSignal =
  | { type: 'event'; data: ChangeEventData }
  /** (Re)subscribed: events before this moment may have been missed → reconcile. */
  | { type: 'subscribed'; replayFrom: number; reason: string }
  /** Change events are unavailable for a while; reconciliation must carry the load. */
  | { type: 'down'; reason: string; retryInMs: number };

export interface ChangeStreamOptions {
  session: SalesforceSession;
  channel: string;
  /** Last replay id whose work is done (opaque text), read at every (re)subscribe. */
  checkpoint: () => string | undefined;
  log: Log;
  /** Silence tolerated beyond 1.2 × the server's connect timeout before a rebuild. */
  watchdogMarginMs?: number;
  /** How long to stay off after `403::Organization total events daily limit exceeded`. */
  dailyLimitBackoffMs?: number;
  /** Back-off after other subscribe/handshake failures. */
  retryMs?: number;
}

interface BayeuxMessage {
  channel: string;
  successful?: boolean;
  error?: string;
  subscription?: string;
  advice?: { reconnect?: string; timeout?: number; interval?: number };
  ext?: Record<string, unknown> & { sfdc?: { failureReason?: string } };
  data?: unknown;
}

interface FayeClient {
  addExtension(ext: object): void;
  subscribe(channel: string, cb: (data: unknown) => void): { cancel(): void };
  setHeader(name: string, value: string): void;
  disconnect(): void;
}

const DEFAULT_CONNECT_TIMEOUT_MS = 110_000;

export function changeStream(opts: ChangeStreamOptions): Observable<StreamSignal> {
  const { session, channel, log } = opts;
  const marginMs = opts.watchdogMarginMs ?? 10_000;
  const dailyLimitBackoffMs = opts.dailyLimitBackoffMs ?? 15 * 60_000;
  const retryMs = opts.retryMs ?? 5_000;

  return new Observable<StreamSignal>((subscriber) => {
    let client: FayeClient | undefined;
    let generation = 0;
    let closed = false;
    let lastHeard = Date.now();
    let connectTimeoutMs = DEFAULT_CONNECT_TIMEOUT_MS;
    let replayOverride: number | undefined;
    let rebuildTimer: NodeJS.Timeout | undefined;

    const replayFrom = (): number => replayOverride ?? Number(opts.checkpoint() ?? -1);

    const build = (reason: string) => {
      teardown();
      if (closed) return;
      const gen = ++generation;
      lastHeard = Date.now();
      const ext = {
        outgoing: (msg: BayeuxMessage, cb: (m: BayeuxMessage) => void) => {
          if (msg.channel === '/meta/subscribe' && msg.subscription === channel) {
            msg.ext = { ...msg.ext, replay: { [channel]: replayFrom() } };
          }
          cb(msg);
        },
        incoming: (msg: BayeuxMessage, cb: (m: BayeuxMessage) => void) => {
          if (gen !== generation) return; // a torn-down client: drop it
          lastHeard = Date.now();
          if (msg.advice?.timeout) connectTimeoutMs = msg.advice.timeout;
          if (msg.channel.startsWith('/meta/')) onMeta(msg);
          // Swallow advice "none": faye would stop for good; we rebuild instead.
          if (msg.advice?.reconnect === 'none') return;
          cb(msg);
        },
      };
      const c = session.conn.streaming.createClient([ext as never]) as unknown as FayeClient;
      client = c;
      c.subscribe(channel, (data) => subscriber.next({ type: 'event', data: data as ChangeEventData }));
      log.info({ event: 'stream.connecting', channel, replayFrom: replayFrom(), reason });
    };

    const onMeta = (msg: BayeuxMessage) => {
      if (msg.successful) {
        if (msg.channel === '/meta/subscribe' && msg.subscription === channel) {
          const from = replayFrom();
          replayOverride = undefined;
          log.info({ event: 'stream.subscribed', channel, replayFrom: from });
          subscriber.next({ type: 'subscribed', replayFrom: from, reason: 'subscribed' });
        }
        return;
      }
      const error = String(msg.error ?? '');
      const failure = String(msg.ext?.sfdc?.failureReason ?? '');
      if (/401/.test(error) || /401/.test(failure)) {
        log.warn({ event: 'stream.auth_expired', channel, meta: msg.channel });
        rebuild('session expired', 0, true);
      } else if (/daily limit/i.test(error)) {
        log.warn({
          event: 'stream.unavailable', channel, reason: 'daily-event-limit',
          detail: "the org's daily event delivery allocation is exhausted; sending through reconciliation only",
          retryInMs: dailyLimitBackoffMs,
        });
        subscriber.next({ type: 'down', reason: 'daily-event-limit', retryInMs: dailyLimitBackoffMs });
        rebuild('daily event limit', dailyLimitBackoffMs);
      } else if (msg.channel === '/meta/subscribe' && /replayId/i.test(error)) {
        log.warn({ event: 'stream.replay_invalid', channel, replayFrom: replayFrom() });
        replayOverride = -1; // the gap is covered by reconciliation
        rebuild('replay id outside retention', 0);
      } else if (/403::Unknown client/i.test(error) || msg.advice?.reconnect === 'handshake') {
        log.info({ event: 'stream.rehandshake', channel }); // faye re-handshakes and resubscribes itself
      } else if (msg.channel !== '/meta/connect' || msg.advice?.reconnect === 'none') {
        log.warn({ event: 'stream.error', channel, meta: msg.channel, error: error.slice(0, 120) });
        rebuild(`${msg.channel} failed`, retryMs);
      }
    };

    const rebuild = (reason: string, delayMs: number, reauth = false) => {
      if (closed || rebuildTimer) return;
      teardown();
      rebuildTimer = setTimeout(async () => {
        rebuildTimer = undefined;
        if (closed) return;
        if (reauth) {
          try {
            await session.reauthenticate();
          } catch (err) {
            log.error({ event: 'stream.reauth_failed', err });
            rebuild(reason, retryMs, true);
            return;
          }
        }
        log.info({ event: 'stream.reconnected', channel, reason });
        build(reason);
      }, delayMs);
    };

    const teardown = () => {
      generation++;
      const c = client;
      client = undefined;
      if (c) {
        try {
          c.disconnect();
        } catch {
          /* a dead client may throw on disconnect; it is being replaced anyway */
        }
      }
    };

    // The REST side refreshed the token: the faye client keeps the header it was made with.
    const onRefresh = (token: string) => client?.setHeader('Authorization', `OAuth ${token}`);
    session.conn.on('refresh', onRefresh);

    const watchdog = setInterval(() => {
      const limit = 1.2 * connectTimeoutMs + marginMs;
      if (client && !rebuildTimer && Date.now() - lastHeard > limit) {
        log.warn({ event: 'stream.silent', channel, silentMs: Date.now() - lastHeard });
        rebuild('silent stream', 0);
      }
    }, Math.min(5_000, marginMs));
    watchdog.unref?.();

    build('start');

    return () => {
      closed = true;
      clearInterval(watchdog);
      if (rebuildTimer) clearTimeout(rebuildTimer);
      session.conn.removeListener('refresh', onRefresh);
      teardown();
    };
  });
}
