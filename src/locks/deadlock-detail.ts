/**
 * Reads the DETAIL of a `40P01 deadlock detected` error: one line per
 * process of the cycle, as PostgreSQL's DeadLockReport() writes them
 * (src/backend/storage/lmgr/deadlock.c):
 *
 *   Process 25483 waits for ShareLock on transaction 757; blocked by process 25481.
 *   Process 25481 waits for ShareLock on transaction 758; blocked by process 25482.
 *
 * The client receives only those lines. The server log's copy adds each
 * process's query (`Process 25483: UPDATE items …`, possibly over several
 * lines) and indents every line after the first with a tab; both forms are
 * accepted. The texts are English unless the server's lc_messages says
 * otherwise; a DETAIL in another language yields no processes.
 *
 * Pure: no I/O.
 */

export interface DeadlockProcess {
  pid: number;
  /** The lock mode waited for, e.g. `ShareLock`. */
  mode: string;
  /** What is locked, e.g. `transaction 757`, `tuple (0,1) of relation 16384 of database 5`. */
  target: string;
  /** The process it waits for: the next one in the cycle. */
  blockedBy: number;
  /** The process's query, from the server log's `Process N: <query>` lines; null in a client's DETAIL. */
  query: string | null;
}

const WAITS_LINE = /^Process (\d+) waits for (\S+) on (.+); blocked by process (\d+)\.$/;
const QUERY_LINE = /^Process (\d+): (.*)$/;

/** The processes of the cycle in the order the server listed them (the detecting process first). */
export function parseDeadlockDetail(detail: string): DeadlockProcess[] {
  const lines = detail.split('\n');
  // The server log indents continuation lines with one tab.
  const indented = lines.length > 1 && lines.slice(1).every((line) => line.startsWith('\t'));
  const processes: DeadlockProcess[] = [];
  const byPid = new Map<number, DeadlockProcess>();
  let queryOf: DeadlockProcess | null = null;
  for (const [i, raw] of lines.entries()) {
    const line = indented && i > 0 ? raw.slice(1) : raw;
    const waits = WAITS_LINE.exec(line);
    if (waits !== null) {
      const process: DeadlockProcess = { pid: Number(waits[1]), mode: waits[2], target: waits[3], blockedBy: Number(waits[4]), query: null };
      processes.push(process);
      byPid.set(process.pid, process);
      queryOf = null;
      continue;
    }
    const query = QUERY_LINE.exec(line);
    if (query !== null && byPid.has(Number(query[1]))) {
      queryOf = byPid.get(Number(query[1]))!;
      queryOf.query = query[2];
      continue;
    }
    // A query that spans lines goes on until the next `Process N` line.
    if (queryOf !== null) queryOf.query += '\n' + line;
  }
  return processes;
}

/** `ShareLock on transaction 757`: how the trace names what a process waits for. */
export function describeWait(process: DeadlockProcess): string {
  return `${process.mode} on ${process.target}`;
}
