/**
 * The stats line (every minute in production; `statsIntervalMs` here): what an operator
 * graphs and alerts on — in flight, sent, failed, the age of the oldest Queued record,
 * and the org's API usage as Salesforce reports it in `Sforce-Limit-Info`.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { queue, startStack, statusOf, waitFor, type LogLine, type Stack } from '../support/harness.js';

let stack: Stack;
beforeEach(async () => {
  stack = await startStack();
});
afterEach(async () => {
  await stack?.close();
});

const stats = (): LogLine[] => stack.logs.events('stats');

describe('the stats line', () => {
  it('reports the backlog while there is one, then sent, failed, nothing in flight and the API usage', async () => {
    stack.sandbox.org.control.setApiUsage(12_345);
    const backlog = queue(stack.sandbox, ...Array.from({ length: 30 }, (_, i) => ({ Subject__c: `stats ${i}` })));
    const [bad] = queue(stack.sandbox, { Subject__c: 'no body', Text_Body__c: '', Html_Body__c: '' });
    await stack.startWorker({ statsIntervalMs: 100 });

    await waitFor(() => stats().some((l) => typeof l.oldestQueuedAgeMs === 'number'), 'a stats line with the backlog age');
    await waitFor(() => statusOf(stack.sandbox, [...backlog, bad!]).every((s) => s !== 'Queued' && s !== 'Sending'), 'all done');
    // After the next sweep the queue is empty and the counters have settled.
    const settled = await waitFor(() => stats().find((l) => l.sent === 30 && l.failed === 1 && l.inFlight === 0 && l.oldestQueuedAgeMs === null),
      'a settled stats line', 20_000);
    expect(settled).toMatchObject({ level: 'info', apiLimit: expect.any(Number), apiUsed: expect.any(Number) });
    expect(settled.apiUsed as number).toBeGreaterThanOrEqual(12_345);
    expect(settled.apiUsed as number).toBeLessThanOrEqual(settled.apiLimit as number);
    expect(Object.keys(settled)).toEqual(expect.arrayContaining(['changeEvents', 'streamDown', 'receiptPolls']));
  });
});
