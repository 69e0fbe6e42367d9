/**
 * Opens the trace file for appending: at startup, where a path that cannot
 * be written must stop txproxy with a message that says why, and again on
 * every reopen (log rotation).
 *
 * Missing directories are created one level at a time, not with
 * `mkdirSync(…, { recursive: true })`: Node 20's recursive mkdir loops
 * forever, at full CPU and deaf to signals, where mkdir(2) keeps answering
 * ENOENT (a path under /proc).
 */
import fs from 'node:fs';
import path from 'node:path';

/** The trace file cannot be opened; the message says which part of the path failed and why. */
export class TraceFileError extends Error {
  override name = 'TraceFileError';
}

export interface OpenedTraceFile {
  fd: number;
  /**
   * The file's last byte is not a line break: something (a process that
   * died mid-write, a full disk) left half a line, and the next record must
   * start on a line of its own.
   */
  endsMidLine: boolean;
}

/**
 * As `'a'`, and non-blocking: opening a FIFO for writing otherwise waits,
 * with the event loop, until a process opens it for reading, and a reopen
 * (SIGHUP) would stop every session. Non-blocking, it fails at once with
 * ENXIO instead. Writes to a full pipe then get EAGAIN, which the writer
 * retries; to a regular file the flag changes nothing.
 */
const APPEND_NONBLOCKING = fs.constants.O_WRONLY | fs.constants.O_APPEND | fs.constants.O_CREAT | fs.constants.O_NONBLOCK;

export function openTraceFile(file: string): OpenedTraceFile {
  ensureDirectory(path.dirname(path.resolve(file)));
  let fd: number;
  try {
    fd = fs.openSync(file, APPEND_NONBLOCKING, 0o666);
  } catch (err) {
    if (code(err) === 'EISDIR') throw new TraceFileError(`'${file}' is a directory; expected a file name`);
    if (code(err) === 'ENXIO' && isFifo(file)) throw new TraceFileError(`'${file}' is a FIFO that no process reads: start its reader first`);
    throw new TraceFileError(`cannot open '${file}' for appending: ${reason(err)}`);
  }
  return { fd, endsMidLine: endsMidLine(fd, file) };
}

function ensureDirectory(dir: string): void {
  const missing: string[] = [];
  for (let d = dir; ; ) {
    let stat: fs.Stats;
    try {
      stat = fs.statSync(d);
    } catch (err) {
      if (code(err) !== 'ENOENT') throw new TraceFileError(`cannot use the directory '${d}': ${reason(err)}`);
      missing.push(d);
      const parent = path.dirname(d);
      if (parent === d) break;
      d = parent;
      continue;
    }
    if (!stat.isDirectory()) throw new TraceFileError(`'${d}' is not a directory`);
    break;
  }
  for (const d of missing.reverse()) {
    try {
      fs.mkdirSync(d);
    } catch (err) {
      if (code(err) !== 'EEXIST') throw new TraceFileError(`cannot create the directory '${d}': ${reason(err)}`);
    }
  }
}

/** Only a regular file has a last byte to read (not /dev/full, a pipe or a terminal). */
function endsMidLine(fd: number, file: string): boolean {
  try {
    const stat = fs.fstatSync(fd);
    if (!stat.isFile() || stat.size === 0) return false;
    // Opened for appending only: read the last byte through a second descriptor.
    const last = Buffer.alloc(1);
    const reader = fs.openSync(file, 'r');
    try {
      fs.readSync(reader, last, 0, 1, stat.size - 1);
    } finally {
      fs.closeSync(reader);
    }
    return last[0] !== 0x0a;
  } catch {
    return false;
  }
}

function isFifo(file: string): boolean {
  try {
    return fs.statSync(file).isFIFO();
  } catch {
    return false;
  }
}

function code(err: unknown): string | undefined {
  return (err as NodeJS.ErrnoException).code;
}

/** `ENOENT: no such file or directory, open '/x'` → `no such file or directory (ENOENT)`. */
function reason(err: unknown): string {
  const message = (err as Error).message;
  const match = /^([A-Z0-9]+): ([^,]+)/.exec(message);
  return match === null ? message : `${match[2]} (${match[1]})`;
}
