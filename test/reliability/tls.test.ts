/**
 * TLS, through the worker process as the Procfile starts it: a loopback HTTPS Paubox that
 * offers only TLS 1.0/1.1 is refused (its certificate is trusted, so the protocol version is
 * the only reason), and a plain http:// URL for a non-loopback host stops the worker at
 * start-up with exit 78 and a message naming the variable.
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { afterAll, expect, it } from 'vitest';
import { startSandbox, type Sandbox } from '../../src/sandbox/index.js';
import { FAST_ENV, FAST_SANDBOX, spawnWorker, waitFor, type WorkerProcess } from '../support/harness.js';
import { printRow, queueBurst, tally } from './support.js';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sdt-rel-tls-'));
let sandbox: Sandbox | undefined;
let server: https.Server | undefined;
const children: WorkerProcess[] = [];
afterAll(async () => {
  for (const c of children) (c.kill('SIGKILL'), await c.exited);
  server?.closeAllConnections();
  await new Promise((r) => (server ? server.close(r) : r(undefined)));
  await sandbox?.close();
  fs.rmSync(dir, { recursive: true, force: true });
});

it('refuses a Paubox peer that offers only TLS 1.0/1.1, and says so', async () => {
  execFileSync('openssl', [
    'req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '1', '-subj', '/CN=localhost',
    '-addext', 'subjectAltName=IP:127.0.0.1,DNS:localhost',
    '-keyout', path.join(dir, 'key.pem'), '-out', path.join(dir, 'cert.pem'),
  ], { stdio: 'ignore' });
  let handshakes = 0;
  server = https.createServer({
    key: fs.readFileSync(path.join(dir, 'key.pem')), cert: fs.readFileSync(path.join(dir, 'cert.pem')),
    minVersion: 'TLSv1', maxVersion: 'TLSv1.1', ciphers: 'DEFAULT:@SECLEVEL=0',
  }, (_req, res) => {
    handshakes++; // a request got through on TLS < 1.2: must never happen
    res.writeHead(200, { 'Content-Type': 'application/json' }).end(JSON.stringify({ sourceTrackingId: 'old-tls' }));
  });
  server.on('tlsClientError', () => undefined);
  await new Promise<void>((r) => server!.listen(0, '127.0.0.1', r));
  const port = (server.address() as AddressInfo).port;

  sandbox = await startSandbox(FAST_SANDBOX);
  const sb = sandbox;
  const w = spawnWorker({
    ...sb.env, ...FAST_ENV, LOG_LEVEL: 'info', DATA_DIR: path.join(dir, 'data'), SEND_DEADLINE_MS: '3000',
    PAUBOX_BASE_URL: `https://127.0.0.1:${port}/v1/email`, NODE_EXTRA_CA_CERTS: path.join(dir, 'cert.pem'),
  });
  children.push(w);
  const burst = queueBurst(sb, 'tls', 2);
  await waitFor(() => burst.ids.every((id) => sb.org.get('Secure_EmailMessage__c', id)?.Status__c === 'Failed'), 'Failed after the retry deadline', 30_000);
  const errors = burst.ids.map((id) => String(sb.org.get('Secure_EmailMessage__c', id)?.Error__c));
  const logged = w.logs.lines.filter((l) => /TLS|protocol/i.test(JSON.stringify(l)));
  printRow({ scenario: 'TLS 1.0/1.1 peer refused', tally: tally(sb, [burst]), recoverMs: null, note: `Error__c: ${errors[0]?.slice(0, 60)}` });
  expect(handshakes).toBe(0);
  expect(errors[0]).toMatch(/TLS 1.2/);
  expect(logged.length, 'a log line names TLS').toBeGreaterThan(0);
}, 60_000);

it('rejects a plain http:// URL for a non-loopback host at start-up (exit 78, names the variable)', async () => {
  for (const [variable, url] of [['PAUBOX_BASE_URL', 'http://api.paubox.example/v1/email'], ['SF_LOGIN_URL', 'http://login.salesforce.example']] as const) {
    const w = spawnWorker({
      SF_LOGIN_URL: 'https://login.salesforce.com', SF_CLIENT_ID: 'id', SF_CLIENT_SECRET: 'secret', PAUBOX_API_KEY: 'k',
      KMS_KEY_ID: 'alias/x', AWS_REGION: 'us-east-1', DATA_DIR: path.join(dir, 'cfg'), [variable]: url,
    });
    children.push(w);
    expect(await w.exited).toBe(78);
    const line = w.logs.events('config.invalid')[0];
    expect(line).toMatchObject({ variable });
    expect(String(line?.msg)).toMatch(/https/);
  }
}, 30_000);
