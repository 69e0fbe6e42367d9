/**
 * Incremental framing of a typed PostgreSQL message stream (everything after
 * the startup packet), in the pass-through style of PgBouncer: read each
 * 5-byte header (type byte + int32 length that counts itself), forward the
 * original bytes, and look inside only the message types the caller asked to
 * inspect.
 *
 * - A message inspected *whole* is handed to `onMessage` complete; when it
 *   spans chunks its bytes are held back until the last one arrives, so the
 *   caller can still drop or replace it before any of it is forwarded. It
 *   is collected in one buffer that doubles as needed (up to the declared
 *   length, so a header alone costs no memory), so a long message costs
 *   time in proportion to its length.
 * - A message inspected by its *head* is handed over as its header and its
 *   first few NUL-terminated strings (a Bind's portal and statement names);
 *   only that much is ever held, the rest (a Bind's parameter values, which
 *   may be large) is forwarded, or dropped, as it arrives.
 * - Every other message is forwarded as it arrives, even half of it; only its
 *   remaining length is counted.
 *
 * Every length field is checked against its type's limit (see
 * message-limits.ts) as soon as the header is complete: a message that
 * declares too much is refused before any of its body is read.
 *
 * The common case costs no copy: a chunk whose messages are all forwarded
 * unchanged comes back as the same Buffer.
 */
import { MessageLimits, type LimitSource } from './message-limits.js';

/** What to do with an inspected message: forward it unchanged, drop it, or send other bytes instead. */
export type Verdict = undefined | null | Buffer;
export const FORWARD: Verdict = undefined;
export const DROP: Verdict = null;

/** Values of the table that says which message types to inspect, and how. */
export const Inspect = {
  /** Forwarded as it arrives; only its header is read. */
  None: 0,
  /** Handed over whole. */
  Whole: 1,
  /** Handed over as its header and its first `strings` NUL-terminated strings; the rest streams through. */
  head: (strings: number): number => HEAD_BASE + strings,
} as const;

const HEAD_BASE = 2;

export interface ScannerHandlers {
  /**
   * An inspected message in `buf[start, end)`, header included: the whole
   * message, or for a head-inspected type only its head. The verdict's
   * bytes then stand for the head alone (so they must end with it to keep
   * the message intact); the rest of the message follows them, or with DROP
   * is dropped too.
   */
  onMessage(type: number, buf: Buffer, start: number, end: number): Verdict;
  /** The header of a message that is not inspected (e.g. DataRow). */
  onPassthrough?(type: number, length: number): void;
}

export class MessageLengthError extends Error {
  constructor(
    readonly messageType: number,
    readonly length: number,
    readonly limit: number,
    /** Whose limit it is: the configured max_message_length or one of PostgreSQL's own. */
    readonly source: LimitSource = 'max_message_length',
  ) {
    super(
      length < 4
        ? `invalid message length ${length} for message type '${String.fromCharCode(messageType)}'`
        : `message type '${String.fromCharCode(messageType)}' of ${length} bytes exceeds the limit of ${limit} bytes${LIMIT_WORDING[source]}`,
    );
    this.name = 'MessageLengthError';
  }
}

const LIMIT_WORDING: Record<LimitSource, string> = {
  max_message_length: '',
  postgresql: ' that PostgreSQL sets for it',
  authentication: ' that PostgreSQL sets before authentication',
};

const HEADER = 5;

export class MessageScanner {
  private limits: MessageLimits;

  /** Bytes of the current message still to come that go on as they arrive. */
  private forwardRemaining = 0;
  /** Bytes of the current message still to come that are dropped (a head dropped by its verdict). */
  private discardRemaining = 0;

  /** The start of a header that spans chunks. */
  private readonly header = Buffer.alloc(HEADER);
  private headerLength = 0;

  /** An inspected message, or head, being collected across chunks. */
  private holding = false;
  /** Its bytes so far, header included, in `held[0, heldLength)`: copied, the chunks they came from may be reused. */
  private held: Buffer = EMPTY;
  private heldLength = 0;
  private heldType = 0;
  /** Length of the whole message, header included. */
  private heldTotal = 0;
  /** Head-inspected: NUL-terminated strings still to find before the head is complete; -1 when the whole is held. */
  private stringsLeft = -1;

  // Output of the push in progress: the chunk, the start of its run of bytes forwarded verbatim, and what went before.
  private chunk: Buffer = Buffer.alloc(0);
  private runStart = 0;
  private out: Buffer[] | null = null;

  /**
   * @param inspect 256 entries, one per type byte: an Inspect value.
   * @param limits the largest length field accepted per type (a number: the same for all).
   */
  constructor(
    private readonly inspect: Uint8Array,
    private readonly handlers: ScannerHandlers,
    limits: MessageLimits | number,
  ) {
    this.limits = typeof limits === 'number' ? MessageLimits.uniform(limits) : limits;
  }

  /** Changes the limits from the next header on (e.g. once the client has logged in). */
  setLimits(limits: MessageLimits): void {
    this.limits = limits;
  }

  /**
   * True when everything forwarded so far ends on a message boundary, so a
   * message of our own can be sent now without corrupting the stream.
   */
  get atBoundary(): boolean {
    return this.forwardRemaining === 0;
  }

  /** True when no bytes are pending: no message partly forwarded, dropped or held. */
  get idle(): boolean {
    return this.forwardRemaining === 0 && this.discardRemaining === 0 && !this.holding && this.headerLength === 0;
  }

  /**
   * Scans one chunk. Returns the bytes to forward: the chunk itself when
   * nothing changed, otherwise a list of buffers in order (possibly empty).
   * Throws MessageLengthError on a nonsense length. The chunk's memory may
   * be reused once this returns: what is held is copied.
   */
  push(chunk: Buffer): Buffer | Buffer[] {
    const length = chunk.length;
    this.chunk = chunk;
    this.runStart = 0;
    this.out = null;
    let pos = 0;
    try {
      while (pos < length) {
        if (this.forwardRemaining > 0) {
          const n = Math.min(this.forwardRemaining, length - pos);
          this.forwardRemaining -= n;
          pos += n;
        } else if (this.discardRemaining > 0) {
          const n = Math.min(this.discardRemaining, length - pos);
          this.discardRemaining -= n;
          this.cut(pos);
          pos += n;
          this.runStart = pos;
        } else if (this.holding) {
          pos = this.feedHeld(pos);
        } else if (this.headerLength > 0) {
          pos = this.continueHeader(pos);
        } else if (length - pos < HEADER) {
          this.cut(pos);
          chunk.copy(this.header, 0, pos);
          this.headerLength = length - pos;
          pos = this.runStart = length;
        } else {
          const type = chunk[pos];
          const messageLength = chunk.readInt32BE(pos + 1);
          this.checkLength(type, messageLength);
          pos = this.startMessage(pos, type, messageLength + 1);
        }
      }
      const out = this.out as Buffer[] | null;
      if (out === null && this.runStart === 0) return chunk;
      const list = out ?? [];
      if (this.runStart < length) list.push(this.runStart === 0 ? chunk : chunk.subarray(this.runStart));
      return list;
    } finally {
      this.chunk = EMPTY;
      this.out = null;
    }
  }

  private checkLength(type: number, messageLength: number): void {
    const limit = this.limits.lengths[type];
    if (messageLength < 4 || messageLength > limit) {
      throw new MessageLengthError(type, messageLength, limit, this.limits.sourceOf(limit));
    }
  }

  /** A message whose header is at `pos` in the chunk; returns where scanning goes on. */
  private startMessage(pos: number, type: number, total: number): number {
    const chunk = this.chunk;
    const available = chunk.length - pos;
    const mode = this.inspect[type];
    if (mode === Inspect.None) {
      this.handlers.onPassthrough?.(type, total - 1);
      if (total > available) {
        this.forwardRemaining = total - available;
        return chunk.length;
      }
      return pos + total;
    }
    if (mode === Inspect.Whole) {
      if (total <= available) {
        this.apply(this.handlers.onMessage(type, chunk, pos, pos + total), pos, pos + total);
        return pos + total;
      }
      this.cut(pos);
      this.hold(type, total, -1);
      return this.feedHeld(pos);
    }
    const end = pos + Math.min(total, available);
    const headEnd = afterStrings(chunk, pos + HEADER, end, mode - HEAD_BASE);
    if (headEnd >= 0 || total <= available) {
      // The head is in this chunk (or the message is, without the strings a head needs: all of it is the head).
      const head = headEnd >= 0 ? headEnd : end;
      this.applyHead(this.handlers.onMessage(type, chunk, pos, head), pos, head, total - (head - pos));
      return head;
    }
    this.cut(pos);
    this.hold(type, total, mode - HEAD_BASE);
    return this.feedHeld(pos);
  }

  /** Completes a header that began in an earlier chunk; returns where scanning goes on. */
  private continueHeader(pos: number): number {
    const chunk = this.chunk;
    const take = Math.min(HEADER - this.headerLength, chunk.length - pos);
    this.cut(pos);
    chunk.copy(this.header, this.headerLength, pos, pos + take);
    this.headerLength += take;
    pos += take;
    this.runStart = pos;
    if (this.headerLength < HEADER) return pos;
    this.headerLength = 0;
    const type = this.header[0];
    const messageLength = this.header.readInt32BE(1);
    this.checkLength(type, messageLength);
    const total = messageLength + 1;
    const header = this.header;
    const mode = this.inspect[type];
    if (mode === Inspect.None) {
      // Not ours to inspect: release the header, the body goes on as it arrives.
      this.handlers.onPassthrough?.(type, messageLength);
      this.emit(Buffer.from(header));
      this.forwardRemaining = total - HEADER;
      return pos;
    }
    this.hold(type, total, mode === Inspect.Whole ? -1 : mode - HEAD_BASE);
    this.append(header, 0, HEADER);
    // A message that is only a header (Sync) is complete already.
    return this.feedHeld(pos);
  }

  private hold(type: number, total: number, strings: number): void {
    this.holding = true;
    this.heldType = type;
    this.heldTotal = total;
    this.stringsLeft = strings;
    this.held = EMPTY;
    this.heldLength = 0;
  }

  /** Copies `src[start, end)` to the held bytes, growing them by doubling. */
  private append(src: Buffer, start: number, end: number): void {
    const needed = this.heldLength + end - start;
    if (needed > this.held.length) {
      const grown = Buffer.allocUnsafe(Math.min(this.heldTotal, Math.max(needed, 2 * this.held.length, MIN_HOLD)));
      this.held.copy(grown, 0, 0, this.heldLength);
      this.held = grown;
    }
    src.copy(this.held, this.heldLength, start, end);
    this.heldLength = needed;
  }

  /** Adds what the held message needs from the chunk at `pos`; delivers it once complete. */
  private feedHeld(pos: number): number {
    const chunk = this.chunk;
    let take = Math.min(this.heldTotal - this.heldLength, chunk.length - pos);
    if (this.stringsLeft === 0) {
      // A head of the header alone, complete already.
      take = 0;
    } else if (this.stringsLeft > 0) {
      // Head-inspected: look for the strings' ends only in the body, and only in the new bytes.
      const from = pos + Math.max(0, HEADER - this.heldLength);
      const headEnd = afterStrings(chunk, from, pos + take, this.stringsLeft, (found) => (this.stringsLeft -= found));
      if (headEnd >= 0) {
        take = headEnd - pos;
        this.stringsLeft = 0;
      }
    }
    this.cut(pos);
    if (take > 0) {
      this.append(chunk, pos, pos + take);
      pos += take;
    }
    this.runStart = pos;
    const headDone = this.stringsLeft === 0;
    if (!headDone && this.heldLength < this.heldTotal) return pos;

    const bytes = this.held.subarray(0, this.heldLength);
    const type = this.heldType;
    const rest = this.heldTotal - this.heldLength;
    const isHead = this.stringsLeft >= 0;
    this.holding = false;
    this.held = EMPTY;
    this.heldLength = 0;
    this.stringsLeft = -1;
    const verdict = this.handlers.onMessage(type, bytes, 0, bytes.length);
    if (verdict === undefined) this.emit(bytes);
    else if (verdict !== null && verdict.length > 0) this.emit(verdict);
    if (isHead) this.follow(verdict, rest);
    return pos;
  }

  /** Applies a verdict on `chunk[start, end)`: forwarded in the run, or cut out and replaced. */
  private apply(verdict: Verdict, start: number, end: number): void {
    if (verdict === undefined) return;
    this.cut(start);
    if (verdict !== null && verdict.length > 0) this.emit(verdict);
    this.runStart = end;
  }

  /** Applies a verdict on a head in the chunk; the `rest` of its message follows it. */
  private applyHead(verdict: Verdict, start: number, end: number, rest: number): void {
    this.apply(verdict, start, end);
    this.follow(verdict, rest);
  }

  /** What becomes of the rest of a head's message: dropped with the head, else forwarded. */
  private follow(verdict: Verdict, rest: number): void {
    if (verdict === null) this.discardRemaining = rest;
    else this.forwardRemaining = rest;
  }

  /** Ends the verbatim run at `pos`. */
  private cut(pos: number): void {
    if (pos > this.runStart) this.emit(this.chunk.subarray(this.runStart, pos));
    this.runStart = pos;
  }

  private emit(bytes: Buffer): void {
    (this.out ??= []).push(bytes);
  }
}

const EMPTY = Buffer.alloc(0);
/** The first allocation for a held message (unless it is shorter): most fit. */
const MIN_HOLD = 4096;

/**
 * The position just after the `count`-th NUL in `buf[from, end)`, or -1 when
 * there are fewer; `found` hears how many there were in that case.
 */
function afterStrings(buf: Buffer, from: number, end: number, count: number, found?: (n: number) => void): number {
  let pos = from;
  let seen = 0;
  while (seen < count) {
    const nul = buf.indexOf(0, pos);
    if (nul < 0 || nul >= end) {
      found?.(seen);
      return -1;
    }
    seen++;
    pos = nul + 1;
  }
  return pos;
}
