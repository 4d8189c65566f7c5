/**
 * Versioned schema migrations, tracked in SQLite's `user_version`. Append only: a released
 * migration is never edited, a change is a new entry. Each runs in its own transaction.
 *
 * Only ids, states, counts and times are columns; anything that may hold PHI arrives
 * already sealed by the envelope layer and is stored as an opaque BLOB.
 */
import type { Database } from 'better-sqlite3';

export const MIGRATIONS: readonly string[] = [
  // 1: the initial schema.
  `
  CREATE TABLE checkpoint (
    channel    TEXT PRIMARY KEY,
    replay_id  TEXT NOT NULL,
    updated_at INTEGER NOT NULL
  );
  CREATE TABLE journal (
    record_id   TEXT PRIMARY KEY,
    attempt_key TEXT NOT NULL,
    attempt_id  TEXT,
    state       TEXT NOT NULL CHECK (state IN ('claimed', 'posting', 'sent', 'failed', 'unknown')),
    tracking_id TEXT,
    claimed_at  INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL
  );
  CREATE INDEX journal_state ON journal (state);
  CREATE TABLE receipt (
    tracking_id  TEXT PRIMARY KEY,
    record_id    TEXT NOT NULL,
    next_poll_at INTEGER NOT NULL,
    polls        INTEGER NOT NULL,
    sent_at      INTEGER NOT NULL,
    final_at     INTEGER,
    last_seen    BLOB
  );
  CREATE INDEX receipt_due ON receipt (next_poll_at);
  CREATE TABLE spool (
    key        TEXT PRIMARY KEY,
    record_id  TEXT NOT NULL,
    purpose    TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    ciphertext BLOB NOT NULL
  );
  CREATE INDEX spool_record ON spool (record_id);
  CREATE INDEX spool_created ON spool (created_at);
  `,
  // 2: a resend drops the record's earlier receipt schedules (by record, not tracking id).
  `
  CREATE INDEX receipt_record ON receipt (record_id);
  `,
];

/** Brings the database to the latest version; refuses a database from a newer release. */
export function migrate(db: Database): number {
  const current = db.pragma('user_version', { simple: true }) as number;
  if (current > MIGRATIONS.length) {
    throw new Error(`store schema version ${current} is newer than this release knows (${MIGRATIONS.length})`);
  }
  for (let v = current; v < MIGRATIONS.length; v++) {
    db.transaction(() => {
      db.exec(MIGRATIONS[v]!);
      db.pragma(`user_version = ${v + 1}`);
    })();
  }
  return MIGRATIONS.length;
}
