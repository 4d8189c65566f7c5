/**
 * The worker's durable, transient state: what it must remember across restarts. Salesforce
 * stays the system of record, so losing all of it costs time (replays, re-polls), never a
 * message. The interface is async so a shared database (Postgres, for several workers) can
 * implement it later; the embedded default is SQLite (`openSqliteStore`).
 *
 * Only ids, states, counts and times are stored in the clear. Anything that can hold PHI —
 * `ReceiptSchedule.lastSeen`, spool `ciphertext` — must arrive sealed by `Envelope`.
 */

export type JournalState = 'claimed' | 'posting' | 'sent' | 'failed' | 'unknown';

/** The local half of the send journal (the other half is `Secure_Email_Attempt__c`). */
export interface JournalEntry {
  recordId: string;
  /** `<message Id>:<Attempts__c + 1>` (contract §6). */
  attemptKey: string;
  /** The `Secure_Email_Attempt__c` Id once inserted. */
  attemptId?: string;
  state: JournalState;
  trackingId?: string;
  claimedAt: number;
  updatedAt: number;
}

export interface ReceiptSchedule {
  trackingId: string;
  recordId: string;
  nextPollAt: number;
  polls: number;
  sentAt: number;
  finalAt?: number;
  /** Sealed digest or summary of the last statuses seen (Paubox receipts are PHI). */
  lastSeen?: Uint8Array;
}

export interface SpoolRow {
  recordId: string;
  purpose: string;
  ciphertext: Uint8Array;
  createdAt: number;
}

export interface Store {
  /** Replay ids are opaque (Salesforce may change their shape): stored as text. */
  getCheckpoint(channel: string): Promise<string | undefined>;
  setCheckpoint(channel: string, replayId: string): Promise<void>;
  journal: {
    /** Insert or replace the entry of `e.recordId`; durable when the promise resolves. */
    put(e: JournalEntry): Promise<void>;
    /** One transaction: all or none. */
    putMany(es: JournalEntry[]): Promise<void>;
    get(recordId: string): Promise<JournalEntry | undefined>;
    /** Entries in any of these states (every entry when none is given). */
    byState(...states: JournalState[]): Promise<JournalEntry[]>;
    delete(recordId: string): Promise<void>;
    /** Deletes the entries of all these records in one transaction (one disk sync, not one each). */
    deleteMany(recordIds: string[]): Promise<void>;
  };
  receipts: {
    /** Insert or replace by tracking id; one transaction. */
    putMany(s: ReceiptSchedule[]): Promise<void>;
    /** Schedules with `nextPollAt <= now`, soonest first, at most `limit`. */
    due(now: number, limit: number): Promise<ReceiptSchedule[]>;
    get(trackingId: string): Promise<ReceiptSchedule | undefined>;
    delete(trackingId: string): Promise<void>;
    /** Drops every schedule of these records (a resend replaces the old tracking id). */
    deleteForRecords(recordIds: string[]): Promise<void>;
    count(): Promise<number>;
  };
  /** Sealed blobs by key. Use `Spool` (spool.ts), which seals and opens them. */
  spool: {
    put(key: string, recordId: string, purpose: string, ciphertext: Uint8Array, createdAt?: number): Promise<void>;
    get(key: string): Promise<SpoolRow | undefined>;
    delete(key: string): Promise<boolean>;
    /** Crypto-shredding of one record: returns the number of entries deleted. */
    deleteForRecord(recordId: string): Promise<number>;
    /** Deletes entries created before `now - ageMs`; returns how many. */
    purgeOlderThan(ageMs: number, now?: number): Promise<number>;
  };
  close(): Promise<void>;
}

export { openSqliteStore, DB_FILE } from './sqlite.js';
