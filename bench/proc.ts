/**
 * What the kernel says about one process (Linux /proc): its peak resident set (VmHWM) and
 * the CPU time it has used (utime + stime). Read from outside, so the numbers are the
 * worker child's own, not the benchmark's.
 */
import { readFileSync } from 'node:fs';
import { execFileSync } from 'node:child_process';

export interface ProcSample {
  /** Peak resident set size so far, bytes. */
  peakRssBytes: number;
  rssBytes: number;
  /** User + system CPU seconds so far. */
  cpuSeconds: number;
}

const TICKS = (() => {
  try {
    return Number(execFileSync('getconf', ['CLK_TCK']).toString().trim()) || 100;
  } catch {
    return 100;
  }
})();

export function sampleProc(pid: number): ProcSample | undefined {
  try {
    const status = readFileSync(`/proc/${pid}/status`, 'utf8');
    const kb = (name: string) => Number(new RegExp(`^${name}:\\s+(\\d+) kB`, 'm').exec(status)?.[1] ?? 0) * 1024;
    // Fields after the parenthesised command name (which may contain spaces): utime and
    // stime are fields 14 and 15 of the whole line, i.e. 12 and 13 after ") ".
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    const ticks = Number(rest[11]) + Number(rest[12]);
    return { peakRssBytes: kb('VmHWM'), rssBytes: kb('VmRSS'), cpuSeconds: ticks / TICKS };
  } catch {
    return undefined; // the process has gone
  }
}
