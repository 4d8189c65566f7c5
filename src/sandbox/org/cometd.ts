/**
 * The sandbox org's CometD (Bayeux 1.0) endpoint for Change Data Capture, `/cometd/<NN.N>`,
 * as Salesforce runs it: long-polling only, OAuth on every request, the replay extension,
 * 110 s held connects, a 40 s reconnect window, the daily delivery allocation.
 *
 * Why not faye's own server (faye.NodeAdapter)? Its server extensions do see the request,
 * but the rest of what Salesforce does sits inside faye's engine where extensions cannot
 * reach: a subscribe that sends one client its replayed backlog ahead of live events;
 * client expiry at 2 × the hold timeout (Salesforce: 110 s hold, but 40 s to come back);
 * `advice: handshake` forced onto every error; no way to hold connects forever (stall),
 * cut them (dropConnects) or count deliveries per client; and it accepts websocket
 * upgrades. The protocol is small, so this is a small Bayeux server of its own
 * (`cometd-sessions.ts`), and this file is its HTTP side.
 */
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';
import { randomBytes } from 'node:crypto';
import type { ChangeEventLog, ChangeType, SessionValidator } from './events.js';
import type { CallCounter } from '../counter.js';
import type { SandboxClock } from '../clock.js';
import { BayeuxSessions, type Exchange } from './cometd-sessions.js';
import { bearerToken, channelOf, isObject, type BayeuxReply, type BayeuxRequest } from './cometd-protocol.js';
import { MESSAGE_OBJECT } from '../../domain/record.js';

export interface CometdOptions {
  events: ChangeEventLog;
  sessions: SessionValidator;
  counter: CallCounter;
  clock: SandboxClock;
  /** How long an idle /meta/connect is held (Salesforce: 110 000 ms). */
  connectTimeoutMs?: number;
  /** After a response, the next connect must arrive within this (Salesforce: 40 000 ms). */
  reconnectWindowMs?: number;
  /** Daily event-delivery allocation (all subscribers added up). */
  dailyDeliveryLimit?: number;
  /** Commit → deliverable latency of live events (benchmarks; default 0). */
  deliveryLatencyMs?: number;
}

export interface CometdServer {
  /** Drops every client: the next request of each gets `403::Unknown client`. */
  forgetClients(): void;
  /** Answers every held /meta/connect now (empty), as a load balancer cutting connections. */
  dropConnects(): void;
  /** While on, the server accepts requests but never answers connects or delivers events. */
  stall(on: boolean): void;
  /**
   * Publishes a gap event (GAP_CREATE, …, GAP_OVERFLOW) for these record ids, on the
   * channel of `entityName` (default `Secure_EmailMessage__c`).
   */
  emitGap(changeType: string, recordIds: string[], entityName?: string): void;
  /** Number of CometD clients currently subscribed to each channel. */
  subscriptions(): Record<string, number>;
  /** Events delivered so far (counts against the daily allocation). */
  deliveries(): number;
  setDailyDeliveryLimit(limit: number): void;
  /** From now on, live events reach subscribers this long after their commit. */
  setDeliveryLatency(ms: number): void;
  close(): Promise<void>;
}

/** Salesforce's ceiling on a CometD request body. */
export const MAX_BODY_BYTES = 32 * 1024;
const PATH = /^\/cometd\/\d+\.\d+(?:\/[^?]*)?(?:\?.*)?$/;
const BROWSER_COOKIE = 'BAYEUX_BROWSER';
/** The dummy record id Salesforce puts in GAP_OVERFLOW events. */
export const OVERFLOW_RECORD_ID = '000000000000000AAA';
const GAP_TYPES: readonly ChangeType[] = ['GAP_CREATE', 'GAP_UPDATE', 'GAP_DELETE', 'GAP_UNDELETE', 'GAP_OVERFLOW'];

/**
 * Serves `/cometd/<version>` on the org's http.Server. Requests for it are taken before the
 * server's own `request` listeners see them, whether those were added before or after.
 */
export function attachCometd(server: Server, opts: CometdOptions): CometdServer {
  const engine = new BayeuxSessions({
    events: opts.events,
    counter: opts.counter,
    now: () => opts.clock.now(),
    connectTimeoutMs: opts.connectTimeoutMs ?? 110_000,
    reconnectWindowMs: opts.reconnectWindowMs ?? 40_000,
    dailyDeliveryLimit: opts.dailyDeliveryLimit ?? 1e9,
    deliveryLatencyMs: opts.deliveryLatencyMs ?? 0,
  });
  const open = new Set<ServerResponse>();
  const restore = intercept(server, {
    request: (req, res) => serve(req, res, engine, opts.sessions, open),
    upgrade: (_req, socket) => refuseUpgrade(socket),
  });

  return {
    forgetClients: () => engine.forgetClients(),
    dropConnects: () => engine.dropConnects(),
    stall: (on) => engine.stall(on),
    emitGap: (changeType, recordIds, entityName = MESSAGE_OBJECT) =>
      publishGap(opts, changeType, recordIds, entityName),
    subscriptions: () => engine.subscriptions(),
    deliveries: () => engine.deliveries(),
    setDailyDeliveryLimit: (limit) => engine.setDailyDeliveryLimit(limit),
    setDeliveryLatency: (ms) => engine.setDeliveryLatency(ms),
    close: async () => {
      restore();
      engine.close();
      for (const res of open) res.destroy();
      open.clear();
    },
  };
}

type RequestHandler = (req: IncomingMessage, res: ServerResponse) => void;
type UpgradeHandler = (req: IncomingMessage, socket: Duplex) => void;

/**
 * Routes CometD requests away from the server's other listeners by wrapping `emit`: the
 * org's REST handler may be attached before or after us, and must never see them.
 */
function intercept(server: Server, handlers: { request: RequestHandler; upgrade: UpgradeHandler }): () => void {
  const emit = server.emit;
  server.emit = function (this: Server, event: string | symbol, ...args: unknown[]): boolean {
    const req = args[0] as IncomingMessage | undefined;
    if ((event === 'request' || event === 'upgrade') && PATH.test(req?.url ?? '')) {
      if (event === 'request') handlers.request(req!, args[1] as ServerResponse);
      else handlers.upgrade(req!, args[1] as Duplex);
      return true;
    }
    return (emit as (event: string | symbol, ...args: unknown[]) => boolean).call(this, event, ...args);
  } as Server['emit'];
  return () => {
    server.emit = emit;
  };
}

/** Salesforce speaks long-polling only; a websocket upgrade is turned away. */
function refuseUpgrade(socket: Duplex): void {
  socket.end('HTTP/1.1 400 Bad Request\r\nConnection: close\r\nContent-Length: 0\r\n\r\n');
}

function serve(
  req: IncomingMessage, res: ServerResponse, engine: BayeuxSessions,
  sessions: SessionValidator, open: Set<ServerResponse>,
): void {
  if (req.method !== 'POST') return plain(res, 400, 'CometD takes POST requests (long-polling)');
  readBody(req, (body) => {
    if (body === 'too-large') return plain(res, 413, 'Request entity too large', true);
    const messages = parseMessages(body);
    if (!messages) return plain(res, 400, 'Malformed Bayeux message');
    const token = bearerToken(req.headers.authorization);
    const userId = token === undefined ? undefined : sessions.validate(token);
    keepBrowserCookie(req, res);
    open.add(res);
    engine.process(messages, userId, exchangeOf(res, open));
  });
}

function exchangeOf(res: ServerResponse, open: Set<ServerResponse>): Exchange {
  return {
    respond(replies: BayeuxReply[]) {
      open.delete(res);
      if (res.destroyed || res.writableEnded) return;
      const body = JSON.stringify(replies);
      res.writeHead(200, { 'Content-Type': 'application/json;charset=UTF-8', 'Content-Length': Buffer.byteLength(body) });
      res.end(body);
    },
    onAbort(cb: () => void) {
      res.on('close', () => {
        open.delete(res);
        if (!res.writableEnded) cb();
      });
    },
  };
}

function readBody(req: IncomingMessage, done: (body: string | 'too-large') => void): void {
  const chunks: Buffer[] = [];
  let size = 0;
  let finished = false;
  const finish = (body: string | 'too-large') => {
    if (finished) return;
    finished = true;
    done(body);
  };
  const declared = Number(req.headers['content-length'] ?? 0);
  if (declared > MAX_BODY_BYTES) return finish('too-large');
  req.on('data', (chunk: Buffer) => {
    size += chunk.length;
    if (size > MAX_BODY_BYTES) return finish('too-large');
    if (!finished) chunks.push(chunk);
  });
  req.on('end', () => finish(Buffer.concat(chunks).toString('utf8')));
  req.on('error', () => {
    finished = true;
  });
}

/** A Bayeux request body: one message object or an array of them. */
function parseMessages(body: string): BayeuxRequest[] | undefined {
  let parsed: unknown;
  try {
    parsed = JSON.parse(body);
  } catch {
    return undefined;
  }
  const list = Array.isArray(parsed) ? parsed : [parsed];
  if (list.length === 0 || !list.every(isObject)) return undefined;
  return list as BayeuxRequest[];
}

/** Salesforce ties a browser to its CometD sessions with this cookie; faye keeps it. */
function keepBrowserCookie(req: IncomingMessage, res: ServerResponse): void {
  if ((req.headers.cookie ?? '').includes(`${BROWSER_COOKIE}=`)) return;
  const value = randomBytes(12).toString('base64url');
  res.setHeader('Set-Cookie', `${BROWSER_COOKIE}=${value}; Path=/; HttpOnly`);
}

function plain(res: ServerResponse, status: number, text: string, close = false): void {
  res.writeHead(status, { 'Content-Type': 'text/plain', ...(close ? { Connection: 'close' } : {}) });
  res.end(text);
}

/** A gap event carries record ids and no fields: the subscriber must re-read those records. */
function publishGap(opts: CometdOptions, changeType: string, recordIds: string[], entityName: string): void {
  if (!GAP_TYPES.includes(changeType as ChangeType)) throw new RangeError(`not a gap change type: ${changeType}`);
  const channel = channelOf(entityName);
  const now = opts.clock.now();
  const retained = opts.events.replayFrom(channel, -2);
  const schema = retained === 'invalid' ? undefined : retained.at(-1)?.data.schema;
  opts.events.publish(channel, schema ?? 'sandbox-gap-schema', {
    ChangeEventHeader: {
      entityName,
      recordIds: changeType === 'GAP_OVERFLOW' ? [OVERFLOW_RECORD_ID] : [...recordIds],
      changeType: changeType as ChangeType,
      changeOrigin: '',
      transactionKey: randomBytes(16).toString('hex'),
      sequenceNumber: 1,
      commitTimestamp: now,
      commitNumber: now,
      commitUser: '',
      changedFields: [],
    },
  });
}
