/**
 * Appends lines to a file descriptor through a large in-memory buffer and
 * asynchronous writes: the trace is written on the hot path of every
 * statement, so a line costs one UTF-8 encode into memory (or is encoded
 * there to begin with: beginLine), and write(2) happens once per
 * `chunkSize` bytes (or after `flushIntervalMs` when traffic stops, so
 * `tail -f` keeps up).
 *
 * Measured on the trace's records, this costs about half of what pino's
 * SonicBoom destination does per line (which re-measures and concatenates
 * strings per write); the file format is the same NDJSON.
 *
 * The proxy must never wait on the disk: when the disk falls behind by more
 * than `maxBuffered` bytes, lines are dropped and counted, not queued. A
 * write that fails (a full disk) drops the rest of its chunk, counted too;
 * if it stopped inside a line, the next write starts with a line break, so
 * the half line stays alone on its line and the next record is whole.
 */
import fs from 'node:fs';
import { utf8Write } from '../protocol/buffer-codecs.js';
import { JsonBytes, type LineWriter } from './json-bytes.js';
import { openTraceFile } from './trace-file.js';

/** Why records were dropped: the disk fell behind, or a write failed. */
export type TraceDropReason = 'backlog' | 'write_error';

export const TRACE_DROP_REASONS: readonly TraceDropReason[] = ['backlog', 'write_error'];

export interface WriterProblem {
  reason: TraceDropReason | 'reopen_failed';
  /** The error's message (write_error, reopen_failed); null for backlog. */
  error: string | null;
  /** Problems left unreported since the last report (at most one per `problemIntervalMs`). */
  suppressed: number;
}

/** write(2) as fs.write calls it; tests pass one that fails. */
export type WriteFunction = (
  fd: number,
  buffer: Buffer,
  offset: number,
  length: number,
  callback: (err: NodeJS.ErrnoException | null, written: number) => void,
) => void;

export interface BufferedWriterOptions {
  /**
   * Bytes gathered before a write(2); default 256 KiB. Each write is a hand-off
   * to libuv's thread pool and a callback back: with every statement traced
   * (about 0.8 KiB per select-only transaction) and 64 KiB chunks, those
   * hand-offs took about 5 % of the proxy's CPU; with 256 KiB, about 2 %.
   */
  chunkSize?: number;
  maxBuffered?: number;
  flushIntervalMs?: number;
  /**
   * Told about dropped records and failed reopens. A full disk fails every
   * write: at most one report per `problemIntervalMs` (default 10 s), with
   * the count of those left out.
   */
  onProblem?: (problem: WriterProblem) => void;
  problemIntervalMs?: number;
  /** Milliseconds for the report interval (tests); Date.now by default. */
  now?: () => number;
  write?: WriteFunction;
}

const SPARE_LIMIT = 4;
const NEWLINE = Buffer.from('\n');

const fsWrite: WriteFunction = (fd, buffer, offset, length, callback) => fs.write(fd, buffer, offset, length, null, callback);

export class BufferedWriter implements LineWriter {
  private buffer: Buffer;
  /** Writes the line begun by beginLine(). */
  private readonly lineOut = new JsonBytes();
  private used = 0;
  /** Buffers handed to fs.write and not yet written. */
  private queued: Buffer[] = [];
  private queuedBytes = 0;
  /**
   * Written buffers kept for reuse: a fresh 512 KiB buffer per rotation
   * would be a fresh mmap and page faults each time.
   */
  private readonly spare: Buffer[] = [];
  private writing = false;
  private timer: NodeJS.Timeout | null = null;
  private closed = false;
  private readonly idle: (() => void)[] = [];
  /** Records dropped, by reason (txproxy_trace_records_dropped_total). */
  readonly droppedRecords: Record<TraceDropReason, number> = { backlog: 0, write_error: 0 };
  /** A write stopped inside a line: the next one starts with a line break. */
  private torn = false;
  /** The file at `path` is to be opened again once no write is in flight. */
  private reopenWanted = false;
  /** Queued buffers that are still to go to the file open before the reopen. */
  private beforeReopen = 0;
  /** The file this writer appends to; null for stdout. */
  private path: string | null = null;
  private lastReport = -Infinity;
  private suppressed = 0;

  private readonly chunkSize: number;
  private readonly maxBuffered: number;
  private readonly flushIntervalMs: number;
  private readonly problemIntervalMs: number;
  private readonly writeFn: WriteFunction;

  constructor(
    private fd: number,
    private readonly options: BufferedWriterOptions = {},
  ) {
    this.chunkSize = options.chunkSize ?? 256 * 1024;
    this.maxBuffered = options.maxBuffered ?? 64 * 1024 * 1024;
    this.flushIntervalMs = options.flushIntervalMs ?? 100;
    this.problemIntervalMs = options.problemIntervalMs ?? 10_000;
    this.writeFn = options.write ?? fsWrite;
    this.buffer = Buffer.allocUnsafe(this.chunkSize * 2);
  }

  /**
   * Opens `path` for appending (creating missing directories) and returns a
   * writer for it; throws a TraceFileError that says why it cannot.
   */
  static open(path: string, options?: BufferedWriterOptions): BufferedWriter {
    const file = openTraceFile(path);
    const writer = new BufferedWriter(file.fd, options);
    writer.path = path;
    writer.torn = file.endsMidLine;
    return writer;
  }

  /** All records dropped so far. */
  get dropped(): number {
    return this.droppedRecords.backlog + this.droppedRecords.write_error;
  }

  /**
   * Opens the file at the path again, as log rotation wants once it renamed
   * it: what was written so far goes to one file or the other, whole. If
   * the path cannot be opened, writing goes on into the file already open.
   */
  reopen(): void {
    if (this.path === null || this.closed) return;
    this.rotate();
    // What was written before the signal goes to the old file first; the
    // file is swapped once that is written (at once when nothing is).
    this.beforeReopen = this.queued.length;
    this.reopenWanted = true;
    this.pump();
  }

  /** Appends `line` and a line break. */
  writeLine(line: string): void {
    this.write(line, true);
  }

  write(line: string, newline = false): void {
    // A UTF-8 encoding takes at most 3 bytes per UTF-16 unit.
    if (!this.makeRoom(line.length * 3 + 1)) return;
    this.used += utf8Write(this.buffer, line, this.used);
    if (newline) this.buffer[this.used++] = 0x0a;
    this.appended();
  }

  /** A line encoded straight into the buffer (see LineWriter); null when it is dropped. */
  beginLine(maxBytes: number): JsonBytes | null {
    return this.makeRoom(maxBytes + 1) ? this.lineOut.at(this.buffer, this.used) : null;
  }

  endLine(): void {
    this.lineOut.byte(0x0a);
    this.used = this.lineOut.pos;
    this.appended();
  }

  /** Whether `bytes` more can go into the buffer; if not, the record is dropped and counted. */
  private makeRoom(bytes: number): boolean {
    if (this.closed) return false;
    if (this.used + bytes > this.buffer.length) {
      this.rotate();
      if (bytes > this.buffer.length) this.buffer = Buffer.allocUnsafe(bytes);
    }
    if (this.queuedBytes + this.used > this.maxBuffered) {
      this.droppedRecords.backlog++;
      this.report('backlog', null);
      return false;
    }
    return true;
  }

  /** After a line: a full chunk goes to the file, else the timer makes sure it goes soon. */
  private appended(): void {
    if (this.used >= this.chunkSize) this.rotate();
    else if (this.timer === null) this.timer = setTimeout(() => this.onTimer(), this.flushIntervalMs).unref();
  }

  /** Resolves once everything written so far is on its way to the file. */
  flush(): Promise<void> {
    this.rotate();
    if (!this.writing) return Promise.resolve();
    return new Promise((resolve) => this.idle.push(resolve));
  }

  /** Flushes and closes the file (not stdout/stderr). */
  async close(): Promise<void> {
    await this.flush();
    this.closed = true;
    if (this.fd > 2) fs.closeSync(this.fd);
  }

  private onTimer(): void {
    this.timer = null;
    this.rotate();
  }

  /** Moves the filled part of the buffer to the write queue. */
  private rotate(): void {
    if (this.timer !== null) {
      clearTimeout(this.timer);
      this.timer = null;
    }
    if (this.used === 0) return;
    const filled = this.buffer.subarray(0, this.used);
    this.queued.push(filled);
    this.queuedBytes += filled.length;
    this.buffer = this.spare.pop() ?? Buffer.allocUnsafe(this.chunkSize * 2);
    this.used = 0;
    this.pump();
  }

  /** A buffer whose bytes are written: keep it for reuse if it has the standard size. */
  private recycle(chunk: Buffer): void {
    const whole = Buffer.from(chunk.buffer, chunk.byteOffset, chunk.buffer.byteLength - chunk.byteOffset);
    if (chunk.byteOffset === 0 && whole.length === this.chunkSize * 2 && this.spare.length < SPARE_LIMIT) this.spare.push(whole);
  }

  private pump(): void {
    if (this.writing) return;
    if (this.reopenWanted && this.beforeReopen === 0) this.swapFile();
    if (this.queued.length === 0) {
      for (const resolve of this.idle.splice(0)) resolve();
      return;
    }
    // Lines queued before a reopen was asked for still go to the old file.
    const batch = this.reopenWanted ? this.queued.splice(0, this.beforeReopen) : this.queued.splice(0);
    if (this.reopenWanted) this.beforeReopen = 0;
    let bytes = 0;
    for (const buffer of batch) bytes += buffer.length;
    let chunk: Buffer;
    /** The buffer to keep for reuse once written; null for a copy. */
    let reusable: Buffer | null = null;
    const prefix = this.torn ? 1 : 0;
    if (batch.length === 1 && prefix === 0) {
      chunk = reusable = batch[0];
    } else {
      // The disk fell behind: one write for all that piled up (after the
      // line break that closes a torn line, if one was left).
      chunk = Buffer.concat(prefix === 1 ? [NEWLINE, ...batch] : batch);
      for (const buffer of batch) this.recycle(buffer);
    }
    this.writing = true;
    this.writeAll(chunk, 0, { bytes, prefix, reusable });
  }

  private writeAll(chunk: Buffer, offset: number, job: WriteJob): void {
    this.writeFn(this.fd, chunk, offset, chunk.length - offset, (err, written) => {
      if (err) {
        if (err.code === 'EAGAIN') {
          // A non-blocking pipe is full: try again shortly.
          setTimeout(() => this.writeAll(chunk, offset, job), 10).unref();
          return;
        }
        // What is left of the chunk is dropped (a full disk would refuse it
        // again); a line it stopped inside is finished by a line break.
        if (offset > 0) this.torn = chunk[offset - 1] !== 0x0a;
        this.droppedRecords.write_error += countLines(chunk, Math.max(offset, job.prefix));
        this.report('write_error', err.message);
        this.done(job);
        return;
      }
      if (offset + written < chunk.length) {
        this.writeAll(chunk, offset + written, job);
        return;
      }
      this.torn = false;
      this.done(job);
    });
  }

  private done(job: WriteJob): void {
    this.queuedBytes -= job.bytes;
    if (job.reusable !== null) this.recycle(job.reusable);
    this.writing = false;
    this.pump();
  }

  /** Called with no write in flight: the next write goes to the file now at the path. */
  private swapFile(): void {
    this.reopenWanted = false;
    if (this.path === null) return;
    let file;
    try {
      file = openTraceFile(this.path);
    } catch (err) {
      // Once per signal: never held back by the report interval.
      this.options.onProblem?.({ reason: 'reopen_failed', error: (err as Error).message, suppressed: 0 });
      return;
    }
    const old = this.fd;
    this.fd = file.fd;
    this.torn = file.endsMidLine;
    fs.closeSync(old);
  }

  /** At most one report per interval; the next one says how many were left out. */
  private report(reason: TraceDropReason, error: string | null): void {
    const now = (this.options.now ?? Date.now)();
    if (now - this.lastReport < this.problemIntervalMs) {
      this.suppressed++;
      return;
    }
    this.lastReport = now;
    const suppressed = this.suppressed;
    this.suppressed = 0;
    this.options.onProblem?.({ reason, error, suppressed });
  }
}

interface WriteJob {
  /** Queued bytes this write accounts for (without the line break prefix). */
  bytes: number;
  /** 1 when the chunk starts with a line break that closes a torn line. */
  prefix: number;
  reusable: Buffer | null;
}

/** Records in `chunk` from `from` on: each ends with a line break; a trailing part without one counts too. */
function countLines(chunk: Buffer, from: number): number {
  let lines = 0;
  for (let i = chunk.indexOf(0x0a, from); i !== -1; i = chunk.indexOf(0x0a, i + 1)) lines++;
  if (from < chunk.length && chunk[chunk.length - 1] !== 0x0a) lines++;
  return lines;
}
