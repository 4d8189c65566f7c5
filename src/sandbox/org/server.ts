/**
 * The sandbox Salesforce org: one loopback http.Server that is both the login host and the
 * instance, speaking OAuth 2.0 (`/services/oauth2/token`), REST (`/services/data`) and
 * CometD (`/cometd/<version>`, attached from cometd.ts). The worker reaches it through
 * jsforce exactly as it reaches a real org.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import type { AddressInfo } from 'node:net';
import { SandboxClock } from '../clock.js';
import { CallCounter } from '../counter.js';
import { ChangeEventLog, type SessionValidator } from './events.js';
import { attachCometd, type CometdServer } from './cometd.js';
import { loadSchema, type OrgSchema } from './schema.js';
import { OrgDb } from './db.js';
import { fileTriggers } from './files.js';
import { formatId } from './ids.js';
import { SessionStore, tokenRequest, type OAuthConfig } from './oauth.js';
import { RestApi } from './rest.js';
import { runQuery } from './soql.js';

export interface SalesforceOrgOptions {
  port?: number;
  clock?: SandboxClock;
  /** Highest API version served (default `62.0`). */
  apiVersion?: string;
  /** Added to every REST and OAuth response. */
  latencyMs?: number;
  dailyApiLimit?: number;
  /** Session inactivity timeout on the sandbox clock (default 2 h). */
  sessionTtlMs?: number;
  queryBatchSize?: number;
  /** Change events retained per channel for replay. */
  retainEvents?: number;
  connectTimeoutMs?: number;
  reconnectWindowMs?: number;
  dailyDeliveryLimit?: number;
  /** Schema to serve (default: the repository's SFDX metadata). */
  schema?: OrgSchema;
}

export interface OrgCredentials {
  clientId: string;
  clientSecret: string;
  username: string;
  password: string;
  /** RSA key whose public half the connected app trusts for the JWT bearer flow. */
  privateKeyPem: string;
}

export interface OrgControl {
  /** Ends every live session now: the next call with an old token gets INVALID_SESSION_ID. */
  expireSessions(): void;
  setLatency(ms: number): void;
  /** While on, every REST and OAuth call answers 503 SERVER_UNAVAILABLE. */
  restOutage(on: boolean): void;
  /** The next `n` REST calls fail with this status and error code. */
  failNext(n: number, status: number, errorCode: string): void;
  /** Long text fields in UPDATE events as `{diff}`: never, always, or with this probability. */
  diffLongText: boolean | number;
  setApiUsage(n: number): void;
}

export interface WriteAs {
  /** A user id; default the sandbox's UI admin. */
  asUser?: string;
  /** Publish a GAP_* event (ids, no fields) instead of the ordinary change event; see WriteContext. */
  gap?: boolean | 'overflow';
}

export interface SalesforceOrg extends SessionValidator {
  /** `http://127.0.0.1:PORT`: login URL and instance URL at once. */
  url: string;
  apiVersion: string;
  orgId: string;
  counter: CallCounter;
  clock: SandboxClock;
  events: ChangeEventLog;
  db: OrgDb;
  cometd: CometdServer;
  credentials: OrgCredentials;
  integrationUserId: string;
  /** The user the UI helpers write as. */
  adminUserId: string;
  control: OrgControl;
  /** REST calls so far (what counts against the daily API allocation). */
  apiCalls(): number;
  /** UI-side writes (as a user in the browser: their change events have changeOrigin ''). */
  insert(object: string, fields: Record<string, unknown>, opts?: WriteAs): string;
  update(object: string, id: string, fields: Record<string, unknown>, opts?: WriteAs): void;
  remove(object: string, id: string, opts?: WriteAs): void;
  /** A copy of the stored record (blob fields as Buffers), or undefined. */
  get(object: string, id: string): Record<string, unknown> | undefined;
  query(soql: string): Array<Record<string, unknown>>;
  close(): Promise<void>;
}

export async function startSalesforceOrg(opts: SalesforceOrgOptions = {}): Promise<SalesforceOrg> {
  const clock = opts.clock ?? new SandboxClock();
  const apiVersion = opts.apiVersion ?? '62.0';
  const counter = new CallCounter();
  const events = new ChangeEventLog({ retainCount: opts.retainEvents, now: () => clock.now() });
  const db = new OrgDb(opts.schema ?? loadSchema(), { clock, events, triggers: fileTriggers });
  const orgId = formatId('00D', 1_000_000_007);
  const users = createUsers(db);
  const sessions = new SessionStore(clock, opts.sessionTtlMs ?? 2 * 3600_000, orgId);
  const key = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const credentials: OrgCredentials = {
    clientId: '3MVG9' + randomBytes(60).toString('base64url'),
    clientSecret: randomBytes(32).toString('hex').toUpperCase(),
    username: users.integration.username,
    password: users.integration.password,
    privateKeyPem: key.privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(),
  };
  const rest = new RestApi({
    db, clock, counter, apiVersion,
    queryBatchSize: opts.queryBatchSize ?? 2000,
    dailyApiLimit: opts.dailyApiLimit ?? 100_000,
    validate: (t) => sessions.validate(t),
  });
  rest.faults.latencyMs = opts.latencyMs ?? 0;

  const server = createServer();
  const url = await listen(server, opts.port ?? 0);
  const oauth: OAuthConfig = {
    url, orgId, ...credentials, publicKey: key.publicKey,
    users: [users.integration, users.admin], runAsUserId: users.integration.id,
  };
  server.on('request', (req: IncomingMessage, res: ServerResponse) => {
    void route(req, res).catch(() => {
      if (!res.headersSent) res.writeHead(500);
      res.end();
    });
  });

  async function route(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const path = (req.url ?? '/').split('?')[0]!;
    if (path.startsWith('/cometd/')) return; // cometd.ts answers these
    if (path.startsWith('/services/data')) return rest.handle(req, res);
    if (path === '/services/oauth2/token' && req.method === 'POST') return token(req, res);
    if (path.startsWith('/id/') && req.method === 'GET') return identity(req, res, path);
    res.writeHead(404, { 'Content-Type': 'application/json' }).end(JSON.stringify([{ errorCode: 'NOT_FOUND', message: 'The requested resource does not exist' }]));
  }

  async function token(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const form = new URLSearchParams(await readText(req));
    await delay(rest.faults.latencyMs);
    if (rest.faults.outage) return json(res, 503, { error: 'SERVER_UNAVAILABLE', error_description: 'Server temporarily unavailable' });
    counter.count('oauth.token');
    const reply = await tokenRequest(form, oauth, sessions, clock.now());
    json(res, reply.status, reply.body);
  }

  /** The identity URL a token response names (jsforce's `conn.identity()`). */
  function identity(req: IncomingMessage, res: ServerResponse, path: string): void {
    const userId = sessions.validate(/^(?:Bearer|OAuth)\s+(\S+)$/i.exec(req.headers.authorization ?? '')?.[1] ?? '');
    const [, , org, user] = path.split('/');
    const u = [users.integration, users.admin].find((x) => x.id === user);
    if (!userId) return json(res, 403, { error: 'Bad_OAuth_Token' });
    if (org !== orgId || !u) return json(res, 404, { error: 'Not_Found' });
    const v = `${url}/services/data/v{version}`;
    json(res, 200, {
      id: `${url}/id/${orgId}/${u.id}`, asserted_user: userId === u.id, user_id: u.id, organization_id: orgId,
      username: u.username, display_name: u.name, active: true, user_type: 'STANDARD', language: 'en_US', locale: 'en_US',
      urls: { rest: `${v}/`, sobjects: `${v}/sobjects/`, query: `${v}/query/`, custom_domain: url },
    });
  }

  const org: SalesforceOrg = {
    url, apiVersion, orgId, counter, clock, events, db, credentials,
    cometd: undefined as unknown as CometdServer,
    integrationUserId: users.integration.id,
    adminUserId: users.admin.id,
    validate: (t) => sessions.validate(t),
    control: {
      expireSessions: () => sessions.expireAll(),
      setLatency: (ms) => void (rest.faults.latencyMs = ms),
      restOutage: (on) => void (rest.faults.outage = on),
      failNext: (n, status, errorCode) => void (rest.faults.failNext = { n, status, errorCode }),
      get diffLongText() {
        return db.diffLongText;
      },
      set diffLongText(v: boolean | number) {
        db.diffLongText = v;
      },
      setApiUsage: (n) => rest.setApiUsage(n),
    },
    apiCalls: () => counter.total('rest.'),
    insert: (object, fields, o) => db.transaction(ui(o), (tx) => tx.insert(object, fields)),
    update: (object, id, fields, o) => db.transaction(ui(o), (tx) => tx.update(object, id, fields)),
    remove: (object, id, o) => db.transaction(ui(o), (tx) => tx.delete(object, id)),
    get: (object, id) => {
      const hit = db.find(id);
      return hit && hit.object.name === db.object(object)?.name ? { ...hit.row } : undefined;
    },
    query: (soql) => runQuery(soql, rest.source(apiVersion), { apiVersion, now: () => clock.now() }).records,
    close: async () => {
      await org.cometd.close();
      await new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      });
    },
  };
  const ui = (o?: WriteAs) => ({ userId: o?.asUser ?? users.admin.id, changeOrigin: '', ...(o?.gap ? { gap: true } : {}) });
  org.cometd = attachCometd(server, {
    events, sessions: org, counter, clock,
    connectTimeoutMs: opts.connectTimeoutMs,
    reconnectWindowMs: opts.reconnectWindowMs,
    dailyDeliveryLimit: opts.dailyDeliveryLimit,
  });
  return org;
}

interface OrgUser {
  id: string;
  username: string;
  password: string;
  name: string;
}

/** The connected app's integration user and a UI admin, as User rows. */
function createUsers(db: OrgDb): { integration: OrgUser; admin: OrgUser } {
  const make = (username: string, name: string): OrgUser => {
    const user = db.schema.objects.User!;
    const id = db.transaction({ userId: '', changeOrigin: '' }, (tx) => tx.insertRow(user, { Username: username, Name: name }));
    // A user created itself, as far as its audit fields go.
    db.transaction({ userId: id, changeOrigin: '' }, (tx) => tx.updateRow(user, id, { CreatedById: id }));
    return { id, username, name, password: randomBytes(12).toString('base64url') };
  };
  return {
    integration: make('sdt-integration@sandbox.example.com', 'SDT Integration'),
    admin: make('admin@sandbox.example.com', 'Sandbox Admin'),
  };
}

function listen(server: Server, port: number): Promise<string> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, '127.0.0.1', () => {
      server.off('error', reject);
      resolve(`http://127.0.0.1:${(server.address() as AddressInfo).port}`);
    });
  });
}

async function readText(req: IncomingMessage): Promise<string> {
  const parts: Buffer[] = [];
  for await (const chunk of req as AsyncIterable<Buffer>) parts.push(chunk);
  return Buffer.concat(parts).toString('utf8');
}

function json(res: ServerResponse, status: number, body: unknown): void {
  res.writeHead(status, { 'Content-Type': 'application/json;charset=UTF-8' }).end(JSON.stringify(body));
}

function delay(ms: number): Promise<void> {
  return ms > 0 ? new Promise((r) => setTimeout(r, ms)) : Promise.resolve();
}


