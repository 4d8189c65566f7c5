/**
 * `npm run bench`: burst throughput, API economy and memory of the worker against the
 * sandbox. Flags (defaults in brackets):
 *
 *   --n 10000                records in the burst (transactions of 200)
 *   --files-ratio 0.1        share of records with one small file
 *   --latency-sf 80          Salesforce REST and OAuth, ms per call
 *   --latency-cometd 20      CometD: commit → event deliverable, ms
 *   --latency-paubox 150     Paubox, ms per call
 *   --latency-kms 20         KMS, ms per call
 *   --runs default,zero      `default` uses the latencies above, `zero` sets them all to 0
 *   --timeout-s 900          per run
 *   --cpu-prof DIR           write the worker's V8 CPU profile(s) into DIR
 *   --json FILE              also write the raw results as JSON
 *   --worker-log PREFIX      copy the worker's log lines into PREFIX-<run>.log
 *
 * A progress line goes to stderr every second; the table goes to stdout.
 */
import { writeFileSync, mkdirSync } from 'node:fs';
import { cpus } from 'node:os';
import { resolve } from 'node:path';
import { runOnce, type Latencies, type RunResult } from './run.js';

interface Flags {
  n: number; filesRatio: number; latency: Latencies; runs: string[]; timeoutS: number; cpuProf?: string; json?: string; workerLog?: string;
}

function parseFlags(argv: string[]): Flags {
  const get = (name: string): string | undefined => {
    const i = argv.indexOf(`--${name}`);
    if (i >= 0) return argv[i + 1];
    return argv.find((a) => a.startsWith(`--${name}=`))?.slice(name.length + 3);
  };
  const num = (name: string, dflt: number): number => {
    const v = get(name);
    if (v === undefined) return dflt;
    const n = Number(v);
    if (!Number.isFinite(n) || n < 0) throw new Error(`--${name} takes a non-negative number, not ${v}`);
    return n;
  };
  const cpuProf = get('cpu-prof');
  const json = get('json');
  const workerLog = get('worker-log');
  return {
    n: Math.floor(num('n', 10_000)),
    filesRatio: num('files-ratio', 0.1),
    latency: { sf: num('latency-sf', 80), cometd: num('latency-cometd', 20), paubox: num('latency-paubox', 150), kms: num('latency-kms', 20) },
    runs: (get('runs') ?? 'default,zero').split(',').map((s) => s.trim()).filter(Boolean),
    timeoutS: num('timeout-s', 900),
    ...(cpuProf ? { cpuProf: resolve(cpuProf) } : {}),
    ...(json ? { json: resolve(json) } : {}),
    ...(workerLog ? { workerLog: resolve(workerLog) } : {}),
  };
}

const ZERO: Latencies = { sf: 0, cometd: 0, paubox: 0, kms: 0 };

function table(results: RunResult[]): string {
  const f = (v: number, d = 0) => (Number.isFinite(v) ? v.toFixed(d) : '—');
  const per = (v: number, r: RunResult, d = 3) => f(v / r.n, d);
  const rows: Array<[string, (r: RunResult) => string]> = [
    ['latencies sf/cometd/paubox/kms (ms)', (r) => `${r.latency.sf}/${r.latency.cometd}/${r.latency.paubox}/${r.latency.kms}`],
    ['messages (with a file)', (r) => `${r.n} (${r.files})`],
    ['Sent / final / Failed', (r) => `${r.sent} / ${r.final} / ${r.failed}`],
    ['burst start → all Sent (s)', (r) => f(r.toSentS, 1)],
    ['messages/s to Sent', (r) => f(r.messagesPerSecond)],
    ['commit → Paubox accepted p50 / p95 / p99 (ms)', (r) => `${f(r.acceptP50Ms)} / ${f(r.acceptP95Ms)} / ${f(r.acceptP99Ms)}`],
    ['burst start → all receipts final (s)', (r) => f(r.toFinalS, 1)],
    ['Salesforce REST calls / message (to Sent)', (r) => `${per(r.sfCalls.toSent, r, 4)} (${r.sfCalls.toSent})`],
    ['Salesforce REST calls / message (all, incl. receipts)', (r) => `${per(r.sfCalls.total, r, 4)} (${r.sfCalls.total})`],
    ['  … minus one per attached file', (r) => per(r.sfCalls.total - r.files, r, 4)],
    ['Paubox send calls / message', (r) => `${per(r.paubox.sends, r, 4)} (${r.paubox.sends})`],
    ['Paubox receipt calls / message', (r) => `${per(r.paubox.receipts, r, 2)} (${r.paubox.receipts})`],
    ['KMS calls / message', (r) => `${per(r.kmsCalls, r, 4)} (${r.kmsCalls})`],
    ['worker peak RSS (MB)', (r) => f(r.peakRssMb)],
    ['worker CPU s / 1,000 messages (to Sent)', (r) => f((r.cpuS.toSent * 1000) / r.n, 2)],
    ['worker CPU s / 1,000 messages (incl. receipts)', (r) => f((r.cpuS.total * 1000) / r.n, 2)],
  ];
  const head = `| metric | ${results.map((r) => r.name).join(' | ')} |\n|---|${results.map(() => '---:').join('|')}|`;
  return [head, ...rows.map(([label, fn]) => `| ${label} | ${results.map(fn).join(' | ')} |`)].join('\n');
}

function machine(): string {
  const model = cpus()[0]?.model ?? 'unknown CPU';
  return `${cpus().length} × ${model}, Node ${process.version}, ${process.platform} ${process.arch}`;
}

async function main(): Promise<void> {
  const flags = parseFlags(process.argv.slice(2));
  if (flags.cpuProf) mkdirSync(flags.cpuProf, { recursive: true });
  const results: RunResult[] = [];
  for (const name of flags.runs) {
    if (name !== 'default' && name !== 'zero') throw new Error(`--runs takes default and/or zero, not ${name}`);
    const profDir = flags.cpuProf ? resolve(flags.cpuProf, name) : undefined;
    if (profDir) mkdirSync(profDir, { recursive: true });
    const result = await runOnce({
      name, n: flags.n, filesRatio: flags.filesRatio, latency: name === 'zero' ? ZERO : flags.latency,
      timeoutMs: flags.timeoutS * 1000, ...(profDir ? { cpuProfDir: profDir } : {}),
      ...(flags.workerLog ? { workerLog: `${flags.workerLog}-${name}.log` } : {}),
      progress: (line) => process.stderr.write(`${line}\n`),
    });
    results.push(result);
    process.stderr.write(`[${name}] REST calls by kind: ${JSON.stringify(result.sfByKind)}\n`);
    if (result.workerErrors.length > 0) process.stderr.write(`[${name}] worker warnings:\n${result.workerErrors.join('\n')}\n`);
  }
  console.log(`\nMachine: ${machine()}\n\n${table(results)}\n`);
  if (flags.json) writeFileSync(flags.json, JSON.stringify({ machine: machine(), results }, null, 2));
}

main().then(() => process.exit(0), (err: unknown) => {
  console.error(err instanceof Error ? err.stack : err);
  process.exit(1);
});
