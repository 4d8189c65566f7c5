/**
 * Shared bits of the ship tests: the worker as the Procfile runs it (with extra arguments
 * for `--check`), a sandbox with the tests' fast settings, and log scanning.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FAST_ENV, FAST_SANDBOX, LogSink, REPO, type WorkerProcess } from '../support/harness.js';
import { startSandbox, type Sandbox, type SandboxOptions } from '../../src/sandbox/index.js';

/** The Procfile's `worker:` command, read from the Procfile itself, so the two cannot drift. */
export function procfileCommand(): string[] {
  const line = readFileSync(join(REPO, 'Procfile'), 'utf8').split('\n').find((l) => l.startsWith('worker:'))!;
  return line.slice('worker:'.length).trim().split(/\s+/);
}

/** `spawnWorker` with arguments after the Procfile command (`npm start -- --check`). */
export function spawnMain(env: Record<string, string>, args: string[] = []): WorkerProcess {
  const [, ...nodeArgs] = procfileCommand(); // "node" is this very node binary
  const logs = new LogSink();
  const stderr: string[] = [];
  const child = spawn(process.execPath, [...nodeArgs, ...args], {
    cwd: REPO, env: { PATH: process.env.PATH ?? '', ...env }, stdio: ['ignore', 'pipe', 'pipe'],
  });
  child.stdout!.pipe(logs);
  child.stderr!.on('data', (d: Buffer) => stderr.push(d.toString('utf8')));
  const exited = new Promise<number | null>((resolve) => child.on('close', (code) => resolve(code)));
  return { child, logs, stderr, exited, kill: (signal = 'SIGTERM') => child.kill(signal) };
}

export async function fastSandbox(opts: SandboxOptions = {}): Promise<Sandbox> {
  return startSandbox({ ...FAST_SANDBOX, ...opts, org: { ...FAST_SANDBOX.org, ...opts.org } });
}

export function tempDir(prefix = 'sdt-ship-'): string {
  return mkdtempSync(join(tmpdir(), prefix));
}

/** The environment a test worker runs with: the sandbox's variables plus fast timings. */
export function workerEnv(sandbox: Sandbox, dataDir: string, extra: Record<string, string> = {}): Record<string, string> {
  return { ...sandbox.env, ...FAST_ENV, DATA_DIR: dataDir, ...extra };
}

/** Everything a worker process wrote, stdout and stderr, as one text. */
export function allOutput(w: WorkerProcess): string {
  return [...w.logs.raw, ...w.stderr].join('\n');
}

/** Lines on stdout that are not JSON objects, and anything at all on stderr. */
export function nonJson(w: WorkerProcess): string[] {
  const bad = w.logs.lines.filter((l) => l.event === 'non-json').map((l) => String(l.text));
  return [...bad, ...w.stderr.filter((s) => s.trim())];
}

export async function stopped(w: WorkerProcess, signal: NodeJS.Signals = 'SIGTERM'): Promise<number | null> {
  if (w.child.exitCode === null && w.child.signalCode === null) w.kill(signal);
  return w.exited;
}
