import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import jsforce from 'jsforce';
import { StreamingExtension } from 'jsforce/api/streaming';
import { attachCometd, type CometdOptions, type CometdServer } from '../../src/sandbox/org/cometd.js';
import { ChangeEventLog, type ChangeEventData, type ChangeType } from '../../src/sandbox/org/events.js';
import { CallCounter } from '../../src/sandbox/counter.js';
import { SandboxClock } from '../../src/sandbox/clock.js';

const CHANNEL = '/data/Secure_EmailMessage__ChangeEvent';
const USER = '005000000000001AAA';

/** What the tests use of faye's client (jsforce hands it out untyped). */
interface FayeClient {
  subscribe(channel: string, listener: (data: ChangeEventData) => void): PromiseLike<void>;
  disconnect(): void;
  _dispatcher: { retry: number };
}

interface BayeuxMessage {
  channel: string;
  successful?: boolean;
  error?: string;
  advice?: { reconnect?: string; timeout?: number };
  ext?: { sfdc?: { failureReason?: string }; replay?: unknown };
  clientId?: string;
  supportedConnectionTypes?: string[];
  data?: ChangeEventData;
}

interface Org {
  url: string;
  events: ChangeEventLog;
  tokens: Set<string>;
  counter: CallCounter;
  cometd: CometdServer;
}

const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  while (cleanups.length) await cleanups.pop()!();
});

async function startOrg(opts: Partial<CometdOptions> & { retainCount?: number } = {}): Promise<Org> {
  const server = http.createServer((_req, res) => {
    res.statusCode = 404;
    res.end();
  });
  const events = new ChangeEventLog({ retainCount: opts.retainCount });
  const tokens = new Set(['tok']);
  const counter = new CallCounter();
  const cometd = attachCometd(server, {
    events,
    counter,
    clock: new SandboxClock(),
    sessions: { validate: (t) => (tokens.has(t) ? USER : undefined) },
    connectTimeoutMs: 2_000,
    reconnectWindowMs: 1_000,
    ...opts,
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  cleanups.push(async () => {
    await cometd.close();
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
  });
  const { port } = server.address() as AddressInfo;
  return { url: `http://127.0.0.1:${port}`, events, tokens, counter, cometd };
}

/** A jsforce streaming client as the worker builds it, recording what it receives. */
function streamingClient(org: Org, replayId: number | null, opts: { token?: string; replayChannel?: string } = {}) {
  const conn = new jsforce.Connection({ instanceUrl: org.url, accessToken: opts.token ?? 'tok', version: '62.0' });
  const received: ChangeEventData[] = [];
  const authFailures: BayeuxMessage[] = [];
  const metaReplies: BayeuxMessage[] = [];
  const watcher = {
    incoming(message: BayeuxMessage, callback: (m: BayeuxMessage) => void) {
      if (message.channel.startsWith('/meta/')) metaReplies.push(message);
      callback(message);
    },
  };
  const client = conn.streaming.createClient([
    watcher,
    new StreamingExtension.Replay(opts.replayChannel ?? CHANNEL, replayId as number),
    new StreamingExtension.AuthFailure((m: BayeuxMessage) => authFailures.push(m)),
  ]) as unknown as FayeClient;
  client._dispatcher.retry = 0.1; // transport retries after 100 ms instead of 5 s
  cleanups.push(() => {
    client.disconnect(); // its promise may reject (dead session): nothing to wait for
  });
  const subscribe = (channel = CHANNEL) => client.subscribe(channel, (data) => received.push(data));
  return { client, received, authFailures, metaReplies, subscribe };
}

function publish(org: Org, recordId: string, changeType: ChangeType = 'UPDATE') {
  return org.events.publish(CHANNEL, 'schema-1', {
    ChangeEventHeader: {
      entityName: 'Secure_EmailMessage__c',
      recordIds: [recordId],
      changeType,
      changeOrigin: '',
      transactionKey: `tx-${recordId}`,
      sequenceNumber: 1,
      commitTimestamp: 1_700_000_000_000,
      commitNumber: 1,
      commitUser: USER,
      changedFields: ['Status__c'],
    },
    Status__c: 'Queued',
  });
}

async function until(cond: () => boolean, what: string): Promise<void> {
  const deadline = Date.now() + 15_000;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const ids = (events: ChangeEventData[]) => events.map((e) => e.event.replayId);

/**
 * The Bayeux error a faye subscription's errback receives, as the server wrote it (faye
 * splits strings that fit its error grammar into code and message).
 */
async function subscribeError(sub: PromiseLike<void>): Promise<string> {
  return new Promise((resolve, reject) =>
    sub.then(
      () => reject(new Error('subscription unexpectedly succeeded')),
      (e: { code: number | null; message: string }) => resolve(e.code === null ? e.message : String(e)),
    ),
  );
}

async function post(org: Org, body: unknown, headers: Record<string, string> = { Authorization: 'OAuth tok' }) {
  const res = await fetch(`${org.url}/cometd/62.0`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json', ...headers },
    body: typeof body === 'string' ? body : JSON.stringify(body),
  });
  return { status: res.status, text: await res.text(), headers: res.headers };
}

async function handshake(org: Org, auth = 'OAuth tok'): Promise<BayeuxMessage> {
  const { text } = await post(org, [{ channel: '/meta/handshake', version: '1.0', supportedConnectionTypes: ['long-polling'], id: '1' }], { Authorization: auth });
  return (JSON.parse(text) as BayeuxMessage[])[0]!;
}

describe('sandbox CometD through jsforce streaming', () => {
  it('delivers new change events after a -1 subscribe, in order and intact', async () => {
    const org = await startOrg();
    const sc = streamingClient(org, -1);
    await sc.subscribe();
    const published = [publish(org, 'a00000000000001AAA'), publish(org, 'a00000000000002AAA'), publish(org, 'a00000000000003AAA')];

    await until(() => sc.received.length === 3, 'three events');
    expect(ids(sc.received)).toEqual([1, 2, 3]);
    expect(sc.received).toEqual(published.map((p) => p.data));
    expect(org.cometd.subscriptions()).toEqual({ [CHANNEL]: 1 });
    expect(org.cometd.deliveries()).toBe(3);
    expect(org.counter.get('cometd.delivery')).toBe(3);
  });

  it('replays exactly the events after a stored replay id, then continues live', async () => {
    const org = await startOrg();
    const first = streamingClient(org, -1);
    await first.subscribe();
    publish(org, 'a00000000000001AAA');
    publish(org, 'a00000000000002AAA');
    await until(() => first.received.length === 2, 'first events');
    const checkpoint = first.received.at(-1)!.event.replayId;
    first.client.disconnect();
    await until(() => Object.keys(org.cometd.subscriptions()).length === 0, 'disconnect');

    publish(org, 'a00000000000003AAA');
    publish(org, 'a00000000000004AAA');
    const second = streamingClient(org, checkpoint);
    await second.subscribe();
    await until(() => second.received.length === 2, 'replayed events');
    publish(org, 'a00000000000005AAA');
    await until(() => second.received.length === 3, 'live event after replay');
    expect(ids(second.received)).toEqual([3, 4, 5]);

    const all = streamingClient(org, -2);
    await all.subscribe();
    await until(() => all.received.length === 5, 'everything retained');
    expect(ids(all.received)).toEqual([1, 2, 3, 4, 5]);
  });

  it('refuses a replay id that fell out of retention with Salesforce\'s 400 error', async () => {
    const org = await startOrg({ retainCount: 2 });
    for (let i = 1; i <= 5; i++) publish(org, `a0000000000000${i}AAA`);
    const sc = streamingClient(org, 1);
    const error = await subscribeError(sc.subscribe());
    expect(error).toBe('400::The replayId 1 you provided was invalid.  Please provide a valid ID, -2 to replay all events, or -1 to replay only new events.');
    expect(sc.metaReplies.some((m) => m.channel === '/meta/subscribe' && m.successful === false)).toBe(true);
    expect(org.cometd.subscriptions()).toEqual({});

    org.events.expireAll(CHANNEL);
    const afterExpiry = streamingClient(org, 4);
    expect(await subscribeError(afterExpiry.subscribe())).toMatch(/^400::The replayId 4 you provided was invalid/);
  });

  it('rejects a replay map without the channel, and channels that are not change events', async () => {
    const org = await startOrg();
    const wrongMap = streamingClient(org, -1, { replayChannel: '/data/AccountChangeEvent' });
    expect(await subscribeError(wrongMap.subscribe())).toMatch(
      new RegExp(`^400::The replayId for channel ${CHANNEL} wasn't found in the replay map`),
    );
    const wrongChannel = streamingClient(org, -1, { replayChannel: '/topic/Everything' });
    expect(await subscribeError(wrongChannel.subscribe('/topic/Everything'))).toBe('400::Unknown channel');
  });

  it('after forgetClients the faye client re-handshakes by itself and keeps receiving', async () => {
    const org = await startOrg();
    const sc = streamingClient(org, -1);
    await sc.subscribe();
    publish(org, 'a00000000000001AAA');
    await until(() => sc.received.length === 1, 'first event');

    org.cometd.forgetClients();
    await until(() => org.counter.get('cometd.handshake') === 2, 're-handshake');
    await until(() => org.cometd.subscriptions()[CHANNEL] === 1, 'resubscribe');
    publish(org, 'a00000000000002AAA');
    await until(() => sc.received.length === 2, 'event after re-handshake');
    expect(ids(sc.received)).toEqual([1, 2]);
    expect(sc.metaReplies.some((m) => m.error === '403::Unknown client' && m.advice?.reconnect === 'handshake')).toBe(true);
  });

  it('denies a handshake with a bad token, with the 401 reason in ext.sfdc', async () => {
    const org = await startOrg();
    const sc = streamingClient(org, -1, { token: 'expired' });
    void sc.subscribe();
    await until(() => sc.authFailures.length === 1, 'auth failure callback');
    expect(sc.authFailures[0]).toMatchObject({
      channel: '/meta/handshake',
      successful: false,
      error: '403::Handshake denied',
      ext: { sfdc: { failureReason: '401::Authentication invalid' } },
      advice: { reconnect: 'none' },
    });
  });

  it('fails the connect of a client whose session ended with 401 and advice none', async () => {
    const org = await startOrg();
    const sc = streamingClient(org, -1);
    await sc.subscribe();
    org.tokens.delete('tok');
    org.cometd.dropConnects();
    await until(() => sc.authFailures.length === 1, 'auth failure on connect');
    expect(sc.authFailures[0]).toMatchObject({
      channel: '/meta/connect', error: '401::Authentication invalid', advice: { reconnect: 'none' },
    });
  });

  it('stops delivering once the daily allocation is used up, and says so', async () => {
    const org = await startOrg({ dailyDeliveryLimit: 2 });
    const sc = streamingClient(org, -1);
    await sc.subscribe();
    publish(org, 'a00000000000001AAA');
    publish(org, 'a00000000000002AAA');
    publish(org, 'a00000000000003AAA');
    await until(() => sc.authFailures.length === 1, 'connect refused for the daily limit');
    expect(ids(sc.received)).toEqual([1, 2]);
    expect(sc.authFailures[0]).toMatchObject({
      channel: '/meta/connect', error: '403::Organization total events daily limit exceeded',
    });
    expect(org.cometd.deliveries()).toBe(2);

    const late = streamingClient(org, -1);
    expect(await subscribeError(late.subscribe())).toBe('403::Organization total events daily limit exceeded');

    org.cometd.setDailyDeliveryLimit(100);
    const next = streamingClient(org, 2);
    await next.subscribe();
    await until(() => next.received.length === 1, 'delivery after the limit was raised');
    expect(ids(next.received)).toEqual([3]);
  });

  it('delivers nothing while stalled, then resumes; survives dropped connects', async () => {
    const org = await startOrg();
    const sc = streamingClient(org, -1);
    await sc.subscribe();
    org.cometd.stall(true);
    publish(org, 'a00000000000001AAA');
    await sleep(500);
    expect(sc.received).toEqual([]);
    org.cometd.stall(false);
    await until(() => sc.received.length === 1, 'event after the stall');

    const connects = org.counter.get('cometd.connect');
    org.cometd.dropConnects();
    await until(() => org.counter.get('cometd.connect') > connects, 'reconnect after the drop');
    publish(org, 'a00000000000002AAA');
    await until(() => sc.received.length === 2, 'event after the drop');
    expect(ids(sc.received)).toEqual([1, 2]);
    expect(org.counter.get('cometd.handshake')).toBe(1);
  });

  it('publishes gap events through the log', async () => {
    const org = await startOrg();
    const sc = streamingClient(org, -1);
    await sc.subscribe();
    org.cometd.emitGap('GAP_UPDATE', ['a00000000000001AAA', 'a00000000000002AAA']);
    org.cometd.emitGap('GAP_OVERFLOW', []);
    await until(() => sc.received.length === 2, 'gap events');
    const [gap, overflow] = sc.received.map((e) => e.payload);
    expect(gap!.ChangeEventHeader).toMatchObject({ changeType: 'GAP_UPDATE', recordIds: ['a00000000000001AAA', 'a00000000000002AAA'], changedFields: [] });
    expect(Object.keys(gap!)).toEqual(['ChangeEventHeader']);
    expect(overflow!.ChangeEventHeader).toMatchObject({ changeType: 'GAP_OVERFLOW', recordIds: ['000000000000000AAA'] });
  });
});

describe('sandbox CometD on the wire', () => {
  it('advertises long-polling and replay on handshake, with OAuth or Bearer tokens', async () => {
    const org = await startOrg();
    for (const auth of ['OAuth tok', 'Bearer tok']) {
      const reply = await handshake(org, auth);
      expect(reply).toMatchObject({ successful: true, supportedConnectionTypes: ['long-polling'], ext: { replay: true, 'payload.format': true } });
    }
  });

  it('answers a first connect at once with Salesforce advice, and asks for the token on every request', async () => {
    const org = await startOrg({ connectTimeoutMs: 110_000 });
    const { clientId } = await handshake(org);
    const connect = { channel: '/meta/connect', clientId, connectionType: 'long-polling', id: '2' };
    const first = JSON.parse((await post(org, [connect])).text) as BayeuxMessage[];
    expect(first[0]).toMatchObject({ successful: true, advice: { reconnect: 'retry', timeout: 110_000 } });
    const unauthenticated = JSON.parse((await post(org, [connect], {})).text) as BayeuxMessage[];
    expect(unauthenticated[0]).toMatchObject({ successful: false, error: '401::Authentication invalid', advice: { reconnect: 'none' } });
  });

  it('drops a client that does not come back within the reconnect window', async () => {
    const org = await startOrg({ reconnectWindowMs: 100 });
    const { clientId } = await handshake(org);
    await sleep(400);
    const { text } = await post(org, [{ channel: '/meta/connect', clientId, connectionType: 'long-polling', id: '2' }]);
    expect(JSON.parse(text)[0]).toMatchObject({ successful: false, error: '403::Unknown client', advice: { reconnect: 'handshake' } });
  });

  it('refuses websocket upgrades and bodies over 32 KB, and leaves other paths to the org', async () => {
    const org = await startOrg();
    const upgrade = await new Promise<number | undefined>((resolve, reject) => {
      const req = http.request(`${org.url}/cometd/62.0`, { headers: { Connection: 'Upgrade', Upgrade: 'websocket' } });
      req.on('response', (res) => { res.resume(); resolve(res.statusCode); });
      req.on('upgrade', () => resolve(101));
      req.on('error', reject);
      req.end();
    });
    expect(upgrade).toBe(400);
    expect((await post(org, 'x'.repeat(33 * 1024))).status).toBe(413);
    expect((await fetch(`${org.url}/services/data/v62.0/query`)).status).toBe(404);
  });
});
