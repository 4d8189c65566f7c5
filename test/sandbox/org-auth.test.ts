import { afterEach, describe, expect, it } from 'vitest';
import jsforce from 'jsforce';
import { SignJWT, importPKCS8 } from 'jose';
import { generateKeyPairSync } from 'node:crypto';
import type { SalesforceOrg } from '../../src/sandbox/org/server.js';
import { JWT_BEARER } from '../../src/sandbox/org/oauth.js';
import { MESSAGE, closeOrgs, connect, draft, failure, startOrg } from './org-helpers.js';

afterEach(closeOrgs);

async function assertion(org: SalesforceOrg, opts: { pem?: string; aud?: string; expiresInS?: number } = {}): Promise<string> {
  const key = await importPKCS8(opts.pem ?? org.credentials.privateKeyPem, 'RS256');
  const now = Math.floor(org.clock.now() / 1000);
  return new SignJWT({})
    .setProtectedHeader({ alg: 'RS256' })
    .setIssuer(org.credentials.clientId)
    .setSubject(org.credentials.username)
    .setAudience(opts.aud ?? org.url)
    .setExpirationTime(now + (opts.expiresInS ?? 180))
    .sign(key);
}

function bareConnection(org: SalesforceOrg, extra: Record<string, unknown> = {}) {
  return new jsforce.Connection({ loginUrl: org.url, version: org.apiVersion, ...extra });
}

describe('sandbox org OAuth', () => {
  it('logs jsforce in with the username-password grant, as the integration user', async () => {
    const org = await startOrg();
    const conn = await connect(org);
    expect(conn.instanceUrl).toBe(org.url);
    expect(conn.userInfo?.id).toBe(org.integrationUserId);
    expect(conn.userInfo?.organizationId).toBe(org.orgId);
    const identity = await conn.identity();
    expect(identity.username).toBe(org.credentials.username);
    expect(org.counter.get('oauth.token')).toBe(1);
  });

  it('refuses a wrong password, an unknown client and a wrong secret, as Salesforce words it', async () => {
    const org = await startOrg();
    const { clientId, clientSecret, username } = org.credentials;
    const withApp = (id: string, secret: string) =>
      new jsforce.Connection({ loginUrl: org.url, version: org.apiVersion, oauth2: { clientId: id, clientSecret: secret, loginUrl: org.url } });
    const wrongPassword = await failure(withApp(clientId, clientSecret).login(username, 'nope'));
    expect(wrongPassword.name).toBe('invalid_grant');
    expect(wrongPassword.message).toBe('authentication failure');
    expect((await failure(withApp('3MVG9unknown', clientSecret).login(username, 'x'))).name).toBe('invalid_client_id');
    expect((await failure(withApp(clientId, 'WRONG').login(username, 'x'))).name).toBe('invalid_client');
  });

  it('grants client credentials to the connected app, running as the integration user', async () => {
    const org = await startOrg();
    const { clientId, clientSecret } = org.credentials;
    const conn = bareConnection(org, { oauth2: { clientId, clientSecret, loginUrl: org.url } });
    const info = await conn.authorize({ grant_type: 'client_credentials' });
    expect(info.id).toBe(org.integrationUserId);
    expect(conn.refreshToken).toBeFalsy();
    const r = await conn.query('SELECT Id FROM Secure_EmailMessage__c');
    expect(r.totalSize).toBe(0);
  });

  it('accepts a JWT bearer assertion signed with the trusted key, for any Salesforce login audience', async () => {
    const org = await startOrg();
    for (const aud of [org.url, 'https://login.salesforce.com', 'https://test.salesforce.com']) {
      const conn = bareConnection(org);
      const info = await conn.authorize({ grant_type: JWT_BEARER, assertion: await assertion(org, { aud }) });
      expect(info.id).toBe(org.integrationUserId);
      expect(conn.refreshToken).toBeFalsy();
      expect((await conn.query('SELECT COUNT() FROM Secure_EmailMessage__c')).totalSize).toBe(0);
    }
  });

  it('refuses a JWT signed by another key, for another audience, or expired on the sandbox clock', async () => {
    const org = await startOrg();
    const other = generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
    const tryGrant = async (a: string) => failure(bareConnection(org).authorize({ grant_type: JWT_BEARER, assertion: a }));
    expect((await tryGrant(await assertion(org, { pem: other }))).message).toBe('invalid assertion');
    expect((await tryGrant(await assertion(org, { aud: 'https://example.com' }))).message).toBe('audience is invalid');
    const soon = await assertion(org, { expiresInS: 60 });
    org.clock.advance(5 * 60_000);
    const expired = await tryGrant(soon);
    expect(expired.name).toBe('invalid_grant');
  });

  it('expires sessions (control and idle timeout on the clock) and jsforce recovers through its refresh function', async () => {
    const org = await startOrg({ sessionTtlMs: 60 * 60_000 });
    draft(org);
    let grants = 0;
    const conn = bareConnection(org, {
      // The JWT bearer flow has no refresh token: a refresh is a new grant.
      refreshFn: (_c: unknown, cb: (err: Error | null, token?: string) => void) => {
        grants++;
        const fresh = bareConnection(org);
        void assertion(org)
          .then((a) => fresh.authorize({ grant_type: JWT_BEARER, assertion: a }))
          .then(() => cb(null, fresh.accessToken!), cb);
      },
    });
    await conn.authorize({ grant_type: JWT_BEARER, assertion: await assertion(org) });
    const refreshed: string[] = [];
    conn.on('refresh', (t: string) => refreshed.push(t));

    org.control.expireSessions();
    expect((await conn.query(`SELECT Id FROM ${MESSAGE}`)).totalSize).toBe(1);
    expect(refreshed).toHaveLength(1);

    org.clock.advance(61 * 60_000);
    expect((await conn.query(`SELECT Id FROM ${MESSAGE}`)).totalSize).toBe(1);
    expect(refreshed).toHaveLength(2);
    expect(grants).toBe(2);
  });

  it('answers an expired token with 401 INVALID_SESSION_ID when the client cannot refresh', async () => {
    const org = await startOrg();
    const logged = await connect(org);
    const conn = bareConnection(org, { instanceUrl: org.url, accessToken: logged.accessToken });
    org.control.expireSessions();
    const err = await failure(conn.query(`SELECT Id FROM ${MESSAGE}`));
    expect(err.errorCode).toBe('INVALID_SESSION_ID');
    expect(err.message).toBe('Session expired or invalid');
  });

  it('is unavailable for OAuth and REST alike during an outage, and back afterwards', async () => {
    const org = await startOrg();
    const conn = await connect(org);
    org.control.restOutage(true);
    const rest = await failure(conn.sobject(MESSAGE).create({ Status__c: 'Draft' }));
    expect(rest.errorCode).toBe('SERVER_UNAVAILABLE');
    expect((await failure(connect(org))).message).toMatch(/unavailable/i);
    org.control.restOutage(false);
    expect((await conn.sobject(MESSAGE).create({ Status__c: 'Draft' })).success).toBe(true);
  });
});
