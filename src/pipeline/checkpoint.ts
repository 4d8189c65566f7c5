/**
 * The replay checkpoint: the highest replay id such that the work of it and of every
 * event before it is done. Events finish out of order (batches, retries), so a plain
 * "last seen" would skip unfinished work after a crash; this replays it instead, and the
 * claim protocol makes the replayed duplicates harmless.
 *
 * Replay ids are opaque for Salesforce but ordered; we only ever compare them.
 */
export class CheckpointTracker {
  /** replay id → how many pieces of its work are still open */
  private readonly open = new Map<number, number>();
  private committed: number | undefined;
  private highestSeen: number | undefined;

  constructor(initial?: string) {
    const n = initial === undefined ? NaN : Number(initial);
    this.committed = Number.isFinite(n) ? n : undefined;
  }

  /** An event arrived whose work consists of `pieces` parts (0 = nothing to do). */
  begin(replayId: number, pieces: number): void {
    if (this.highestSeen === undefined || replayId > this.highestSeen) this.highestSeen = replayId;
    if (pieces > 0) this.open.set(replayId, (this.open.get(replayId) ?? 0) + pieces);
  }

  /** One part of the event's work is done (sent, failed, or found not to need sending). */
  done(replayId: number): void {
    const left = (this.open.get(replayId) ?? 1) - 1;
    if (left > 0) this.open.set(replayId, left);
    else this.open.delete(replayId);
  }

  /** The id to resume after, or undefined when nothing is known yet. */
  current(): string | undefined {
    if (this.highestSeen !== undefined) {
      let lowestOpen = Infinity;
      for (const id of this.open.keys()) if (id < lowestOpen) lowestOpen = id;
      const candidate = lowestOpen === Infinity ? this.highestSeen : lowestOpen - 1;
      // -1 would mean "only new events" to Salesforce: never store a value below what we had.
      if (this.committed === undefined || candidate > this.committed) this.committed = candidate;
    }
    return this.committed === undefined ? undefined : String(this.committed);
  }
}
