/**
 * The embedded store: one SQLite file in `DATA_DIR` through better-sqlite3, in WAL mode with
 * `synchronous = FULL`, so a journal write that resolved survives a crash or power loss.
 * `secure_delete` overwrites deleted rows, so a shredded entry's ciphertext does not
 * linger in free pages (its data key may still wrap other, live entries).
 *
 * better-sqlite3 is synchronous; each call is short (indexed, one row or one transaction),
 * so the async wrapper only shapes the interface for a future networked implementation.
 */
import { chmodSync, mkdirSync } from 'node:fs';
import path from 'node:path';
import Database from 'better-sqlite3';
import { migrate } from './migrations.js';
import type { JournalEntry, JournalState, ReceiptSchedule, SpoolRow, Store } from './store.js';

export const DB_FILE = 'sdt.db';

interface JournalRow {
  record_id: string; attempt_key: string; attempt_id: string | null; state: JournalState;
  tracking_id: string | null; claimed_at: number; updated_at: number;
}
interface ReceiptRow {
  tracking_id: string; record_id: string; next_poll_at: number; polls: number;
  sent_at: number; final_at: number | null; last_seen: Buffer | null;
}
interface SpoolDbRow { record_id: string; purpose: string; ciphertext: Buffer; created_at: number }

const toJournal = (r: JournalRow): JournalEntry => ({
  recordId: r.record_id,
  attemptKey: r.attempt_key,
  ...(r.attempt_id !== null ? { attemptId: r.attempt_id } : {}),
  state: r.state,
  ...(r.tracking_id !== null ? { trackingId: r.tracking_id } : {}),
  claimedAt: r.claimed_at,
  updatedAt: r.updated_at,
});

const fromJournal = (e: JournalEntry) => ({
  record_id: e.recordId, attempt_key: e.attemptKey, attempt_id: e.attemptId ?? null, state: e.state,
  tracking_id: e.trackingId ?? null, claimed_at: e.claimedAt, updated_at: e.updatedAt,
});

const toReceipt = (r: ReceiptRow): ReceiptSchedule => ({
  trackingId: r.tracking_id,
  recordId: r.record_id,
  nextPollAt: r.next_poll_at,
  polls: r.polls,
  sentAt: r.sent_at,
  ...(r.final_at !== null ? { finalAt: r.final_at } : {}),
  ...(r.last_seen !== null ? { lastSeen: new Uint8Array(r.last_seen) } : {}),
});

const fromReceipt = (s: ReceiptSchedule) => ({
  tracking_id: s.trackingId, record_id: s.recordId, next_poll_at: s.nextPollAt, polls: s.polls,
  sent_at: s.sentAt, final_at: s.finalAt ?? null, last_seen: s.lastSeen ? Buffer.from(s.lastSeen) : null,
});

/** Only the worker's user may list or read the state directory. */
function ensurePrivateDir(dir: string): void {
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  try {
    chmodSync(dir, 0o700);
  } catch {
    // Not ours to change (e.g. a mounted volume): the files inside are still ciphertext.
  }
}

function openDatabase(file: string, synchronous: 'FULL' | 'NORMAL' = 'FULL'): Database.Database {
  const db = new Database(file);
  db.pragma('journal_mode = WAL');
  db.pragma(`synchronous = ${synchronous}`);
  db.pragma('secure_delete = ON');
  db.pragma('busy_timeout = 5000');
  migrate(db);
  return db;
}

/** Opens (creating and migrating as needed) the store in `dataDir`. */
export async function openSqliteStore(dataDir: string): Promise<Store> {
  ensurePrivateDir(dataDir);
  const db = openDatabase(path.join(dataDir, DB_FILE));
  // The spool's own connection to the same file commits without waiting for the disk
  // (WAL + synchronous=NORMAL: safe against a process crash, not a power cut). A lost spool
  // entry costs a re-download from Salesforce, never a message, and an fsync per
  // attachment frame was the worker's largest cost in a burst.
  const spoolDb = openDatabase(path.join(dataDir, DB_FILE), 'NORMAL');

  const q = {
    getCheckpoint: db.prepare<[string], { replay_id: string }>('SELECT replay_id FROM checkpoint WHERE channel = ?'),
    setCheckpoint: db.prepare(`INSERT INTO checkpoint (channel, replay_id, updated_at) VALUES (?, ?, ?)
      ON CONFLICT (channel) DO UPDATE SET replay_id = excluded.replay_id, updated_at = excluded.updated_at`),
    putJournal: db.prepare(`INSERT OR REPLACE INTO journal
      (record_id, attempt_key, attempt_id, state, tracking_id, claimed_at, updated_at)
      VALUES (@record_id, @attempt_key, @attempt_id, @state, @tracking_id, @claimed_at, @updated_at)`),
    getJournal: db.prepare<[string], JournalRow>('SELECT * FROM journal WHERE record_id = ?'),
    allJournal: db.prepare<[], JournalRow>('SELECT * FROM journal ORDER BY updated_at, record_id'),
    deleteJournal: db.prepare('DELETE FROM journal WHERE record_id = ?'),
    putReceipt: db.prepare(`INSERT OR REPLACE INTO receipt
      (tracking_id, record_id, next_poll_at, polls, sent_at, final_at, last_seen)
      VALUES (@tracking_id, @record_id, @next_poll_at, @polls, @sent_at, @final_at, @last_seen)`),
    dueReceipts: db.prepare<[number, number], ReceiptRow>(
      'SELECT * FROM receipt WHERE next_poll_at <= ? ORDER BY next_poll_at, tracking_id LIMIT ?'),
    getReceipt: db.prepare<[string], ReceiptRow>('SELECT * FROM receipt WHERE tracking_id = ?'),
    deleteReceipt: db.prepare('DELETE FROM receipt WHERE tracking_id = ?'),
    deleteRecordReceipts: db.prepare('DELETE FROM receipt WHERE record_id = ?'),
    countReceipts: db.prepare<[], { n: number }>('SELECT count(*) AS n FROM receipt'),
    putSpool: spoolDb.prepare(`INSERT OR REPLACE INTO spool (key, record_id, purpose, created_at, ciphertext)
      VALUES (?, ?, ?, ?, ?)`),
    getSpool: spoolDb.prepare<[string], SpoolDbRow>('SELECT record_id, purpose, ciphertext, created_at FROM spool WHERE key = ?'),
    deleteSpool: spoolDb.prepare('DELETE FROM spool WHERE key = ?'),
    shredSpool: spoolDb.prepare('DELETE FROM spool WHERE record_id = ?'),
    purgeSpool: spoolDb.prepare('DELETE FROM spool WHERE created_at < ?'),
  };

  const putJournals = db.transaction((es: JournalEntry[]) => { for (const e of es) q.putJournal.run(fromJournal(e)); });
  const deleteJournals = db.transaction((ids: string[]) => { for (const id of ids) q.deleteJournal.run(id); });
  const putReceipts = db.transaction((ss: ReceiptSchedule[]) => { for (const s of ss) q.putReceipt.run(fromReceipt(s)); });

  const byState = (states: JournalState[]): JournalEntry[] => {
    if (states.length === 0) return q.allJournal.all().map(toJournal);
    const marks = states.map(() => '?').join(', ');
    return db.prepare<JournalState[], JournalRow>(`SELECT * FROM journal WHERE state IN (${marks}) ORDER BY updated_at, record_id`)
      .all(...states).map(toJournal);
  };

  return {
    async getCheckpoint(channel) {
      return q.getCheckpoint.get(channel)?.replay_id;
    },
    async setCheckpoint(channel, replayId) {
      q.setCheckpoint.run(channel, replayId, Date.now());
    },
    journal: {
      async put(e) { q.putJournal.run(fromJournal(e)); },
      async putMany(es) { putJournals(es); },
      async get(recordId) {
        const row = q.getJournal.get(recordId);
        return row && toJournal(row);
      },
      async byState(...states) { return byState(states); },
      async delete(recordId) { q.deleteJournal.run(recordId); },
      async deleteMany(recordIds) { deleteJournals(recordIds); },
    },
    receipts: {
      async putMany(ss) { putReceipts(ss); },
      async due(now, limit) { return q.dueReceipts.all(now, limit).map(toReceipt); },
      async get(trackingId) {
        const row = q.getReceipt.get(trackingId);
        return row && toReceipt(row);
      },
      async delete(trackingId) { q.deleteReceipt.run(trackingId); },
      async deleteForRecords(recordIds) { db.transaction(() => recordIds.forEach((id) => q.deleteRecordReceipts.run(id)))(); },
      async count() { return q.countReceipts.get()?.n ?? 0; },
    },
    spool: {
      async put(key, recordId, purpose, ciphertext, createdAt = Date.now()) {
        q.putSpool.run(key, recordId, purpose, createdAt, Buffer.from(ciphertext.buffer, ciphertext.byteOffset, ciphertext.byteLength));
      },
      async get(key): Promise<SpoolRow | undefined> {
        const row = q.getSpool.get(key);
        return row && { recordId: row.record_id, purpose: row.purpose, ciphertext: new Uint8Array(row.ciphertext), createdAt: row.created_at };
      },
      async delete(key) { return q.deleteSpool.run(key).changes > 0; },
      async deleteForRecord(recordId) { return q.shredSpool.run(recordId).changes; },
      async purgeOlderThan(ageMs, now = Date.now()) { return q.purgeSpool.run(now - ageMs).changes; },
    },
    async close() {
      if (spoolDb.open) spoolDb.close();
      if (db.open) db.close();
    },
  };
}
