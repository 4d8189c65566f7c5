/** Shared by the sandbox org tests: a started org and jsforce connections to it. */
import jsforce, { type Connection } from 'jsforce';
import { startSalesforceOrg, type SalesforceOrg, type SalesforceOrgOptions } from '../../src/sandbox/org/server.js';

export const MESSAGE = 'Secure_EmailMessage__c';
export const ATTEMPT = 'Secure_Email_Attempt__c';

const started: SalesforceOrg[] = [];

export async function startOrg(opts: SalesforceOrgOptions = {}): Promise<SalesforceOrg> {
  const org = await startSalesforceOrg(opts);
  started.push(org);
  return org;
}

export async function closeOrgs(): Promise<void> {
  await Promise.all(started.splice(0).map((o) => o.close()));
}

/** A connection logged in with the username-password grant (refreshes itself on 401). */
export async function connect(org: SalesforceOrg, callOptions?: Record<string, string>): Promise<Connection> {
  const { clientId, clientSecret, username, password } = org.credentials;
  const conn = new jsforce.Connection({
    loginUrl: org.url,
    version: org.apiVersion,
    oauth2: { clientId, clientSecret, loginUrl: org.url },
    ...(callOptions ? { callOptions } : {}),
  });
  await conn.login(username, password);
  return conn;
}

/** A Queued-ready message as an admin would create it in the UI. */
export function draft(org: SalesforceOrg, fields: Record<string, unknown> = {}): string {
  return org.insert(MESSAGE, {
    Status__c: 'Draft',
    To_Address__c: 'patient@example.com',
    From_Address__c: 'clinic@example.org',
    Subject__c: 'Lab results',
    Text_Body__c: 'Your results are ready.',
    ...fields,
  });
}

/** The error jsforce throws, for assertions on Salesforce's error shape. */
export async function failure(p: PromiseLike<unknown>): Promise<{ errorCode?: string; message: string; name: string; data?: unknown }> {
  try {
    await p;
  } catch (err) {
    return err as { errorCode?: string; message: string; name: string };
  }
  throw new Error('expected the call to fail');
}
