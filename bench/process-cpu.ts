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

/** Clock ticks spent in the process's own code (user) and in the kernel on its behalf (system). */
export interface CpuTicks {
  user: number;
  system: number;
}

/**
 * utime and stime from the text of /proc/<pid>/stat. The command name (field 2)
 * is in parentheses and may itself hold spaces and parentheses, so fields are
 * counted from the last ')': state is field 3, utime 14, stime 15.
 */
export function parseCpuTimes(stat: string): CpuTicks {
  const end = stat.lastIndexOf(')');
  if (end < 0) throw new Error(`unexpected /proc stat line: ${stat.slice(0, 80)}`);
  const fields = stat.slice(end + 2).trim().split(/\s+/);
  const user = Number(fields[14 - 3]);
  const system = Number(fields[15 - 3]);
  if (!Number.isFinite(user) || !Number.isFinite(system)) throw new Error(`unexpected /proc stat line: ${stat.slice(0, 80)}`);
  return { user, system };
}

/** utime + stime. */
export function parseCpuTicks(stat: string): number {
  const { user, system } = parseCpuTimes(stat);
  return user + system;
}

export function readCpuTimes(pid: number): CpuTicks {
  return parseCpuTimes(readFileSync(`/proc/${pid}/stat`, 'utf8'));
}
