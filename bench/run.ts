/**
 * One benchmark run: the sandbox in this process with the given latencies, the real worker
 * as a child process (`node dist/src/main.js`, as the Procfile starts it), a burst of
 * Queued records created through the REST API in transactions of 200, and the wait until
 * every record is `Sent` and its receipts are final.
 *
 * Times are read on the sandbox clock: a record's commit time is its change event's
 * `commitTimestamp`, its acceptance is Paubox's `receivedAt` (matched by subject), its
 * `Sent`/final moments are the commits of the worker's writes.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createWriteStream, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Connection } from 'jsforce';
import { connectAsUser } from '../src/sandbox/user.js';
import { startSandbox, type Sandbox } from '../src/sandbox/index.js';
import type { StoredEvent } from '../src/sandbox/org/events.js';
import { CHANGE_CHANNEL, MESSAGE_OBJECT } from '../src/domain/record.js';
import { sampleProc, type ProcSample } from './proc.js';

export interface Latencies { sf: number; cometd: number; paubox: number; kms: number }

export interface RunOptions {
  name: string;
  n: number;
  filesRatio: number;
  latency: Latencies;
  timeoutMs: number;
  /** Directory for the worker's `--cpu-prof` output, when profiling. */
  cpuProfDir?: string;
  /** File to copy the worker's log lines into (diagnosis). */
  workerLog?: string;
  progress: (line: string) => void;
}

export interface RunResult {
  name: string;
  n: number;
  files: number;
  latency: Latencies;
  sent: number;
  final: number;
  failed: number;
  /** Burst start → last record `Sent`, and → last record final (seconds). */
  toSentS: number;
  toFinalS: number;
  messagesPerSecond: number;
  acceptP50Ms: number;
  acceptP95Ms: number;
  acceptP99Ms: number;
  /** The worker's REST calls (the benchmark's own inserts taken out). */
  sfCalls: { toSent: number; total: number };
  sfByKind: Record<string, number>;
  paubox: { sends: number; bulkItems: number; receipts: number };
  kmsCalls: number;
  peakRssMb: number;
  cpuS: { toSent: number; total: number };
  workerErrors: string[];
}

const FINAL = new Set(['Delivered', 'Bounced', 'Partially Delivered']);
const REST_TX = 200;
/** A small PDF-looking file (4 KB). */
const FILE = Buffer.concat([Buffer.from('%PDF-1.4\n'), Buffer.alloc(4096 - 9, 0x41)]).toString('base64');

const compose = (i: number, status: 'Queued' | 'Draft') => ({
  To_Address__c: `patient${i}@example.org`, From_Address__c: 'care@clinic.example', From_Name__c: 'Clinic',
  Subject__c: subjectOf(i), Text_Body__c: `Your appointment reminder number ${i}.`, Status__c: status,
});
const subjectOf = (i: number) => `Bench message ${i}`;

export async function runOnce(opts: RunOptions): Promise<RunResult> {
  const sandbox = await startSandbox({
    org: { latencyMs: opts.latency.sf }, paubox: { latencyMs: opts.latency.paubox }, kms: { latencyMs: opts.latency.kms },
  });
  sandbox.org.cometd.setDeliveryLatency(opts.latency.cometd);
  const dataDir = mkdtempSync(join(tmpdir(), 'sdt-bench-'));
  const plan = prepare(sandbox, opts);
  const worker = spawnWorker(sandbox, dataDir, opts.cpuProfDir);
  if (opts.workerLog) worker.child.stdout!.pipe(createWriteStream(opts.workerLog));
  try {
    await waitUntil(() => (sandbox.org.cometd.subscriptions()[CHANGE_CHANNEL] ?? 0) > 0, 60_000, 'the worker to subscribe', worker);
    await sleep(1500); // let the start-up sweep and the first held connect settle
    return await burst(sandbox, worker, plan, opts);
  } finally {
    await stopWorker(worker.child);
    await sandbox.close();
    rmSync(dataDir, { recursive: true, force: true });
  }
}

interface Plan {
  /** Each entry is one REST transaction: 200 new Queued records, or 200 drafts with a file set to Queued. */
  txs: Array<{ kind: 'create'; indexes: number[] } | { kind: 'queue'; ids: string[] }>;
  idBySubject: Map<string, string>;
  files: number;
}

/**
 * Records with a file are composed first (as a user would: a Draft, then the file), off the
 * clock; the burst then queues them 200 at a time, between the transactions that create new
 * Queued records, so a tenth of every stretch of the burst carries a file.
 */
function prepare(sandbox: Sandbox, opts: RunOptions): Plan {
  const files = Math.round(opts.n * opts.filesRatio);
  const idBySubject = new Map<string, string>();
  const drafts: string[] = [];
  for (let i = 0; i < files; i++) {
    const id = sandbox.org.insert(MESSAGE_OBJECT, compose(i, 'Draft'));
    sandbox.org.insert('ContentVersion', { PathOnClient: `report-${i}.pdf`, VersionData: FILE, FirstPublishLocationId: id });
    idBySubject.set(subjectOf(i), id);
    drafts.push(id);
  }
  const creates = chunk(Array.from({ length: opts.n - files }, (_, k) => files + k), REST_TX);
  const queues = chunk(drafts, REST_TX);
  const total = creates.length + queues.length;
  const txs: Plan['txs'] = [];
  let q = 0;
  for (let pos = 0; pos < total; pos++) {
    const dueQueues = Math.floor(((pos + 1) * queues.length) / total);
    if (q < dueQueues) txs.push({ kind: 'queue', ids: queues[q++]! });
    else txs.push({ kind: 'create', indexes: creates[pos - q]! });
  }
  return { txs, idBySubject, files };
}

interface Worker { child: ChildProcess; errors: string[]; exited: boolean }

function spawnWorker(sandbox: Sandbox, dataDir: string, cpuProfDir?: string): Worker {
  const env: Record<string, string> = {
    PATH: process.env.PATH ?? '', ...sandbox.env, DATA_DIR: dataDir, LOG_LEVEL: 'info',
  };
  // Node 20 refuses --cpu-prof in NODE_OPTIONS: it goes on the command line instead.
  const profile = cpuProfDir ? ['--cpu-prof', `--cpu-prof-dir=${cpuProfDir}`] : [];
  const child = spawn(process.execPath, [...profile, 'dist/src/main.js'], {
    cwd: new URL('../..', import.meta.url).pathname, env, stdio: ['ignore', 'pipe', 'pipe'],
  });
  const w: Worker = { child, errors: [], exited: false };
  let partial = '';
  child.stdout!.on('data', (d: Buffer) => {
    const lines = (partial + d.toString('utf8')).split('\n');
    partial = lines.pop() ?? '';
    for (const line of lines) {
      // Only warnings and worse are kept; the per-message info lines are just drained.
      if (/"level":"(warn|error|fatal)"/.test(line) && w.errors.length < 20) w.errors.push(line.slice(0, 300));
    }
  });
  child.stderr!.on('data', (d: Buffer) => {
    const text = d.toString('utf8');
    if (!/DeprecationWarning|AWS SDK|--trace-warnings/.test(text) && text.trim() && w.errors.length < 20) w.errors.push(text.slice(0, 300));
  });
  child.on('exit', () => void (w.exited = true));
  return w;
}

async function stopWorker(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), 30_000);
  await exited;
  clearTimeout(timer);
}

async function burst(sandbox: Sandbox, worker: Worker, plan: Plan, opts: RunOptions): Promise<RunResult> {
  const { org, paubox, kms, clock } = sandbox;
  const pid = worker.child.pid!;
  const conn = await userConnection(sandbox);
  const watch = watchRecords(sandbox);
  const base = { org: org.counter.snapshot(), paubox: paubox.counter.snapshot(), kms: kms.counter.total('kms.') };
  const cpu0 = sampleProc(pid)!.cpuSeconds;
  let atSent: { cpu: number; org: Record<string, number>; at: number } | undefined;
  let peak: ProcSample | undefined;
  const t0 = clock.now();
  const started = Date.now();

  const progress = setInterval(() => {
    const p = sampleProc(pid);
    if (p) peak = p;
    opts.progress(`[${opts.name}] ${((Date.now() - started) / 1000).toFixed(0)}s queued ${watch.committed.size}/${opts.n} ` +
      `sent ${watch.sent.size} final ${watch.final.size} failed ${watch.failed.size} | worker rss ${mb(p?.rssBytes)} MB ` +
      `cpu ${p?.cpuSeconds.toFixed(1)} s (sandbox ${(process.cpuUsage().user / 1e6 + process.cpuUsage().system / 1e6).toFixed(1)} s) | sf ${org.apiCalls()} paubox ${paubox.counter.get('paubox.messages') + paubox.counter.get('paubox.bulk_messages')}` +
      `/${paubox.counter.get('paubox.message_receipt')} kms ${kms.counter.total('kms.') - base.kms}`);
  }, 1000);
  try {
    for (const tx of plan.txs) {
      const sobject = conn.sobject(MESSAGE_OBJECT);
      if (tx.kind === 'queue') {
        await sobject.update(tx.ids.map((Id) => ({ Id, Status__c: 'Queued' })) as never[], { allOrNone: true });
      } else {
        const res = await sobject.create(tx.indexes.map((i) => compose(i, 'Queued')) as never[], { allOrNone: true }) as unknown as Array<{ id: string }>;
        tx.indexes.forEach((i, k) => plan.idBySubject.set(subjectOf(i), res[k]!.id));
      }
    }
    const done = (set: Set<string>) => set.size + watch.failed.size >= opts.n;
    await waitUntil(() => {
      if (!atSent && done(watch.sent)) atSent = { cpu: sampleProc(pid)!.cpuSeconds, org: org.counter.snapshot(), at: watch.lastSentAt };
      return done(watch.final);
    }, opts.timeoutMs, 'every record Sent and final', worker);
  } finally {
    clearInterval(progress);
    watch.stop();
  }
  const end = sampleProc(pid)!;
  const benchCalls = plan.txs.length;
  const restDelta = (snap: Record<string, number>) => sumPrefix(snap, 'rest.') - sumPrefix(base.org, 'rest.') - benchCalls;
  const orgEnd = org.counter.snapshot();
  const pb = paubox.counter.snapshot();
  const pbDelta = (k: string) => (pb[k] ?? 0) - (base.paubox[k] ?? 0);
  const latencies = acceptLatencies(sandbox, plan.idBySubject, watch.committed);
  const toSentS = ((atSent?.at ?? watch.lastSentAt) - t0) / 1000;
  return {
    name: opts.name, n: opts.n, files: plan.files, latency: opts.latency,
    sent: watch.sent.size, final: watch.final.size, failed: watch.failed.size,
    toSentS, toFinalS: (watch.lastFinalAt - t0) / 1000,
    messagesPerSecond: watch.sent.size / toSentS,
    acceptP50Ms: pct(latencies, 0.5), acceptP95Ms: pct(latencies, 0.95), acceptP99Ms: pct(latencies, 0.99),
    sfCalls: { toSent: restDelta(atSent?.org ?? orgEnd), total: restDelta(orgEnd) },
    sfByKind: Object.fromEntries(Object.entries(orgEnd).filter(([k]) => k.startsWith('rest.') || k.startsWith('oauth'))
      .map(([k, v]) => [k, v - (base.org[k] ?? 0)]).filter(([, v]) => (v as number) > 0)),
    paubox: { sends: pbDelta('paubox.messages') + pbDelta('paubox.bulk_messages'), bulkItems: pbDelta('paubox.bulk_message_items'), receipts: pbDelta('paubox.message_receipt') },
    kmsCalls: kms.counter.total('kms.') - base.kms,
    peakRssMb: Math.max(end.peakRssBytes, peak?.peakRssBytes ?? 0) / 1048576,
    cpuS: { toSent: (atSent?.cpu ?? end.cpuSeconds) - cpu0, total: end.cpuSeconds - cpu0 },
    workerErrors: worker.errors,
  };
}

/** Follows the records through their change events: queued (commit), Sent, final, Failed. */
function watchRecords(sandbox: Sandbox) {
  const w = {
    committed: new Map<string, number>(), sent: new Set<string>(), final: new Set<string>(), failed: new Set<string>(),
    lastSentAt: 0, lastFinalAt: 0, stop: () => undefined as void,
  };
  const onEvent = (e: StoredEvent) => {
    if (e.channel !== CHANGE_CHANNEL) return;
    const { ChangeEventHeader: h, ...fields } = e.data.payload;
    const status = fields['Status__c'];
    if (typeof status !== 'string') return;
    for (const id of h.recordIds) {
      if (status === 'Queued' && !w.committed.has(id)) w.committed.set(id, h.commitTimestamp);
      else if (status === 'Sent' && !w.sent.has(id)) {
        w.sent.add(id);
        w.lastSentAt = Math.max(w.lastSentAt, h.commitTimestamp);
      } else if (FINAL.has(status) && !w.final.has(id)) {
        w.final.add(id);
        w.lastFinalAt = Math.max(w.lastFinalAt, h.commitTimestamp);
      } else if (status === 'Failed') w.failed.add(id);
    }
  };
  sandbox.org.events.on('event', onEvent);
  w.stop = () => void sandbox.org.events.off('event', onEvent);
  return w;
}

/** Commit → Paubox acceptance for every accepted message, in ms (sandbox clock). */
function acceptLatencies(sandbox: Sandbox, idBySubject: Map<string, string>, committed: Map<string, number>): number[] {
  const out: number[] = [];
  for (const a of sandbox.paubox.accepted()) {
    const subject = String((a.message as { headers?: { subject?: string } }).headers?.subject ?? '');
    const id = idBySubject.get(subject);
    const at = id === undefined ? undefined : committed.get(id);
    if (at !== undefined) out.push(a.receivedAt - at);
  }
  return out.sort((x, y) => x - y);
}

function userConnection(sandbox: Sandbox): Promise<Connection> {
  const { url, apiVersion, credentials: c } = sandbox.org;
  return connectAsUser({ loginUrl: url, version: apiVersion, clientId: c.clientId, clientSecret: c.clientSecret });
}

async function waitUntil(probe: () => boolean, timeoutMs: number, what: string, worker: Worker): Promise<void> {
  const until = Date.now() + timeoutMs;
  while (!probe()) {
    if (worker.exited) throw new Error(`the worker exited while waiting for ${what}: ${worker.errors.join('\n')}`);
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}`);
    await sleep(100);
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const mb = (bytes?: number) => (bytes === undefined ? '?' : (bytes / 1048576).toFixed(0));

function pct(sorted: number[], p: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.ceil(p * sorted.length) - 1)]!;
}

function sumPrefix(snap: Record<string, number>, prefix: string): number {
  return Object.entries(snap).reduce((n, [k, v]) => (k.startsWith(prefix) ? n + v : n), 0);
}

function chunk<T>(items: T[], size: number): T[][] {
  const out: T[][] = [];
  for (let i = 0; i < items.length; i += size) out.push(items.slice(i, i + size));
  return out;
}
