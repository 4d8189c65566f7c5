import { describe, expect, it } from 'vitest';
import { SandboxClock } from '../../src/sandbox/clock.js';
import { CallCounter } from '../../src/sandbox/counter.js';
import { OrgDb } from '../../src/sandbox/org/db.js';
import { ChangeEventLog } from '../../src/sandbox/org/events.js';
import { RestApi } from '../../src/sandbox/org/rest.js';
import { loadSchema } from '../../src/sandbox/org/schema.js';
import { runQuery, type QuerySource } from '../../src/sandbox/org/soql.js';
import { fileTriggers } from '../../src/sandbox/org/files.js';

/**
 * The org answers `Id IN (…)` and `Id = …` from its id index instead of scanning. The
 * index must find what the scan finds, in the same order — including after a rolled-back
 * delete, which moves a record to the end of its table's order.
 */

const UI = { userId: '005000000000001AAA', changeOrigin: '' };
const MESSAGE = 'Secure_EmailMessage__c';

function org() {
  const clock = new SandboxClock();
  const db = new OrgDb(loadSchema(), { clock, events: new ChangeEventLog(), triggers: fileTriggers });
  const rest = new RestApi({ db, clock, counter: new CallCounter(), apiVersion: '62.0', queryBatchSize: 2000, dailyApiLimit: 1e6, validate: () => undefined });
  const statuses = ['Queued', 'Draft', 'Sent', 'Queued', 'Failed'];
  const ids = db.transaction(UI, (tx) =>
    Array.from({ length: 40 }, (_, n) =>
      tx.insert(MESSAGE, {
        Status__c: statuses[n % statuses.length], To_Address__c: `p${n}@example.com`, From_Address__c: 'clinic@example.org',
        Subject__c: n % 7 === 0 ? null : `Subject ${n % 9}`, Text_Body__c: 'Body',
      })),
  );
  for (const [n, id] of ids.slice(0, 10).entries()) {
    db.transaction(UI, (tx) => tx.insert('Secure_Email_Attempt__c', { Message__c: id, Attempt_Key__c: `${id}:1`, Outcome__c: n % 2 ? 'Claimed' : 'Sent' }));
    db.transaction(UI, (tx) => tx.insert('ContentVersion', { VersionData: Buffer.from(`file ${n}`).toString("base64"), PathOnClient: `f${n}.txt`, FirstPublishLocationId: id }));
  }
  // A delete that fails later in its transaction: the record is back, now last in the table.
  expect(() => db.transaction(UI, (tx) => { tx.delete(MESSAGE, ids[3]!); throw new Error('abort'); })).toThrow('abort');
  db.transaction(UI, (tx) => tx.update(MESSAGE, ids[5]!, { Status__c: 'Sent' }));
  db.transaction(UI, (tx) => tx.delete(MESSAGE, ids[6]!));
  return { rest, ids };
}

describe('SOQL by id: the index finds what a scan finds', () => {
  const { rest, ids } = org();
  const indexed = rest.source('62.0');
  const scanned: QuerySource = { schema: indexed.schema, rows: (n) => indexed.rows(n), byId: (id) => indexed.byId(id) };
  const list = (xs: string[]) => xs.map((x) => `'${x}'`).join(', ');
  const some = [ids[9]!, ids[5]!, ids[3]!, ids[6]!, ids[1]!.slice(0, 15), ids[1]!, `${ids[2]!.slice(0, 15)}x`, 'a0Snotanid', ids[20]!, ids[0]!];

  const queries = [
    `SELECT Id, Status__c FROM ${MESSAGE} WHERE Id IN (${list(some)})`,
    `SELECT Id FROM ${MESSAGE} WHERE Id IN (${list(some)}) AND Status__c = 'Queued'`,
    `SELECT Id FROM ${MESSAGE} WHERE Status__c != 'Draft' AND (Id IN (${list(some)}))`,
    `SELECT Id FROM ${MESSAGE} WHERE Id IN (${list(some)}) OR Status__c = 'Sent'`,
    `SELECT Id FROM ${MESSAGE} WHERE Id NOT IN (${list(some)})`,
    `SELECT Id FROM ${MESSAGE} WHERE Id IN (null, '${ids[4]}')`,
    `SELECT Id FROM ${MESSAGE} WHERE Id = '${ids[3]}'`,
    `SELECT Id FROM ${MESSAGE} WHERE Id = '${ids[6]}'`,
    `SELECT Id FROM ${MESSAGE} WHERE Id = null`,
    `SELECT Id, Subject__c FROM ${MESSAGE} WHERE Id IN (${list(ids)}) ORDER BY Subject__c DESC NULLS LAST, Name LIMIT 12 OFFSET 3`,
    `SELECT COUNT() FROM ${MESSAGE} WHERE Id IN (${list(some)})`,
    `SELECT Id, Message__r.Status__c FROM Secure_Email_Attempt__c WHERE Message__c IN (${list(some)})`,
    `SELECT Id FROM ${MESSAGE} WHERE Id IN (SELECT Message__c FROM Secure_Email_Attempt__c WHERE Outcome__c = 'Claimed')`,
    `SELECT LinkedEntityId, ContentDocumentId FROM ContentDocumentLink WHERE LinkedEntityId IN (${list(some)})`,
    `SELECT Id, Title, VersionData FROM ContentVersion WHERE IsLatest = true ORDER BY Title DESC`,
  ];

  it.each(queries)('%s', (soql) => {
    const run = (source: QuerySource) => runQuery(soql, source, { apiVersion: '62.0', now: () => 0 });
    const fromIndex = run(indexed);
    expect(fromIndex).toEqual(run(scanned));
    expect(fromIndex.totalSize).toBeGreaterThanOrEqual(0);
  });

  it('keeps the table order, not the order the ids were asked in', () => {
    const records = runQuery(`SELECT Id FROM ${MESSAGE} WHERE Id IN (${list(some)})`, indexed).records.map((r) => r.Id);
    // ids[5] was updated in place; ids[3] came back from its rolled-back delete last;
    // ids[6] is deleted; the malformed ids match nothing.
    expect(records).toEqual([ids[0], ids[1], ids[2], ids[5], ids[9], ids[20], ids[3]]);
  });
});
