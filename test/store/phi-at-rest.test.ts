import path from 'node:path';
import { Readable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Envelope, KeyUnavailableError, kmsKeyring } from '../../src/crypto/envelope.js';
import { startKms, type KmsSandbox } from '../../src/sandbox/kms.js';
import { Spool } from '../../src/store/spool.js';
import { openSqliteStore } from '../../src/store/store.js';
import { caught, filesUnder, tempDir } from './helpers.js';

const RECORD = 'a0B5f000001AbCdEAA';
const PHI = {
  to: 'maria.alvarez@patientmail.example',
  cc: 'dr.okafor@clinic-north.example',
  subject: 'Your pathology results from St. Brigid Oncology',
  body: 'Dear Maria Alvarez, DOB 1961-04-17, MRN 00482913: the biopsy shows adenocarcinoma.',
  fileName: 'Alvarez_Maria_pathology_2025-03-02.pdf',
  fileContent: 'PATIENT: ALVAREZ, MARIA  SSN 123-45-6789  DIAGNOSIS: stage II adenocarcinoma',
  receipt: '{"recipient":"maria.alvarez@patientmail.example","deliveryStatus":"delivered"}',
  refused: 'Hepatitis C viral load 2.1 million IU/mL for patient Jonah Whitfield',
};

let kms: KmsSandbox;
beforeAll(async () => { kms = await startKms(); });
afterAll(async () => { await kms.close(); });

/** Every plaintext, as UTF-8 and UTF-16LE, that any file under `dir` contains. */
function leaks(dir: string): string[] {
  const found: string[] = [];
  for (const { file, bytes } of filesUnder(dir)) {
    for (const [name, value] of Object.entries(PHI)) {
      for (const enc of ['utf8', 'utf16le'] as const) {
        if (bytes.includes(Buffer.from(value, enc))) found.push(`${path.basename(file)}: ${name} (${enc})`);
      }
    }
  }
  return found;
}

describe('PHI at rest', () => {
  it('the scan finds plaintext when it is there (control)', async () => {
    const { dir, cleanup } = tempDir();
    try {
      const store = await openSqliteStore(dir);
      await store.spool.put('raw', RECORD, 'body', Buffer.from(PHI.subject, 'utf16le'));
      await store.close();
      expect(leaks(dir)).toEqual(['sdt.db: subject (utf16le)']);
    } finally {
      cleanup();
    }
  });

  it('no plaintext of any PHI reaches any file under DATA_DIR', async () => {
    const { dir, cleanup } = tempDir();
    const dataDir = path.join(dir, 'data');
    try {
      const store = await openSqliteStore(dataDir);
      const envelope = new Envelope(kmsKeyring({ keyId: kms.alias, endpoint: kms.url, region: kms.region }),
        { retry: { tries: 2, baseDelayMs: 5, maxDelayMs: 10 } });
      const spool = new Spool(store, envelope, { frameBytes: 64 * 1024 });

      const keys = {
        to: await spool.put(RECORD, 'to', PHI.to),
        cc: await spool.put(RECORD, 'cc', PHI.cc),
        subject: await spool.put(RECORD, 'subject', PHI.subject),
        body: await spool.put(RECORD, 'html-body', PHI.body),
        fileName: await spool.put(RECORD, 'attachment-name', PHI.fileName),
      };
      // An attachment several frames long, streamed in.
      const file = Buffer.from(PHI.fileContent.repeat(3000), 'utf8');
      const fileKey = await spool.putStream(RECORD, 'attachment', Readable.from([file.subarray(0, 70_000), file.subarray(70_000)]));
      await store.journal.put({ recordId: RECORD, attemptKey: `${RECORD}:1`, state: 'sent', trackingId: 'c2e1f3a0-tracking', claimedAt: 1, updatedAt: 2 });
      await store.receipts.putMany([{
        trackingId: 'c2e1f3a0-tracking', recordId: RECORD, nextPollAt: 3, polls: 1, sentAt: 2,
        lastSeen: await envelope.seal(RECORD, 'receipt', Buffer.from(PHI.receipt)),
      }]);
      // A write while KMS is throttled fails without writing anything.
      const before = filesUnder(dataDir).map((f) => f.bytes.length);
      const lonely = new Spool(store, new Envelope(kmsKeyring({ keyId: kms.alias, endpoint: kms.url, region: kms.region }),
        { retry: { tries: 2, baseDelayMs: 5, maxDelayMs: 10 } }));
      kms.control.throttle(100);
      expect(await caught(lonely.put('a0B5f000001XyZzZAA', 'body', PHI.refused))).toBeInstanceOf(KeyUnavailableError);
      kms.control.throttle(0);
      expect(filesUnder(dataDir).map((f) => f.bytes.length)).toEqual(before);

      // Everything reads back while open, and nothing is readable in the files meanwhile.
      expect((await spool.get(keys.subject, RECORD, 'subject')).toString()).toBe(PHI.subject);
      expect(Buffer.concat(await spool.getStream(fileKey, RECORD, 'attachment').toArray()).equals(file)).toBe(true);
      expect(filesUnder(dataDir).some((f) => f.file.endsWith('-wal'))).toBe(true);
      expect(leaks(dataDir)).toEqual([]);

      await store.close();
      envelope.close();
      expect(filesUnder(dataDir).length).toBeGreaterThan(0);
      expect(leaks(dataDir)).toEqual([]);
    } finally {
      cleanup();
    }
  });
});
