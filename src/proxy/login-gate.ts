/**
 * What the client sends before its session is ready (the first
 * ReadyForQuery). Only authentication answers ('p': password, SASL, GSS
 * messages) may reach the server then; a client may pipeline its first
 * queries behind its StartupMessage (trust) or behind its last
 * authentication message, and PostgreSQL reads those only once it is
 * ready. txproxy must see them at that same point, through the tracker and
 * the policies like any later message, so from the first message that is
 * not an authentication answer everything is held until the session is
 * ready.
 *
 * One exception: while the server waits for an authentication answer, a
 * message that is not one goes straight on (PostgreSQL fails the login with
 * FATAL "expected password response"), and so do held messages when the
 * server asks for another answer: the server then sees exactly the bytes the
 * client sent, and runs none of them.
 *
 * Only message headers are read, to find where each 'p' ends; the message
 * scanner checks lengths.
 */
import { Frontend } from '../protocol/codes.js';

const HEADER = 5;

export class LoginGate {
  /** Bytes of the current 'p' message still to pass, once its header is complete. */
  private passRemaining = 0;
  /** The start of a 'p' header split across chunks. */
  private header: Buffer | null = null;
  private readonly held: Buffer[] = [];
  /**
   * Authentication requests the server sent minus answers ('p') passed on:
   * positive while the server waits for one. A client may answer ahead of
   * the request (a cleartext password), so it can be negative too.
   */
  private unanswered = 0;
  /** Held bytes went to the server: the rest of the login passes as it comes. */
  private open = false;

  /** Messages are held (the client should be paused until they are released). */
  get holding(): boolean {
    return this.held.length > 0;
  }

  /** Takes a chunk from the client; returns the bytes to forward now (possibly empty). */
  push(chunk: Buffer): Buffer {
    if (this.open) return chunk;
    if (this.held.length > 0) {
      this.hold(chunk);
      return EMPTY;
    }
    const length = chunk.length;
    let pos = 0;
    while (pos < length) {
      if (this.passRemaining > 0) {
        const n = Math.min(this.passRemaining, length - pos);
        this.passRemaining -= n;
        pos += n;
        continue;
      }
      if (this.header !== null) {
        const take = Math.min(HEADER - this.header.length, length - pos);
        this.header = Buffer.concat([this.header, chunk.subarray(pos, pos + take)]);
        pos += take;
        if (this.header.length === HEADER) {
          this.passRemaining = Math.max(0, this.header.readInt32BE(1) - 4);
          this.header = null;
        }
        continue;
      }
      if (chunk[pos] !== Frontend.Password) {
        if (this.unanswered > 0) {
          this.open = true;
          return chunk;
        }
        this.hold(chunk.subarray(pos));
        return chunk.subarray(0, pos);
      }
      this.unanswered--;
      if (length - pos >= HEADER) {
        this.passRemaining = Math.max(0, chunk.readInt32BE(pos + 1) - 4);
        pos += HEADER;
      } else {
        this.header = Buffer.from(chunk.subarray(pos));
        pos = length;
      }
    }
    return chunk;
  }

  /**
   * The server sent an authentication request that needs an answer.
   * Returns held bytes to forward now, or an empty buffer. They go only
   * when no answer passed ahead of the request: the server then reads the
   * first held message as the answer, which it cannot be, and refuses it.
   */
  serverAsked(): Buffer {
    this.unanswered++;
    if (this.unanswered <= 0 || this.held.length === 0) return EMPTY;
    this.open = true;
    return this.take();
  }

  /** The session is ready: everything held, to go through the session's usual path. */
  take(): Buffer {
    const held = this.held.length === 1 ? this.held[0] : Buffer.concat(this.held);
    this.held.length = 0;
    return held;
  }

  private hold(bytes: Buffer): void {
    // A copy: the chunk may be a view of a read buffer that is reused.
    if (bytes.length > 0) this.held.push(Buffer.from(bytes));
  }
}

const EMPTY = Buffer.alloc(0);
