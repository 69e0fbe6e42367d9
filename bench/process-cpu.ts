/**
 * CPU time a process has used, from /proc/<pid>/stat: user plus system
 * time of all its threads, in clock ticks (`getconf CLK_TCK`, usually 100 a
 * second, so the resolution is 10 ms: runs of a few seconds are fine).
 */
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';

export function clockTicksPerSecond(): number {
  const ticks = Number(execFileSync('getconf', ['CLK_TCK']).toString().trim());
  if (!Number.isInteger(ticks) || ticks <= 0) throw new Error(`getconf CLK_TCK gave '${ticks}'`);
  return ticks;
}

/**
 * utime + stime from the text of /proc/<pid>/stat. The command name (field 2)
 * is in parentheses and may itself hold spaces and parentheses, so fields are
 * counted from the last ')': state is field 3, utime 14, stime 15.
 */
export function parseCpuTicks(stat: string): number {
  const end = stat.lastIndexOf(')');
  if (end < 0) throw new Error(`unexpected /proc stat line: ${stat.slice(0, 80)}`);
  const fields = stat.slice(end + 2).trim().split(/\s+/);
  const utime = Number(fields[14 - 3]);
  const stime = Number(fields[15 - 3]);
  if (!Number.isFinite(utime) || !Number.isFinite(stime)) throw new Error(`unexpected /proc stat line: ${stat.slice(0, 80)}`);
  return utime + stime;
}

export function readCpuTicks(pid: number): number {
  return parseCpuTicks(readFileSync(`/proc/${pid}/stat`, 'utf8'));
}
