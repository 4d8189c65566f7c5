/**
 * What every reliability scenario shares: counts scaled by SOAK, a burst of marked
 * records, the tally that decides lost / sent twice / outcome unknown from what Salesforce
 * and Paubox say (never from the worker's own logs), and the printed row.
 *
 * Each record's subject carries a marker `[rel <scenario> <n>]`; Paubox's log of accepted
 * messages is read back through it, so "sent twice" means Paubox accepted that record twice.
 */
import { appendFileSync } from 'node:fs';
import type { Sandbox } from '../../src/sandbox/index.js';
import { queue, type Compose } from '../support/harness.js';

export const SOAK = !!process.env.SOAK && process.env.SOAK !== '0';
/** Quick count in `npm test`, soak count in `npm run soak`. */
export const scale = (quick: number, soak: number): number => (SOAK ? soak : quick);

export const FINAL = new Set(['Sent', 'Delivered', 'Bounced', 'Partially Delivered', 'Failed']);
const REACHED_PAUBOX = new Set(['Sent', 'Delivered', 'Bounced', 'Partially Delivered']);
const MARKER = /\[rel ([\w-]+) (\d+)\]/;

export interface Burst {
  scenario: string;
  ids: string[];
  /** marker → record Id */
  byMarker: Map<string, string>;
}

export function marker(scenario: string, i: number): string {
  return `[rel ${scenario} ${i}]`;
}

/** Queues `n` records (as a UI user would), each with its marker in the subject. */
export function queueBurst(sandbox: Sandbox, scenario: string, n: number, fields: (i: number) => Compose = () => ({})): Burst {
  const records = Array.from({ length: n }, (_, i) => ({ ...fields(i), Subject__c: `${marker(scenario, i)} ${fields(i).Subject__c ?? 'Your results'}` }));
  const ids = queue(sandbox, ...records);
  return { scenario, ids, byMarker: new Map(ids.map((id, i) => [marker(scenario, i), id])) };
}

/** How many times Paubox accepted each record, by the marker in its subject. */
export function acceptedById(sandbox: Sandbox, bursts: Burst[]): Map<string, number> {
  const byMarker = new Map(bursts.flatMap((b) => [...b.byMarker]));
  const counts = new Map<string, number>();
  for (const a of sandbox.paubox.accepted()) {
    const subject = String((a.message as { headers?: { subject?: string } }).headers?.subject ?? '');
    const m = MARKER.exec(subject);
    const id = m ? byMarker.get(m[0]) : undefined;
    if (id) counts.set(id, (counts.get(id) ?? 0) + 1);
  }
  return counts;
}

export function isUnknownOutcome(rec: Record<string, unknown>): boolean {
  return rec.Status__c === 'Failed' && /^Outcome unknown/.test(String(rec.Error__c ?? ''));
}

export interface Tally {
  messages: number;
  lost: number;
  twice: number;
  unknown: number;
  /** Not final yet but still being retried (Sending/Queued): allowed at the end of an outage. */
  retrying: number;
  /** Failed without an unknown-outcome mark although Paubox has it: the record lies. */
  wrongFailed: number;
  failed: number;
  lostIds: string[];
  twiceIds: string[];
}

/**
 * Lost: not final (unless `allowRetrying` and still Queued/Sending), or marked reached
 * without Paubox having it. Twice: Paubox accepted it more than once and the record does
 * not say the outcome was unknown.
 */
export function tally(sandbox: Sandbox, bursts: Burst[], opts: { allowRetrying?: boolean } = {}): Tally {
  const accepted = acceptedById(sandbox, bursts);
  const t: Tally = { messages: 0, lost: 0, twice: 0, unknown: 0, retrying: 0, wrongFailed: 0, failed: 0, lostIds: [], twiceIds: [] };
  for (const id of bursts.flatMap((b) => b.ids)) {
    t.messages++;
    const rec = sandbox.org.get('Secure_EmailMessage__c', id) ?? {};
    const status = String(rec.Status__c);
    const times = accepted.get(id) ?? 0;
    const unknown = isUnknownOutcome(rec);
    if (unknown) t.unknown++;
    if (status === 'Failed') t.failed++;
    if (!FINAL.has(status)) {
      if (opts.allowRetrying && (status === 'Queued' || status === 'Sending')) t.retrying++;
      else (t.lost++, t.lostIds.push(id));
    } else if (REACHED_PAUBOX.has(status) && times === 0) {
      t.lost++;
      t.lostIds.push(id);
    }
    if (times > 1 && !unknown) (t.twice++, t.twiceIds.push(id));
    if (status === 'Failed' && !unknown && times > 0) t.wrongFailed++;
  }
  return t;
}

export function allFinal(sandbox: Sandbox, bursts: Burst[]): boolean {
  return bursts.every((b) => b.ids.every((id) => FINAL.has(String(sandbox.org.get('Secure_EmailMessage__c', id)?.Status__c))));
}

export interface Row {
  scenario: string;
  tally: Tally;
  recoverMs: number | null;
  note?: string;
}

/** One row per scenario, on stdout and appended to REL_REPORT (a file) when set. */
export function printRow({ scenario, tally: t, recoverMs, note }: Row): void {
  const cells = [
    scenario.padEnd(30), `msgs ${String(t.messages).padStart(5)}`, `lost ${t.lost}`, `twice ${t.twice}`,
    `unknown ${t.unknown}`, `failed ${t.failed}`, `recover ${recoverMs === null ? '-' : `${(recoverMs / 1000).toFixed(1)}s`}`,
    `${SOAK ? 'soak' : 'quick'}${note ? `; ${note}` : ''}`,
  ];
  const line = `REL | ${cells.join(' | ')}`;
  process.stdout.write(`${line}\n`);
  if (process.env.REL_REPORT) appendFileSync(process.env.REL_REPORT, `${line}\n`);
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
