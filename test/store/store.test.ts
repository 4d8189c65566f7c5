import { rmSync, statSync } from 'node:fs';
import path from 'node:path';
import Database from 'better-sqlite3';
import { afterEach, describe, expect, it } from 'vitest';
import { MIGRATIONS } from '../../src/store/migrations.js';
import { startPurgeTimer } from '../../src/store/spool.js';
import { DB_FILE, openSqliteStore, type JournalEntry, type Store } from '../../src/store/store.js';
import { tempDir } from './helpers.js';

const cleanups: (() => void | Promise<void>)[] = [];
afterEach(async () => { for (const c of cleanups.splice(0).reverse()) await c(); });

async function freshStore(): Promise<{ store: Store; dir: string }> {
  const { dir, cleanup } = tempDir();
  cleanups.push(cleanup);
  const dataDir = path.join(dir, 'data');
  const store = await openSqliteStore(dataDir);
  cleanups.push(() => store.close());
  return { store, dir: dataDir };
}

const entry = (recordId: string, state: JournalEntry['state'], extra: Partial<JournalEntry> = {}): JournalEntry =>
  ({ recordId, attemptKey: `${recordId}:1`, state, claimedAt: 1000, updatedAt: 1000, ...extra });

describe('SQLite store', () => {
  it('creates DATA_DIR private to the worker, in WAL mode, migrated', async () => {
    const { store, dir } = await freshStore();
    await store.close();
    expect(statSync(dir).mode & 0o777).toBe(0o700);
    const db = new Database(path.join(dir, DB_FILE), { readonly: true });
    expect(db.pragma('journal_mode', { simple: true })).toBe('wal');
    expect(db.pragma('user_version', { simple: true })).toBe(MIGRATIONS.length);
    db.close();
  });

  it('keeps checkpoints, journal and receipt schedules across a reopen', async () => {
    const { store, dir } = await freshStore();
    await store.setCheckpoint('/data/Secure_EmailMessage__ChangeEvent', '18446744073709551615');
    await store.journal.putMany([entry('a01', 'claimed'), entry('a02', 'posting', { attemptId: 'a1X02' })]);
    await store.journal.put(entry('a01', 'sent', { trackingId: 't-1', updatedAt: 2000 }));
    await store.receipts.putMany([
      { trackingId: 't-1', recordId: 'a01', nextPollAt: 5000, polls: 0, sentAt: 2000, lastSeen: new Uint8Array([1, 2, 3]) },
      { trackingId: 't-2', recordId: 'a02', nextPollAt: 9000, polls: 2, sentAt: 2000, finalAt: 8000 },
    ]);
    await store.close();

    const again = await openSqliteStore(dir);
    cleanups.push(() => again.close());
    expect(await again.getCheckpoint('/data/Secure_EmailMessage__ChangeEvent')).toBe('18446744073709551615');
    expect(await again.getCheckpoint('/data/Other')).toBeUndefined();
    expect(await again.journal.get('a01')).toEqual(entry('a01', 'sent', { trackingId: 't-1', updatedAt: 2000 }));
    expect((await again.journal.byState('posting', 'claimed')).map((e) => e.recordId)).toEqual(['a02']);
    expect(await again.journal.byState()).toHaveLength(2);
    expect(await again.receipts.due(6000, 10)).toEqual([
      { trackingId: 't-1', recordId: 'a01', nextPollAt: 5000, polls: 0, sentAt: 2000, lastSeen: new Uint8Array([1, 2, 3]) },
    ]);
    expect((await again.receipts.get('t-2'))?.finalAt).toBe(8000);
    expect(await again.receipts.count()).toBe(2);
    await again.receipts.delete('t-1');
    await again.journal.delete('a02');
    expect(await again.receipts.count()).toBe(1);
    expect(await again.journal.get('a02')).toBeUndefined();
  });

  it('drops every receipt schedule of a resent record, and only those', async () => {
    const { store } = await freshStore();
    const schedule = (trackingId: string, recordId: string) => ({ trackingId, recordId, nextPollAt: 0, polls: 0, sentAt: 0 });
    await store.receipts.putMany([schedule('t1', 'a0S000000000001'), schedule('t2', 'a0S000000000001'), schedule('t3', 'a0S000000000002')]);
    await store.receipts.deleteForRecords(['a0S000000000001']);
    expect((await store.receipts.due(1, 10)).map((s) => s.trackingId)).toEqual(['t3']);
  });

  it('refuses a journal state outside the lifecycle, leaving a batch all-or-nothing', async () => {
    const { store } = await freshStore();
    const bad = { ...entry('a03', 'sent'), state: 'delivered' } as unknown as JournalEntry;
    await expect(store.journal.putMany([entry('a04', 'claimed'), bad])).rejects.toThrow();
    expect(await store.journal.get('a04')).toBeUndefined();
  });

  it('starts fresh, migrated and empty after DATA_DIR is deleted', async () => {
    const { store, dir } = await freshStore();
    await store.journal.put(entry('a01', 'sent'));
    await store.spool.put('k1', 'a01', 'body', new Uint8Array([9]));
    await store.close();
    rmSync(dir, { recursive: true, force: true });

    const again = await openSqliteStore(dir);
    cleanups.push(() => again.close());
    expect(await again.journal.byState()).toEqual([]);
    expect(await again.spool.get('k1')).toBeUndefined();
    expect(await again.receipts.count()).toBe(0);
    await again.journal.put(entry('a05', 'claimed'));
    expect(await again.journal.get('a05')).toBeDefined();
  });

  it('refuses to open a database written by a newer release', async () => {
    const { store, dir } = await freshStore();
    await store.close();
    const db = new Database(path.join(dir, DB_FILE));
    db.pragma(`user_version = ${MIGRATIONS.length + 1}`);
    db.close();
    await expect(openSqliteStore(dir)).rejects.toThrow(/newer than this release/);
  });

  it('shreds a record\'s spool entries and purges old ones', async () => {
    const { store } = await freshStore();
    await store.spool.put('k1', 'a01', 'body', new Uint8Array([1]), 1_000);
    await store.spool.put('k2', 'a01', 'subject', new Uint8Array([2]), 50_000);
    await store.spool.put('k3', 'a02', 'body', new Uint8Array([3]), 1_000);
    await store.spool.put('k4', 'a03', 'body', new Uint8Array([4]), 90_000);
    expect(await store.spool.deleteForRecord('a01')).toBe(2);
    expect(await store.spool.purgeOlderThan(10_000, 95_000)).toBe(1); // k3, created at 1,000
    expect(await store.spool.get('k3')).toBeUndefined();
    expect((await store.spool.get('k4'))?.ciphertext).toEqual(new Uint8Array([4]));
  });

  it('startPurgeTimer purges at once and stops when asked', async () => {
    const ages: number[] = [];
    const purged = new Promise<number>((resolve) => {
      const stop = startPurgeTimer({ purgeOlderThan: async (ms) => { ages.push(ms); return 7; } }, 86_400_000, {
        onPurged: (n) => { stop(); resolve(n); },
      });
    });
    expect(await purged).toBe(7);
    expect(ages).toEqual([86_400_000]);
  });
});
