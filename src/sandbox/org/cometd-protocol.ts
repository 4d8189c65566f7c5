/**
 * Bayeux wire vocabulary of the sandbox org's CometD endpoint: the messages, the error
 * strings exactly as Salesforce words them, and the rules for CDC channel names and the
 * replay map. Pure functions, no state.
 */

/** One Bayeux message as a client sends it; every field is unchecked input. */
export interface BayeuxRequest {
  channel?: unknown;
  id?: unknown;
  clientId?: unknown;
  subscription?: unknown;
  connectionType?: unknown;
  supportedConnectionTypes?: unknown;
  advice?: unknown;
  ext?: unknown;
  data?: unknown;
}

/** One Bayeux message as the server sends it. */
export type BayeuxReply = Record<string, unknown>;

export const META = {
  handshake: '/meta/handshake',
  connect: '/meta/connect',
  subscribe: '/meta/subscribe',
  unsubscribe: '/meta/unsubscribe',
  disconnect: '/meta/disconnect',
} as const;

export const CONNECTION_TYPE = 'long-polling';
export const ALL_CHANGE_EVENTS = '/data/ChangeEvents';

export const ERRORS = {
  handshakeDenied: '403::Handshake denied',
  authInvalid: '401::Authentication invalid',
  unknownClient: '403::Unknown client',
  unknownChannel: '400::Unknown channel',
  dailyLimit: '403::Organization total events daily limit exceeded',
  connectionType: '301::Connection types not supported',
  badRequest: '400::Bad request',
  publishForbidden: '403::Forbidden channel',
  invalidReplayId: (id: unknown) =>
    `400::The replayId ${String(id)} you provided was invalid.  Please provide a valid ID, ` +
    '-2 to replay all events, or -1 to replay only new events.',
  replayMapMiss: (channel: string) =>
    `400::The replayId for channel ${channel} wasn't found in the replay map. Please provide ` +
    'a valid ID, -2 to replay all events, or -1 to replay only new events.',
} as const;

/** Advice sent with errors that the client can only cure by starting over, or not at all. */
export const ADVICE_HANDSHAKE = { reconnect: 'handshake', interval: 0 } as const;
export const ADVICE_NONE = { reconnect: 'none', interval: 0 } as const;

/** `/data/<Entity>__ChangeEvent`, `/data/<StandardObject>ChangeEvent` or `/data/ChangeEvents`. */
export function isChangeEventChannel(channel: string): boolean {
  return channel === ALL_CHANGE_EVENTS || /^\/data\/[A-Za-z][A-Za-z0-9_]*ChangeEvent$/.test(channel);
}

/** The CDC channel of an object: `Secure_EmailMessage__c` → `/data/Secure_EmailMessage__ChangeEvent`. */
export function channelOf(entityName: string): string {
  return `/data/${entityName.replace(/__c$/, '__')}ChangeEvent`;
}

/**
 * The replay option a subscribe asks for. No replay map at all means "new events only"
 * (Salesforce's default); a map that does not name the subscribed channel is an error.
 */
export function replayOption(ext: unknown, channel: string): { id: unknown } | { error: string } {
  const map = isObject(ext) ? ext['replay'] : undefined;
  if (!isObject(map)) return { id: -1 };
  if (!Object.prototype.hasOwnProperty.call(map, channel)) return { error: ERRORS.replayMapMiss(channel) };
  return { id: map[channel] };
}

/** The `Authorization: OAuth <token>` (jsforce) or `Bearer <token>` credential of a request. */
export function bearerToken(header: string | undefined): string | undefined {
  const m = /^(?:OAuth|Bearer)\s+(\S+)\s*$/i.exec(header ?? '');
  return m?.[1];
}

export function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** The fields every reply echoes from its request. */
export function replyTo(msg: BayeuxRequest): BayeuxReply {
  const reply: BayeuxReply = { channel: msg.channel };
  if (msg.id !== undefined) reply['id'] = msg.id;
  if (typeof msg.clientId === 'string') reply['clientId'] = msg.clientId;
  return reply;
}

export function failure(msg: BayeuxRequest, error: string, extra: BayeuxReply = {}): BayeuxReply {
  return { ...replyTo(msg), ...extra, successful: false, error };
}
