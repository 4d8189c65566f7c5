/**
 * Logging in to Salesforce with jsforce, by whichever OAuth flow the configuration names
 * (JWT bearer, username-password, client credentials), and staying logged in: jsforce
 * calls our `refreshFn` on a REST 401 and emits `refresh`; the streaming side calls
 * `reauthenticate()` itself when CometD reports `401::Authentication invalid`.
 */
import jsforce, { type Connection } from 'jsforce';
import { SignJWT, importPKCS8 } from 'jose';
import { createPrivateKey } from 'node:crypto';
import type { Config } from '../config.js';

export interface SalesforceSession {
  conn: Connection;
  /** Id of the integration user (commitUser of our own change events). */
  userId: string;
  /** Runs the grant again and installs the new token (jsforce emits `refresh`). */
  reauthenticate(): Promise<void>;
}

export async function connectSalesforce(cfg: Config): Promise<SalesforceSession> {
  const sf = cfg.salesforce;
  const grant = () => tokenParams(cfg);
  const conn: Connection = new jsforce.Connection({
    loginUrl: sf.loginUrl,
    version: sf.apiVersion,
    callOptions: { client: cfg.clientName },
    oauth2: {
      loginUrl: sf.loginUrl,
      clientId: sf.clientId,
      ...(sf.auth.kind !== 'jwt' && sf.auth.clientSecret ? { clientSecret: sf.auth.clientSecret } : {}),
      redirectUri: `${sf.loginUrl}/services/oauth2/success`,
    },
    // jsforce calls this on a REST 401 (expired session) and retries the request.
    refreshFn: (c, callback) => {
      grant()
        .then((params) => c.oauth2.requestToken(params))
        .then((res) => {
          c.instanceUrl = res.instance_url;
          callback(null, res.access_token, res);
        })
        .catch((err: Error) => callback(err));
    },
  });
  const info = await conn.authorize(await grant());
  const session: SalesforceSession = {
    conn,
    userId: info.id,
    async reauthenticate() {
      const res = await conn.oauth2.requestToken(await grant());
      conn.instanceUrl = res.instance_url;
      conn.accessToken = res.access_token;
      conn.emit('refresh', res.access_token, res);
    },
  };
  return session;
}

async function tokenParams(cfg: Config): Promise<{ grant_type: string; [name: string]: string }> {
  const { auth, username, clientId, loginUrl } = cfg.salesforce;
  switch (auth.kind) {
    case 'jwt':
      return {
        grant_type: 'urn:ietf:params:oauth:grant-type:jwt-bearer',
        assertion: await signAssertion(auth.privateKey, clientId, username!, loginUrl),
      };
    case 'password':
      return { grant_type: 'password', username: username!, password: auth.password };
    case 'client_credentials':
      return { grant_type: 'client_credentials' };
  }
}

/** The JWT bearer assertion: iss = consumer key, sub = user, aud = login host, 3 minutes. */
async function signAssertion(pem: string, clientId: string, username: string, audience: string): Promise<string> {
  // jose wants PKCS#8; an "RSA PRIVATE KEY" (PKCS#1) PEM is converted first.
  const pkcs8 = createPrivateKey(pem).export({ type: 'pkcs8', format: 'pem' }).toString();
  const key = await importPKCS8(pkcs8, 'RS256');
  return new SignJWT({})
    .setProtectedHeader({ alg: 'RS256' })
    .setIssuer(clientId)
    .setSubject(username)
    .setAudience(audience)
    .setExpirationTime('3m')
    .sign(key);
}
