/**
 * STUB — the CometD (Bayeux) side of the sandbox org; replaced by the real implementation.
 * The signature below is the seam the org's HTTP server calls.
 */
import type { Server } from 'node:http';
import type { ChangeEventLog, SessionValidator } from './events.js';
import type { CallCounter } from '../counter.js';
import type { SandboxClock } from '../clock.js';

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
}

export interface CometdServer {
  /** Drops every client: the next request of each gets `403::Unknown client`. */
  forgetClients(): void;
  /** Answers every held /meta/connect now (empty), as a load balancer cutting connections. */
  dropConnects(): void;
  /** While on, the server accepts requests but never answers connects or delivers events. */
  stall(on: boolean): void;
  /** Publishes a gap event (GAP_CREATE, …, GAP_OVERFLOW) for these record ids. */
  emitGap(changeType: string, recordIds: string[]): void;
  /** Number of CometD clients currently subscribed to each channel. */
  subscriptions(): Record<string, number>;
  /** Events delivered so far (counts against the daily allocation). */
  deliveries(): number;
  setDailyDeliveryLimit(limit: number): void;
  close(): Promise<void>;
}

export declare function attachCometd(server: Server, opts: CometdOptions): CometdServer;
