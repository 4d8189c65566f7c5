/**
 * The production endpoints, without a network: nock stands in for api.paubox.com and
 * api.paubox.net over HTTPS, so the URLs the configuration derives, the paths the client
 * appends and the auth header are checked as they would leave the machine.
 */
import nock from 'nock';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config.js';
import { createPauboxClient } from '../../src/paubox/client.js';

const env = {
  NODE_ENV: 'production', SF_CLIENT_ID: 'cid', SF_CLIENT_SECRET: 'secret',
  PAUBOX_API_KEY: 'live-key', KMS_KEY_ID: 'arn:aws:kms:us-east-1:111122223333:key/k',
};
const message = {
  recipients: ['patient@example.org'], headers: { subject: 'Results', from: 'care@clinic.example' },
  content: { 'text/plain': 'hello' }, allowNonTLS: false, forceSecureNotification: false,
};

beforeAll(() => nock.disableNetConnect());
afterEach(() => nock.cleanAll());

describe('Paubox production endpoints', () => {
  it('posts to https://api.paubox.com/v1/email/messages with the Token header by default', async () => {
    const cfg = loadConfig(env);
    const scope = nock('https://api.paubox.com', { reqheaders: { authorization: 'Token token=live-key' } })
      .post('/v1/email/messages', (body) => body.data.message.recipients[0] === 'patient@example.org')
      .reply(200, { sourceTrackingId: 'trk-1', data: 'Service OK' });
    const client = createPauboxClient({ baseUrl: cfg.paubox.baseUrl, apiKey: cfg.paubox.apiKey });
    await expect(client.send(message)).resolves.toMatchObject({ trackingId: 'trk-1' });
    expect(scope.isDone()).toBe(true);
  });

  it('uses the legacy host named by PAUBOX_API_USERNAME, for sends and receipts', async () => {
    const cfg = loadConfig({ ...env, PAUBOX_API_USERNAME: 'clinic' });
    const scope = nock('https://api.paubox.net')
      .post('/v1/clinic/bulk_messages').reply(200, { messages: [{ sourceTrackingId: 'a' }, { sourceTrackingId: 'b' }] })
      .get('/v1/clinic/message_receipt').query({ sourceTrackingId: 'a' })
      .reply(200, { sourceTrackingId: 'a', data: { message: { id: '<m@clinic.example>', message_deliveries: [] } } });
    const client = createPauboxClient({ baseUrl: cfg.paubox.baseUrl, apiKey: cfg.paubox.apiKey });
    const sent = await client.sendBulk([message, message]);
    expect(sent.map((r) => (r.ok ? r.trackingId : null))).toEqual(['a', 'b']);
    await expect(client.receipt('a')).resolves.toMatchObject({ notFound: false });
    expect(scope.isDone()).toBe(true);
  });
});
