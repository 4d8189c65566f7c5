/**
 * The Bayeux session engine behind the sandbox org's `/cometd/<version>` endpoint: CometD
 * clients, their CDC subscriptions, the held `/meta/connect`, replay and live delivery, the
 * daily delivery allocation. Knows nothing of HTTP: a request arrives as parsed messages
 * plus the user id its token resolved to, and leaves through an `Exchange`.
 */
import { randomBytes } from 'node:crypto';
import type { ChangeEventData, ChangeEventLog, StoredEvent } from './events.js';
import type { CallCounter } from '../counter.js';
import {
  ADVICE_HANDSHAKE, ADVICE_NONE, ALL_CHANGE_EVENTS, CONNECTION_TYPE, ERRORS, META,
  failure, isChangeEventChannel, isObject, replayOption, replyTo,
  type BayeuxReply, type BayeuxRequest,
} from './cometd-protocol.js';

export interface SessionOptions {
  events: ChangeEventLog;
  counter: CallCounter;
  now: () => number;
  connectTimeoutMs: number;
  reconnectWindowMs: number;
  dailyDeliveryLimit: number;
  /** Commit → deliverable: how long a live event takes to reach subscribers (default 0). */
  deliveryLatencyMs?: number;
}

/** Where the replies to one HTTP request go. */
export interface Exchange {
  respond(replies: BayeuxReply[]): void;
  /** Registers what to do when the client hangs up before it got its answer. */
  onAbort(cb: () => void): void;
}

interface Delivery {
  channel: string;
  data: ChangeEventData;
}

interface HeldConnect {
  msg: BayeuxRequest;
  exchange: Exchange;
  timer?: NodeJS.Timeout;
}

interface Client {
  id: string;
  userId: string;
  channels: Set<string>;
  /** Events waiting for the next connect, replayed ones first, in order. */
  queue: Delivery[];
  held?: HeldConnect;
  connectedOnce: boolean;
  /** Runs from each answered connect until the next one arrives. */
  dropTimer?: NodeJS.Timeout;
  flushPending: boolean;
}

export class BayeuxSessions {
  private readonly clients = new Map<string, Client>();
  private readonly allocation: DeliveryAllocation;
  private stalled = false;
  private deliveryLatencyMs: number;
  private readonly onEvent = (e: StoredEvent) => this.fanOut(e);

  constructor(private readonly opts: SessionOptions) {
    this.allocation = new DeliveryAllocation(opts.now, opts.dailyDeliveryLimit);
    this.deliveryLatencyMs = opts.deliveryLatencyMs ?? 0;
    opts.events.on('event', this.onEvent);
  }

  /** Handles one HTTP request's messages; a connect among them delays the whole answer. */
  process(messages: BayeuxRequest[], userId: string | undefined, exchange: Exchange): void {
    const replies: BayeuxReply[] = [];
    let connect: BayeuxRequest | undefined;
    for (const msg of messages) {
      if (msg.channel === META.connect && !connect) connect = msg;
      else replies.push(this.handle(msg, userId));
    }
    if (!connect) return exchange.respond(replies);
    this.connect(connect, userId, {
      respond: (r) => exchange.respond([...replies, ...r]),
      onAbort: (cb) => exchange.onAbort(cb),
    });
  }

  // ── controls ────────────────────────────────────────────────────────────────────────

  forgetClients(): void {
    for (const client of [...this.clients.values()]) this.forget(client, 'unknown');
  }

  dropConnects(): void {
    for (const client of this.clients.values()) this.answer(client, false);
  }

  stall(on: boolean): void {
    this.stalled = on;
    for (const client of this.clients.values()) {
      const held = client.held;
      if (!held) continue;
      clearTimeout(held.timer);
      if (!on) this.hold(client, held);
    }
  }

  subscriptions(): Record<string, number> {
    const counts: Record<string, number> = {};
    for (const client of this.clients.values()) {
      for (const ch of client.channels) counts[ch] = (counts[ch] ?? 0) + 1;
    }
    return counts;
  }

  deliveries(): number {
    return this.allocation.total;
  }

  setDailyDeliveryLimit(limit: number): void {
    this.allocation.limit = limit;
  }

  setDeliveryLatency(ms: number): void {
    this.deliveryLatencyMs = Math.max(0, ms);
  }

  /** Forgets every client without answering; the HTTP side cuts what is still open. */
  close(): void {
    this.opts.events.off('event', this.onEvent);
    for (const client of this.clients.values()) {
      clearTimeout(client.dropTimer);
      clearTimeout(client.held?.timer);
    }
    this.clients.clear();
  }

  // ── meta channels ───────────────────────────────────────────────────────────────────

  private handle(msg: BayeuxRequest, userId: string | undefined): BayeuxReply {
    switch (msg.channel) {
      case META.handshake: return this.handshake(msg, userId);
      case META.subscribe: return this.subscribe(msg, userId);
      case META.unsubscribe: return this.unsubscribe(msg, userId);
      case META.disconnect: return this.disconnect(msg, userId);
    }
    const meta = typeof msg.channel === 'string' && msg.channel.startsWith('/meta/');
    // Salesforce takes no publishes over CometD (events come from record changes only).
    return failure(msg, meta || msg.channel === META.connect ? ERRORS.unknownChannel : ERRORS.publishForbidden);
  }

  private handshake(msg: BayeuxRequest, userId: string | undefined): BayeuxReply {
    this.opts.counter.count('cometd.handshake');
    if (!userId) {
      return failure(msg, ERRORS.handshakeDenied, {
        ext: { sfdc: { failureReason: ERRORS.authInvalid }, replay: true },
        advice: ADVICE_NONE,
      });
    }
    const types = msg.supportedConnectionTypes;
    if (Array.isArray(types) && !types.includes(CONNECTION_TYPE)) {
      return failure(msg, ERRORS.connectionType, { supportedConnectionTypes: [CONNECTION_TYPE] });
    }
    const client = this.newClient(userId);
    return {
      ...replyTo(msg),
      clientId: client.id,
      version: '1.0',
      minimumVersion: '1.0',
      supportedConnectionTypes: [CONNECTION_TYPE],
      ext: { replay: true, 'payload.format': true },
      successful: true,
    };
  }

  private connect(msg: BayeuxRequest, userId: string | undefined, exchange: Exchange): void {
    this.opts.counter.count('cometd.connect');
    const client = this.authorize(msg, userId, true);
    if (!isClient(client)) return exchange.respond([client]);
    if (msg.connectionType !== CONNECTION_TYPE) {
      return exchange.respond([failure(msg, ERRORS.connectionType, { advice: ADVICE_NONE })]);
    }
    // Salesforce answers with advice none: faye then goes silent for good (and jsforce's
    // AuthFailure extension fires), so a subscriber must read `error`, not just the advice.
    if (this.allocation.exhausted()) {
      return exchange.respond([failure(msg, ERRORS.dailyLimit, { advice: ADVICE_NONE })]);
    }
    clearTimeout(client.dropTimer);
    if (client.held) this.answer(client, false); // a newer connect supersedes the held one
    const held: HeldConnect = { msg, exchange };
    client.held = held;
    exchange.onAbort(() => this.abandoned(client, held));
    // CometD answers a client's first connect at once, which is also how its advice
    // (timeout 110 s) reaches faye before faye's own 60 s default would give up.
    const now = !client.connectedOnce || (isObject(msg.advice) && msg.advice['timeout'] === 0);
    client.connectedOnce = true;
    if (now && !this.stalled) return this.answer(client, true);
    this.hold(client, held);
  }

  private subscribe(msg: BayeuxRequest, userId: string | undefined): BayeuxReply {
    this.opts.counter.count('cometd.subscribe');
    const client = this.authorize(msg, userId, false);
    if (!isClient(client)) return client;
    const channel = msg.subscription;
    if (typeof channel !== 'string') return failure(msg, ERRORS.badRequest);
    const echo = { subscription: channel };
    if (!isChangeEventChannel(channel)) return failure(msg, ERRORS.unknownChannel, echo);
    if (this.allocation.exhausted()) return failure(msg, ERRORS.dailyLimit, echo);
    const option = replayOption(msg.ext, channel);
    if ('error' in option) return failure(msg, option.error, echo);
    const replay = typeof option.id === 'number' ? this.opts.events.replayFrom(channel, option.id) : 'invalid';
    if (replay === 'invalid') return failure(msg, ERRORS.invalidReplayId(option.id), echo);

    // A repeated subscribe restarts that channel's stream from the new replay option.
    client.queue = client.queue.filter((d) => d.channel !== channel);
    client.channels.add(channel);
    for (const e of replay) client.queue.push({ channel, data: e.data });
    this.scheduleFlush(client);
    return { ...replyTo(msg), ...echo, successful: true };
  }

  private unsubscribe(msg: BayeuxRequest, userId: string | undefined): BayeuxReply {
    this.opts.counter.count('cometd.unsubscribe');
    const client = this.authorize(msg, userId, false);
    if (!isClient(client)) return client;
    const channel = msg.subscription;
    if (typeof channel !== 'string') return failure(msg, ERRORS.badRequest);
    client.channels.delete(channel);
    client.queue = client.queue.filter((d) => d.channel !== channel);
    return { ...replyTo(msg), subscription: channel, successful: true };
  }

  private disconnect(msg: BayeuxRequest, userId: string | undefined): BayeuxReply {
    this.opts.counter.count('cometd.disconnect');
    const client = this.authorize(msg, userId, false);
    if (!isClient(client)) return client;
    this.forget(client, 'empty');
    return { ...replyTo(msg), successful: true };
  }

  /** The client a message names, or the error reply when its token or client id is no good. */
  private authorize(msg: BayeuxRequest, userId: string | undefined, isConnect: boolean): Client | BayeuxReply {
    const client = typeof msg.clientId === 'string' ? this.clients.get(msg.clientId) : undefined;
    if (!userId || (client && client.userId !== userId)) {
      return failure(msg, ERRORS.authInvalid, isConnect ? { advice: ADVICE_NONE } : {});
    }
    if (!client) return failure(msg, ERRORS.unknownClient, { advice: ADVICE_HANDSHAKE });
    return client;
  }

  // ── holding and answering connects ──────────────────────────────────────────────────

  private hold(client: Client, held: HeldConnect): void {
    if (this.stalled) return; // a half-open stream: the connect just hangs
    if (client.queue.length > 0) return this.answer(client, true);
    held.timer = setTimeout(() => this.answer(client, true), this.opts.connectTimeoutMs).unref();
  }

  /** Answers the held connect, with the pending events that the allocation still allows. */
  private answer(client: Client, deliver: boolean): void {
    const held = client.held;
    if (!held) return;
    client.held = undefined;
    clearTimeout(held.timer);
    const events = deliver ? this.take(client) : [];
    held.exchange.respond([...events, { ...replyTo(held.msg), successful: true, advice: this.advice() }]);
    this.armDrop(client);
  }

  private take(client: Client): BayeuxReply[] {
    const n = Math.min(client.queue.length, this.allocation.remaining());
    if (n === 0) return [];
    this.allocation.record(n);
    this.opts.counter.count('cometd.delivery', n);
    return client.queue.splice(0, n).map((d) => ({ channel: d.channel, data: d.data }));
  }

  /** The client hung up on its held connect: from now on it has the reconnect window. */
  private abandoned(client: Client, held: HeldConnect): void {
    if (client.held !== held) return;
    clearTimeout(held.timer);
    client.held = undefined;
    if (this.clients.get(client.id) === client) this.armDrop(client);
  }

  private armDrop(client: Client): void {
    clearTimeout(client.dropTimer);
    client.dropTimer = setTimeout(() => this.forget(client, 'unknown'), this.opts.reconnectWindowMs).unref();
  }

  private forget(client: Client, heldAnswer: 'unknown' | 'empty'): void {
    this.clients.delete(client.id);
    clearTimeout(client.dropTimer);
    const held = client.held;
    if (!held) return;
    client.held = undefined;
    clearTimeout(held.timer);
    held.exchange.respond([
      heldAnswer === 'unknown'
        ? failure(held.msg, ERRORS.unknownClient, { advice: ADVICE_HANDSHAKE })
        : { ...replyTo(held.msg), successful: true },
    ]);
  }

  // ── live events ─────────────────────────────────────────────────────────────────────

  /** Live events reach subscribers `deliveryLatencyMs` after the commit (same delay: order kept). */
  private fanOut(e: StoredEvent): void {
    if (this.deliveryLatencyMs > 0) setTimeout(() => this.enqueue(e), this.deliveryLatencyMs).unref();
    else this.enqueue(e);
  }

  private enqueue(e: StoredEvent): void {
    for (const client of this.clients.values()) {
      for (const ch of client.channels) {
        if (ch === e.channel || ch === ALL_CHANGE_EVENTS) client.queue.push({ channel: ch, data: e.data });
      }
      this.scheduleFlush(client);
    }
  }

  /** Answers a held connect on the next turn, so events published together go out together. */
  private scheduleFlush(client: Client): void {
    if (!client.held || client.flushPending || this.stalled || client.queue.length === 0) return;
    client.flushPending = true;
    setImmediate(() => {
      client.flushPending = false;
      if (!this.stalled && client.queue.length > 0) this.answer(client, true);
    });
  }

  private advice(): BayeuxReply {
    return { reconnect: 'retry', interval: 0, timeout: this.opts.connectTimeoutMs };
  }

  private newClient(userId: string): Client {
    const id = BigInt('0x' + randomBytes(16).toString('hex')).toString(36);
    const client: Client = { id, userId, channels: new Set(), queue: [], connectedOnce: false, flushPending: false };
    this.clients.set(id, client);
    this.armDrop(client); // a handshake not followed by a connect expires like any other gap
    return client;
  }
}

function isClient(v: Client | BayeuxReply): v is Client {
  return (v as Partial<Client>).channels instanceof Set;
}

/**
 * Event deliveries over a rolling 24 h on the sandbox clock, in hourly buckets (Salesforce
 * counts every event delivered to every subscribed client).
 */
class DeliveryAllocation {
  total = 0;
  private readonly hours = new Map<number, number>();

  constructor(private readonly now: () => number, public limit: number) {}

  remaining(): number {
    return Math.max(0, this.limit - this.used());
  }

  exhausted(): boolean {
    return this.remaining() === 0;
  }

  record(n: number): void {
    const hour = this.hour();
    this.total += n;
    this.hours.set(hour, (this.hours.get(hour) ?? 0) + n);
  }

  private used(): number {
    const hour = this.hour();
    let sum = 0;
    for (const [h, n] of this.hours) {
      if (h <= hour - 24) this.hours.delete(h);
      else sum += n;
    }
    return sum;
  }

  private hour(): number {
    return Math.floor(this.now() / 3_600_000);
  }
}
