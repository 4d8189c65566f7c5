import { describe, expect, it } from 'vitest';
import { Writable } from 'node:stream';
import { createLogger, safeError } from '../../src/log.js';

function capture() {
  const lines: string[] = [];
  const out = new Writable({ write(chunk, _e, cb) { lines.push(chunk.toString()); cb(); } });
  return { log: createLogger('info', out), lines };
}

describe('logging safety net', () => {
  it('redacts PHI- and secret-named fields a careless caller logs whole', async () => {
    const { log, lines } = capture();
    log.info({ event: 'oops', record: { Id: 'a0S000000000001', To_Address__c: 'pat@example.org', Subject__c: 'HIV results' }, apiKey: 'k-123' });
    await new Promise((r) => setTimeout(r, 20));
    const text = lines.join('');
    expect(text).toContain('a0S000000000001');
    expect(text).not.toMatch(/pat@example\.org|HIV results|k-123/);
  });

  it('keeps the code of an error and scrubs addresses from its message', () => {
    const err = Object.assign(new Error('STRING_TOO_LONG: data value too large: pat@example.org'), { errorCode: 'STRING_TOO_LONG' });
    expect(safeError(err)).toEqual({ name: 'Error', code: 'STRING_TOO_LONG', message: 'STRING_TOO_LONG: data value too large: [address]' });
  });
});
