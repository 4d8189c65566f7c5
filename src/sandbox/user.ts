import jsforce, { type Connection } from 'jsforce';

/**
 * A jsforce connection to the sandbox org as another integration (client credentials, no
 * `Sforce-Call-Options`): its writes are not the worker's, so they start sends, as a user
 * or another system writing to the org would. Used by `sandbox:send`, tests and the bench.
 */
export async function connectAsUser(org: { loginUrl: string; version: string; clientId: string; clientSecret: string }): Promise<Connection> {
  const conn = new jsforce.Connection({
    loginUrl: org.loginUrl, version: org.version,
    oauth2: { loginUrl: org.loginUrl, clientId: org.clientId, clientSecret: org.clientSecret },
  });
  await conn.authorize({ grant_type: 'client_credentials' });
  return conn;
}
