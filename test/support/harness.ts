/**
 * The test stack: the built-in sandbox plus a worker on its production code path, either
 * in-process (fast, logs captured) or as a child process started exactly as the Procfile
 * starts it (for kills, restarts and several workers).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { startSandbox, type Sandbox, type SandboxOptions } from '../../src/sandbox/index.js';
import { loadConfig } from '../../src/config.js';
import { createLogger } from '../../src/log.js';
import { startWorker, type Worker, type WorkerOptions } from '../../src/worker.js';

export const REPO = new URL('../..', import.meta.url).pathname;

export interface LogLine { event?: string; level?: string; [k: string]: unknown }

export class LogSink extends Writable {
  readonly lines: LogLine[] = [];
  readonly raw: string[] = [];
  private partial = '';
  override _write(chunk: Buffer, _enc: string, cb: () => void): void {
    // Chunks from a pipe can end mid-line: keep the tail for the next one.
    const text = this.partial + chunk.toString('utf8');
    const cut = text.lastIndexOf('\n');
    this.partial = cut === -1 ? text : text.slice(cut + 1);
    for (const line of (cut === -1 ? '' : text.slice(0, cut)).split('\n')) {
      if (!line.trim()) continue;
      this.raw.push(line);
      try {
        this.lines.push(JSON.parse(line) as LogLine);
      } catch {
        this.lines.push({ event: 'non-json', text: line });
      }
    }
    cb();
  }
  events(name: string): LogLine[] {
    return this.lines.filter((l) => l.event === name);
  }
}

/** Fast settings for tests: short polls, sweeps and leases, a short CometD hold. */
export const FAST_ENV = {
  POLL_INTERVAL_MS: '1000',
  RECONCILE_INTERVAL_MS: '2000',
  CLAIM_LEASE_MS: '4000',
  SEND_DEADLINE_MS: '60000',
  LOG_LEVEL: 'debug',
};

export const FAST_SANDBOX: SandboxOptions = { org: { connectTimeoutMs: 1500, reconnectWindowMs: 5000 } };

export interface Stack {
  sandbox: Sandbox;
  dataDir: string;
  env: Record<string, string>;
  logs: LogSink;
  worker?: Worker;
  startWorker(opts?: WorkerOptions, extraEnv?: Record<string, string>): Promise<Worker>;
  stopWorker(): Promise<void>;
  close(): Promise<void>;
}

export async function startStack(opts: { sandbox?: SandboxOptions; env?: Record<string, string> } = {}): Promise<Stack> {
  const sandbox = await startSandbox({ ...FAST_SANDBOX, ...opts.sandbox, org: { ...FAST_SANDBOX.org, ...opts.sandbox?.org } });
  const dataDir = mkdtempSync(join(tmpdir(), 'sdt-test-'));
  const env = { ...sandbox.env, ...FAST_ENV, DATA_DIR: dataDir, ...opts.env };
  const logs = new LogSink();
  const stack: Stack = {
    sandbox, dataDir, env, logs,
    async startWorker(wopts = {}, extraEnv = {}) {
      const cfg = loadConfig({ ...env, ...extraEnv }, { sandbox: true });
      const log = createLogger(cfg.logLevel, logs);
      stack.worker = await startWorker(cfg, log, { watchdogMarginMs: 2000, dailyLimitBackoffMs: 3000, ...wopts });
      return stack.worker;
    },
    async stopWorker() {
      const w = stack.worker;
      stack.worker = undefined;
      await w?.stop();
    },
    async close() {
      await stack.stopWorker();
      await sandbox.close();
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
  return stack;
}

/** A child worker started as the Procfile starts it, against the given environment. */
export interface WorkerProcess {
  child: ChildProcess;
  logs: LogSink;
  stderr: string[];
  exited: Promise<number | null>;
  kill(signal?: NodeJS.Signals): void;
}

export function spawnWorker(env: Record<string, string>): WorkerProcess {
  const logs = new LogSink();
  const stderr: string[] = [];
  const child = spawn(process.execPath, ['dist/src/main.js'], {
    cwd: REPO, env: { PATH: process.env.PATH ?? '', ...env }, stdio: ['ignore', 'pipe', 'pipe'],
  });
  child.stdout!.pipe(logs);
  child.stderr!.on('data', (d: Buffer) => stderr.push(d.toString('utf8')));
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  return { child, logs, stderr, exited, kill: (signal = 'SIGTERM') => child.kill(signal) };
}

export interface Compose {
  To_Address__c?: string;
  Cc_Address__c?: string;
  Bcc_Address__c?: string;
  From_Address__c?: string;
  From_Name__c?: string;
  Reply_To__c?: string;
  Subject__c?: string;
  Html_Body__c?: string;
  Text_Body__c?: string;
  In_Reply_To__c?: string;
  Status__c?: string;
  [field: string]: unknown;
}

export const GOOD: Compose = {
  To_Address__c: 'pat@example.org', From_Address__c: 'care@clinic.example', From_Name__c: 'Clinic',
  Subject__c: 'Your results', Text_Body__c: 'They are fine.', Status__c: 'Queued',
};

/** Queues messages as a user in the Salesforce UI would. */
export function queue(sandbox: Sandbox, ...records: Compose[]): string[] {
  return records.map((r) => sandbox.org.insert('Secure_EmailMessage__c', { ...GOOD, ...r }));
}

export function record(sandbox: Sandbox, id: string): Record<string, unknown> {
  return sandbox.org.get('Secure_EmailMessage__c', id) ?? {};
}

export function statusOf(sandbox: Sandbox, ids: string[]): string[] {
  return ids.map((id) => String(record(sandbox, id).Status__c));
}

export async function waitFor<T>(probe: () => T | Promise<T>, what: string, timeoutMs = 20_000, everyMs = 50): Promise<NonNullable<T>> {
  const until = Date.now() + timeoutMs;
  let last: T | undefined;
  while (Date.now() < until) {
    last = await probe();
    if (last) return last as NonNullable<T>;
    await new Promise((r) => setTimeout(r, everyMs));
  }
  throw new Error(`timed out waiting for ${what} (last: ${JSON.stringify(last)?.slice(0, 300)})`);
}

/** How many times Paubox accepted a message for each record (by its subject marker). */
export function acceptedCountBySubject(sandbox: Sandbox): Map<string, number> {
  const counts = new Map<string, number>();
  for (const a of sandbox.paubox.accepted()) {
    const subject = String((a.message as { headers?: { subject?: string } }).headers?.subject ?? '');
    counts.set(subject, (counts.get(subject) ?? 0) + 1);
  }
  return counts;
}
