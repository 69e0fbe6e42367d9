/**
 * What a client in transaction pooling sent while it held no server link:
 * its chunks, in order, until a link is lent and they are replayed on it.
 *
 * A small chunk (a transaction's statements) is copied, so the client's
 * socket goes on reading into its one reused buffer; a large one is kept
 * as it is. Past MAX_HELD bytes the client should be paused, as TCP would
 * hold it back from a busy server.
 */
import { Frontend } from '../protocol/codes.js';

/** Held chunks up to this size are copied rather than kept. */
const COPIED_CHUNK = 4096;
/** Held bytes past which the client is paused until a link is lent. */
const MAX_HELD = 1024 * 1024;
const TERMINATE = Buffer.from([Frontend.Terminate, 0, 0, 0, 4]);

export class HeldMessages {
  private chunks: Buffer[] = [];
  private bytes = 0;

  get empty(): boolean {
    return this.chunks.length === 0;
  }

  /** Past MAX_HELD bytes: the client should send no more until they go. */
  get full(): boolean {
    return this.bytes > MAX_HELD;
  }

  /** A chunk that is only the client's Terminate, with nothing held before it. */
  isGoodbye(chunk: Buffer): boolean {
    return this.chunks.length === 0 && chunk.equals(TERMINATE);
  }

  /** Holds `chunk`; true when the chunk itself is kept (not copied). */
  push(chunk: Buffer): boolean {
    const small = chunk.length <= COPIED_CHUNK;
    this.chunks.push(small ? Buffer.from(chunk) : chunk);
    this.bytes += chunk.length;
    return !small;
  }

  /** Whether what is held ends with the client's Terminate. */
  endsWithTerminate(): boolean {
    const last = this.chunks.at(-1);
    return last !== undefined && last.length >= 5 && last.subarray(-5).equals(TERMINATE);
  }

  /** The one simple Query held, when that is all that is held; else null. */
  loneQuery(): Buffer | null {
    const only = this.chunks.length === 1 ? this.chunks[0] : null;
    if (only === null || only.length < 5 || only[0] !== Frontend.Query || only.readInt32BE(1) + 1 !== only.length) return null;
    return only;
  }

  /** Everything held, in order; nothing is held afterwards. */
  takeAll(): Buffer[] {
    const all = this.chunks;
    this.chunks = [];
    this.bytes = 0;
    return all;
  }
}
