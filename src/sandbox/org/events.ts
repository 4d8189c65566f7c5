import { EventEmitter } from 'node:events';

/**
 * The sandbox org's Change Data Capture event bus: the seam between the REST side (which
 * publishes one event per committed change) and the CometD side (which delivers them to
 * subscribers, live or replayed).
 *
 * Replay ids are assigned per channel, increasing, starting at 1. Retention is bounded by
 * count (and optionally by age on the sandbox clock): once an event falls out, a replay
 * from before it is no longer possible and CometD answers
 * `400::The replayId {N} you provided was invalid…` (see cometd-protocol.ts).
 */

export type ChangeType =
  | 'CREATE' | 'UPDATE' | 'DELETE' | 'UNDELETE'
  | 'GAP_CREATE' | 'GAP_UPDATE' | 'GAP_DELETE' | 'GAP_UNDELETE' | 'GAP_OVERFLOW';

export interface ChangeEventHeader {
  entityName: string;
  recordIds: string[];
  changeType: ChangeType;
  /** e.g. `com/salesforce/api/rest/62.0;client=sdt-worker`; '' when no client name was sent */
  changeOrigin: string;
  transactionKey: string;
  sequenceNumber: number;
  commitTimestamp: number;
  commitNumber: number;
  commitUser: string;
  changedFields: string[];
}

/** What a CometD subscriber receives as `message.data` (jsforce hands this to the listener). */
export interface ChangeEventData {
  schema: string;
  payload: { ChangeEventHeader: ChangeEventHeader } & Record<string, unknown>;
  event: { replayId: number };
}

export interface StoredEvent {
  channel: string;
  data: ChangeEventData;
  /** sandbox-clock time of publication, for age-based retention */
  publishedAt: number;
}

export interface ChangeEventLogOptions {
  /** How many events per channel are retained for replay (Salesforce keeps 72 h). */
  retainCount?: number;
  /** Optional age bound in ms on the `now` clock. */
  retainMs?: number;
  now?: () => number;
}

export class ChangeEventLog extends EventEmitter<{ event: [StoredEvent] }> {
  private readonly channels = new Map<string, { next: number; events: StoredEvent[] }>();
  private readonly retainCount: number;
  private readonly retainMs: number;
  private readonly now: () => number;

  constructor(opts: ChangeEventLogOptions = {}) {
    super();
    this.setMaxListeners(0);
    this.retainCount = opts.retainCount ?? 100_000;
    this.retainMs = opts.retainMs ?? 72 * 3600_000;
    this.now = opts.now ?? Date.now;
  }

  /** Append an event, assign its replayId, and emit `event` to live subscribers. */
  publish(channel: string, schema: string, payload: ChangeEventData['payload']): StoredEvent {
    const ch = this.channel(channel);
    const stored: StoredEvent = {
      channel,
      data: { schema, payload, event: { replayId: ch.next++ } },
      publishedAt: this.now(),
    };
    ch.events.push(stored);
    this.trim(ch.events);
    this.emit('event', stored);
    return stored;
  }

  /** Highest replayId ever assigned on the channel (0 when none). */
  latestReplayId(channel: string): number {
    return this.channel(channel).next - 1;
  }

  /** Lowest replayId still retained, or undefined when nothing is retained. */
  oldestRetainedReplayId(channel: string): number | undefined {
    const ch = this.channel(channel);
    this.trim(ch.events);
    return ch.events[0]?.data.event.replayId;
  }

  /**
   * Events a subscriber with this replay option should receive first:
   * -1 → none (only new ones), -2 → all retained, N → those after N.
   * Returns 'invalid' when N is no longer (or never was) within the retained window.
   */
  replayFrom(channel: string, replayId: number): StoredEvent[] | 'invalid' {
    const ch = this.channel(channel);
    this.trim(ch.events);
    if (replayId === -1) return [];
    if (replayId === -2) return [...ch.events];
    const latest = ch.next - 1;
    if (!Number.isInteger(replayId) || replayId < 0 || replayId > latest) return 'invalid';
    const oldest = ch.events[0]?.data.event.replayId;
    // Replaying "after N" is possible only if event N+1 is still retained (or N is the latest).
    if (replayId < latest && (oldest === undefined || replayId + 1 < oldest)) return 'invalid';
    return ch.events.filter((e) => e.data.event.replayId > replayId);
  }

  /** Forget everything retained (tests: "retention passed"). Replay ids keep increasing. */
  expireAll(channel: string): void {
    this.channel(channel).events.length = 0;
  }

  private channel(name: string) {
    let ch = this.channels.get(name);
    if (!ch) {
      ch = { next: 1, events: [] };
      this.channels.set(name, ch);
    }
    return ch;
  }

  private trim(events: StoredEvent[]): void {
    const cutoff = this.now() - this.retainMs;
    let drop = Math.max(0, events.length - this.retainCount);
    while (drop < events.length && events[drop]!.publishedAt < cutoff) drop++;
    if (drop > 0) events.splice(0, drop);
  }
}

/** How the CometD side asks the org whether an `Authorization` token is a live session. */
export interface SessionValidator {
  /** Returns the user id of the session, or undefined when the token is unknown/expired. */
  validate(accessToken: string): string | undefined;
}
