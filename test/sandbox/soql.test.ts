import { describe, expect, it } from 'vitest';
import { loadSchema } from '../../src/sandbox/org/schema.js';
import { runQuery, SoqlError, type QuerySource } from '../../src/sandbox/org/soql.js';

/**
 * The sandbox's SOQL over a small fixture: each supported query form with the records
 * Salesforce would return, and each bad query with Salesforce's error code and words.
 */

type Row = Record<string, unknown>;

const M1 = 'a0S000000000001AAA', M2 = 'a0S000000000002AAA', M3 = 'a0S000000000003AAA', M4 = 'a0S000000000004AAA';
const M5_DELETED = 'a0S000000000005AAA';
const A1 = 'a0T000000000001AAA', A2 = 'a0T000000000002AAA', A3_ORPHAN = 'a0T000000000003AAA';
const DOC = '069000000000001AAA', VER = '068000000000001AAA', OLD_VER = '068000000000002AAA', LINK = '06A000000000001AAA';

const message = (Id: string, n: number, fields: Row): Row => ({
  Id, Name: `SEM-0000000${n}`, IsDeleted: false, Allow_Non_TLS__c: false, Subject__c: null, Attempts__c: null, ...fields,
});

const ROWS: Record<string, Row[]> = {
  Secure_EmailMessage__c: [
    message(M1, 1, { Status__c: 'Queued', Subject__c: 'Hello', Attempts__c: 0, CreatedDate: '2026-12-01T10:00:00.000+0000' }),
    message(M2, 2, {
      Status__c: 'Sent', Subject__c: "O'Brien report", Attempts__c: 2, CreatedDate: '2026-12-02T10:00:00.000+0000',
      Sent_At__c: '2026-12-04T17:06:54.000+0000', Tracking_Id__c: 'trk-2',
    }),
    message(M3, 3, { Status__c: 'Draft', CreatedDate: '2026-12-03T10:00:00.000+0000' }),
    message(M4, 4, { Status__c: 'Failed', Subject__c: '100% done_now', Attempts__c: 10, Allow_Non_TLS__c: true, CreatedDate: '2026-11-01T10:00:00.000+0000' }),
    message(M5_DELETED, 5, { Status__c: 'Queued', IsDeleted: true, CreatedDate: '2026-12-01T10:00:00.000+0000' }),
  ],
  Secure_Email_Attempt__c: [
    { Id: A1, Name: 'SEA-00000001', Message__c: M1, Attempt_Key__c: `${M1}:1`, Outcome__c: 'Claimed' },
    { Id: A2, Name: 'SEA-00000002', Message__c: M2, Attempt_Key__c: `${M2}:2`, Outcome__c: 'Sent' },
    { Id: A3_ORPHAN, Name: 'SEA-00000003', Message__c: 'a0S000000000099AAA', Attempt_Key__c: 'x:1', Outcome__c: 'Failed' },
  ],
  ContentDocument: [{ Id: DOC, Title: 'report', LatestPublishedVersionId: VER }],
  ContentVersion: [
    { Id: OLD_VER, ContentDocumentId: DOC, IsLatest: false, Title: 'report (draft)', VersionData: 'b2xk' },
    { Id: VER, ContentDocumentId: DOC, IsLatest: true, Title: 'report', PathOnClient: 'report.pdf', FileExtension: 'pdf', ContentSize: 5, VersionData: 'aGVsbG8=' },
  ],
  ContentDocumentLink: [{ Id: LINK, LinkedEntityId: M1, ContentDocumentId: DOC, ShareType: 'V' }],
};

const source: QuerySource = {
  schema: loadSchema(),
  rows: (name) => ROWS[name] ?? [],
  byId(id) {
    for (const [object, rows] of Object.entries(ROWS)) {
      const row = rows.find((r) => r.Id === id);
      if (row) return { object, row };
    }
    return undefined;
  },
};

const NOW = Date.parse('2026-12-04T18:00:00Z');
const run = (soql: string, apiVersion?: string) => runQuery(soql, source, { now: () => NOW, apiVersion });
const ids = (soql: string) => run(soql).records.map((r) => r.Id);
const url = (type: string, id: string, v = '62.0') => `/services/data/v${v}/sobjects/${type}/${id}`;
const attrs = (type: string, id: string, v = '62.0') => ({ type, url: url(type, id, v) });

const FROM = 'FROM Secure_EmailMessage__c';

describe('runQuery: which records', () => {
  const cases: Array<[string, string, string[]]> = [
    ['every live record, deleted ones excluded', `SELECT Id ${FROM}`, [M1, M2, M3, M4]],
    ['= on a picklist, case-insensitive', `SELECT Id ${FROM} WHERE Status__c = 'queued'`, [M1]],
    ['!= keeps nulls (SOQL null is a value)', `SELECT Id ${FROM} WHERE Subject__c != 'Hello'`, [M2, M3, M4]],
    ['= null', `SELECT Id ${FROM} WHERE Subject__c = null`, [M3]],
    ['!= null', `SELECT Id ${FROM} WHERE Subject__c != NULL`, [M1, M2, M4]],
    ['> on a number', `SELECT Id ${FROM} WHERE Attempts__c > 1`, [M2, M4]],
    ['<= on a number skips nulls', `SELECT Id ${FROM} WHERE Attempts__c <= 2`, [M1, M2]],
    ['< and >= together', `SELECT Id ${FROM} WHERE Attempts__c >= 2 AND Attempts__c < 10`, [M2]],
    ['IN', `SELECT Id ${FROM} WHERE Status__c IN ('Queued', 'Sent')`, [M1, M2]],
    ['NOT IN', `SELECT Id ${FROM} WHERE Status__c NOT IN ('Queued', 'Sent')`, [M3, M4]],
    ['LIKE with %', `SELECT Id ${FROM} WHERE Subject__c LIKE 'hel%'`, [M1]],
    ['LIKE with _', `SELECT Id ${FROM} WHERE Subject__c LIKE 'O_Brien%'`, [M2]],
    ['LIKE with escaped % and _', `SELECT Id ${FROM} WHERE Subject__c LIKE '100\\% done\\_now'`, [M4]],
    ['a quoted string with an escaped quote', `SELECT Id ${FROM} WHERE Subject__c = 'O\\'Brien report'`, [M2]],
    ['booleans', `SELECT Id ${FROM} WHERE Allow_Non_TLS__c = true`, [M4]],
    ['OR, AND, NOT and parentheses',
      `SELECT Id ${FROM} WHERE Status__c = 'Draft' OR (Attempts__c > 1 AND NOT Status__c = 'Failed')`, [M2, M3]],
    ['NOT over a parenthesised group', `SELECT Id ${FROM} WHERE NOT (Status__c = 'Draft' OR Status__c = 'Failed')`, [M1, M2]],
    ['nested parentheses',
      `SELECT Id ${FROM} WHERE ((Status__c = 'Sent' OR Status__c = 'Failed') AND (Attempts__c = 10 OR Subject__c LIKE 'O%'))`, [M2, M4]],
    ['datetime literal compared as an instant', `SELECT Id ${FROM} WHERE CreatedDate > 2026-12-01T12:00:00Z`, [M2, M3]],
    ['datetime equality across offsets', `SELECT Id ${FROM} WHERE Sent_At__c = 2026-12-04T18:06:54+01:00`, [M2]],
    ['LAST_N_DAYS:n starts n days back at midnight', `SELECT Id ${FROM} WHERE CreatedDate = LAST_N_DAYS:3`, [M1, M2, M3]],
    ['< LAST_N_DAYS:n is before that', `SELECT Id ${FROM} WHERE CreatedDate < LAST_N_DAYS:3`, [M4]],
    ['TODAY', `SELECT Id ${FROM} WHERE Sent_At__c = TODAY`, [M2]],
    ['a 15-character Id matches the 18-character one', `SELECT Id ${FROM} WHERE Id = 'a0S000000000002'`, [M2]],
    ['ORDER BY DESC NULLS LAST', `SELECT Id ${FROM} ORDER BY Attempts__c DESC NULLS LAST`, [M4, M2, M1, M3]],
    ['ORDER BY ASC puts nulls first by default', `SELECT Id ${FROM} ORDER BY Attempts__c`, [M3, M1, M2, M4]],
    ['ORDER BY ASC NULLS LAST', `SELECT Id ${FROM} ORDER BY Attempts__c ASC NULLS LAST`, [M1, M2, M4, M3]],
    ['ORDER BY several fields', `SELECT Id ${FROM} ORDER BY Allow_Non_TLS__c DESC, Name ASC`, [M4, M1, M2, M3]],
    ['ORDER BY a datetime', `SELECT Id ${FROM} ORDER BY CreatedDate DESC`, [M3, M2, M1, M4]],
    ['LIMIT and OFFSET', `SELECT Id ${FROM} ORDER BY Name LIMIT 2 OFFSET 1`, [M2, M3]],
    ['names are case-insensitive', `select id from secure_emailmessage__c where STATUS__C = 'Sent'`, [M2]],
    ['an object alias', `SELECT m.Id ${FROM} m WHERE m.Status__c = 'Sent'`, [M2]],
  ];
  it.each(cases)('%s', (_name, soql, expected) => {
    expect(ids(soql)).toEqual(expected);
  });

  it('filters on a parent field', () => {
    expect(ids(`SELECT Id FROM Secure_Email_Attempt__c WHERE Message__r.Status__c = 'Sent'`)).toEqual([A2]);
  });

  it('runs a semi-join', () => {
    const soql = `SELECT Id FROM ContentVersion WHERE ContentDocumentId IN
      (SELECT ContentDocumentId FROM ContentDocumentLink WHERE LinkedEntityId = '${M1}') AND IsLatest = true`;
    expect(ids(soql)).toEqual([VER]);
  });
});

describe('runQuery: record shape', () => {
  it('uses the schema spelling and carries attributes', () => {
    expect(run(`select id, status__c, name from secure_emailmessage__c where id = '${M1}'`)).toEqual({
      totalSize: 1,
      records: [{ attributes: attrs('Secure_EmailMessage__c', M1), Id: M1, Status__c: 'Queued', Name: 'SEM-00000001' }],
    });
  });

  it('returns null for fields never set', () => {
    expect(run(`SELECT Tracking_Id__c, Opened_At__c ${FROM} WHERE Id = '${M2}'`).records[0])
      .toEqual({ attributes: attrs('Secure_EmailMessage__c', M2), Tracking_Id__c: 'trk-2', Opened_At__c: null });
  });

  it('nests parent fields, null when the parent is missing', () => {
    const result = run('SELECT Id, Outcome__c, Message__r.Status__c, Message__r.Name FROM Secure_Email_Attempt__c ORDER BY Name');
    expect(result.records).toEqual([
      { attributes: attrs('Secure_Email_Attempt__c', A1), Id: A1, Outcome__c: 'Claimed',
        Message__r: { attributes: attrs('Secure_EmailMessage__c', M1), Status__c: 'Queued', Name: 'SEM-00000001' } },
      { attributes: attrs('Secure_Email_Attempt__c', A2), Id: A2, Outcome__c: 'Sent',
        Message__r: { attributes: attrs('Secure_EmailMessage__c', M2), Status__c: 'Sent', Name: 'SEM-00000002' } },
      { attributes: attrs('Secure_Email_Attempt__c', A3_ORPHAN), Id: A3_ORPHAN, Outcome__c: 'Failed', Message__r: null },
    ]);
  });

  it('follows the Files relationships, two hops deep', () => {
    const soql = `SELECT ContentDocumentId, ContentDocument.LatestPublishedVersionId, ContentDocument.LatestPublishedVersion.Title
      FROM ContentDocumentLink WHERE LinkedEntityId = '${M1}'`;
    expect(run(soql).records).toEqual([{
      attributes: attrs('ContentDocumentLink', LINK),
      ContentDocumentId: DOC,
      ContentDocument: {
        attributes: attrs('ContentDocument', DOC),
        LatestPublishedVersionId: VER,
        LatestPublishedVersion: { attributes: attrs('ContentVersion', VER), Title: 'report' },
      },
    }]);
  });

  it('returns VersionData as the URL of the blob, not its bytes', () => {
    expect(run(`SELECT Title, VersionData FROM ContentVersion WHERE Id = '${VER}'`, 'v64.0').records).toEqual([{
      attributes: attrs('ContentVersion', VER, '64.0'), Title: 'report', VersionData: `${url('ContentVersion', VER, '64.0')}/VersionData`,
    }]);
  });

  it('nests child subqueries like Salesforce (null when there are none)', () => {
    const result = run(`SELECT Id, (SELECT Outcome__c FROM Attempts__r) ${FROM} WHERE Id IN ('${M1}', '${M3}') ORDER BY Name`);
    expect(result.records).toEqual([
      { attributes: attrs('Secure_EmailMessage__c', M1), Id: M1,
        Attempts__r: { totalSize: 1, done: true, records: [{ attributes: attrs('Secure_Email_Attempt__c', A1), Outcome__c: 'Claimed' }] } },
      { attributes: attrs('Secure_EmailMessage__c', M3), Id: M3, Attempts__r: null },
    ]);
  });

  it('COUNT() gives totalSize and no records', () => {
    expect(run(`SELECT COUNT() ${FROM} WHERE Status__c = 'Queued'`)).toEqual({ totalSize: 1, records: [] });
  });
});

describe('runQuery: errors as Salesforce words them', () => {
  const custom = (kind: 'field' | 'object' | 'relationship') =>
    kind === 'field'
      ? "If you are attempting to use a custom field, be sure to append the '__c' after the custom field name. Please reference your WSDL or the describe call for the appropriate names."
      : kind === 'object'
        ? "If you are attempting to use a custom object, be sure to append the '__c' after the entity name. Please reference your WSDL or the describe call for the appropriate names."
        : "If you are attempting to use a custom relationship, be sure to append the '__r' after the custom relationship name. Please reference your WSDL or the describe call for the appropriate names.";
  const at = (line: string, column: number, text: string) =>
    `\n${line}\n${' '.repeat(column - 1)}^\nERROR at Row:1:Column:${column}\n${text}`;

  const cases: Array<[string, string, SoqlError['errorCode'], string]> = (() => {
    const q = (soql: string, code: SoqlError['errorCode'], column: number, text: string): [string, string, SoqlError['errorCode'], string] =>
      [soql, soql, code, at(soql, column, text)];
    return [
      q('SELECT Id, Foo__c FROM Secure_EmailMessage__c', 'INVALID_FIELD', 12,
        `No such column 'Foo__c' on entity 'Secure_EmailMessage__c'. ${custom('field')}`),
      q("SELECT Id FROM Secure_EmailMessage__c WHERE Bogus__c = 'x'", 'INVALID_FIELD', 45,
        `No such column 'Bogus__c' on entity 'Secure_EmailMessage__c'. ${custom('field')}`),
      q('SELECT Id FROM Secure_EmailMessage__c ORDER BY Bogus__c', 'INVALID_FIELD', 48,
        `No such column 'Bogus__c' on entity 'Secure_EmailMessage__c'. ${custom('field')}`),
      q('SELECT Message__r.Nope__c FROM Secure_Email_Attempt__c', 'INVALID_FIELD', 8,
        `No such column 'Nope__c' on entity 'Secure_EmailMessage__c'. ${custom('field')}`),
      q('SELECT Foo__r.Name FROM Secure_Email_Attempt__c', 'INVALID_FIELD', 8,
        `Didn't understand relationship 'Foo__r' in field path. ${custom('relationship')}`),
      q('SELECT Id FROM Nope__c', 'INVALID_TYPE', 16, `sObject type 'Nope__c' is not supported. ${custom('object')}`),
      q('SELECT Id, (SELECT Id FROM Nope__r) FROM Secure_EmailMessage__c', 'INVALID_TYPE', 28,
        `Didn't understand relationship 'Nope__r' in FROM part of query call. ${custom('relationship')}`),
      q('SELECT Id, FROM Secure_EmailMessage__c', 'MALFORMED_QUERY', 12, "unexpected token: 'FROM'"),
      q('SELECT Id FROM Secure_EmailMessage__c WHERE', 'MALFORMED_QUERY', 44, "unexpected token: '<EOF>'"),
      q("SELECT Id FROM Secure_EmailMessage__c WHERE Subject__c = 'x", 'MALFORMED_QUERY', 58, "unexpected token: '''"),
      q('SELECT Id FROM Secure_EmailMessage__c LIMIT many', 'MALFORMED_QUERY', 45, "unexpected token: 'many'"),
    ];
  })();

  it.each(cases)('%s', (_name, soql, errorCode, message) => {
    let caught: unknown;
    try {
      run(soql);
    } catch (err) {
      caught = err;
    }
    expect(caught).toBeInstanceOf(SoqlError);
    expect(caught).toMatchObject({ errorCode, message });
  });

  it('refuses what the sandbox does not emulate rather than guessing', () => {
    expect(() => run(`SELECT Status__c, COUNT(Id) ${FROM} GROUP BY Status__c`)).toThrow(SoqlError);
    expect(() => run(`SELECT Id, COUNT() ${FROM}`)).toThrow(SoqlError);
  });
});
