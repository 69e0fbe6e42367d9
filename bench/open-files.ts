/**
 * The open-file limit the benchmark's processes inherit. pgbench holds a
 * socket per client, and a proxy one per client and one per server
 * connection: 200 clients need more descriptors than some shells allow
 * (a soft limit of 1024 is common).
 */
import { readFileSync } from 'node:fs';

/** Descriptors a proxy (the hungriest process) needs for `clients` clients: theirs, its server connections, and its own files. */
export function openFilesNeeded(clients: number): number {
  return 2 * clients + 100;
}

/** The soft limit from a /proc/<pid>/limits text; null when it says unlimited or has no such line. */
export function parseOpenFilesLimit(limits: string): number | null {
  const match = limits.match(/^Max open files\s+(\d+|unlimited)\s/m);
  return match === null || match[1] === 'unlimited' ? null : Number(match[1]);
}

/** This process's soft open-file limit, which its children inherit; null when unknown or unlimited. */
export function openFilesLimit(): number | null {
  try {
    return parseOpenFilesLimit(readFileSync('/proc/self/limits', 'utf8'));
  } catch {
    return null;
  }
}
