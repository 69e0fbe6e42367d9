/**
 * Incremental framing of a typed PostgreSQL message stream (everything after
 * the startup packet), in the pass-through style of PgBouncer: read each
 * 5-byte header (type byte + int32 length that counts itself), forward the
 * original bytes, and look inside only the message types the caller asked to
 * inspect.
 *
 * - An *inspected* message is handed to `onMessage` whole; when it spans
 *   chunks its bytes are held back until the last one arrives, so the caller
 *   can still drop or replace it before any of it is forwarded.
 * - Every other message is forwarded as it arrives, even half of it; only its
 *   remaining length is counted.
 *
 * The common case costs no copy: a chunk whose messages are all forwarded
 * unchanged comes back as the same Buffer.
 */

/** What to do with an inspected message: forward it unchanged, drop it, or send other bytes instead. */
export type Verdict = undefined | null | Buffer;
export const FORWARD: Verdict = undefined;
export const DROP: Verdict = null;

export interface ScannerHandlers {
  /** A whole inspected message in `buf[start, end)`, header included. */
  onMessage(type: number, buf: Buffer, start: number, end: number): Verdict;
  /** The header of a message that is not inspected (e.g. DataRow). */
  onPassthrough?(type: number, length: number): void;
}

export class MessageLengthError extends Error {
  constructor(
    readonly messageType: number,
    readonly length: number,
    readonly limit: number,
  ) {
    super(
      length < 4
        ? `invalid message length ${length} for message type '${String.fromCharCode(messageType)}'`
        : `message type '${String.fromCharCode(messageType)}' of ${length} bytes exceeds the limit of ${limit} bytes`,
    );
    this.name = 'MessageLengthError';
  }
}

const HEADER = 5;

export class MessageScanner {
  /** Bytes of the current pass-through message still to come. */
  private skipRemaining = 0;
  /** Held bytes of an inspected message (or of a header) that spans chunks. */
  private held: Buffer[] = [];
  private heldLength = 0;
  /** Total size of the held message; 0 while its header is still incomplete. */
  private heldTotal = 0;
  private heldType = 0;

  /**
   * @param inspect 256 flags: non-zero for message types to hand over whole.
   * @param maxLength largest accepted length field; anything larger is nonsense.
   */
  constructor(
    private readonly inspect: Uint8Array,
    private readonly handlers: ScannerHandlers,
    private readonly maxLength: number,
  ) {}

  /**
   * True when everything forwarded so far ends on a message boundary, so a
   * message of our own can be sent now without corrupting the stream.
   */
  get atBoundary(): boolean {
    return this.skipRemaining === 0;
  }

  /** True when no bytes are pending in either a skip or a held message. */
  get idle(): boolean {
    return this.skipRemaining === 0 && this.heldLength === 0;
  }

  /**
   * Scans one chunk. Returns the bytes to forward: the chunk itself when
   * nothing changed, otherwise a list of buffers in order (possibly empty).
   * Throws MessageLengthError on a nonsense length.
   */
  push(chunk: Buffer): Buffer | Buffer[] {
    const length = chunk.length;
    let pos = 0;
    // Start of the run of chunk bytes that will be forwarded verbatim.
    let runStart = 0;
    let out: Buffer[] | undefined;

    if (this.heldLength > 0) {
      const produced = this.continueHeld(chunk);
      pos = runStart = produced.consumed;
      out = produced.out;
    }
    if (this.skipRemaining > 0 && pos < length) {
      // The rest of a pass-through message: forwarded in the verbatim run.
      const n = Math.min(this.skipRemaining, length - pos);
      this.skipRemaining -= n;
      pos += n;
    }

    while (pos < length) {
      if (length - pos < HEADER) {
        (out ??= []);
        if (pos > runStart) out.push(chunk.subarray(runStart, pos));
        this.hold(chunk.subarray(pos), 0, 0);
        runStart = pos = length;
        break;
      }
      const type = chunk[pos];
      const messageLength = chunk.readInt32BE(pos + 1);
      this.checkLength(type, messageLength);
      const total = messageLength + 1;
      if (this.inspect[type] !== 0) {
        if (pos + total <= length) {
          const verdict = this.handlers.onMessage(type, chunk, pos, pos + total);
          if (verdict !== undefined) {
            (out ??= []);
            if (pos > runStart) out.push(chunk.subarray(runStart, pos));
            if (verdict !== null && verdict.length > 0) out.push(verdict);
            runStart = pos + total;
          }
          pos += total;
        } else {
          (out ??= []);
          if (pos > runStart) out.push(chunk.subarray(runStart, pos));
          this.hold(chunk.subarray(pos), type, total);
          runStart = pos = length;
        }
      } else {
        this.handlers.onPassthrough?.(type, messageLength);
        if (pos + total <= length) {
          pos += total;
        } else {
          this.skipRemaining = pos + total - length;
          pos = length;
        }
      }
    }

    if (out === undefined) return chunk;
    if (runStart < length) out.push(runStart === 0 ? chunk : chunk.subarray(runStart));
    return out;
  }

  private checkLength(type: number, messageLength: number): void {
    if (messageLength < 4 || messageLength > this.maxLength) {
      throw new MessageLengthError(type, messageLength, this.maxLength);
    }
  }

  private hold(bytes: Buffer, type: number, total: number): void {
    // Copy: the caller may reuse the chunk's memory once we return.
    this.held = [Buffer.from(bytes)];
    this.heldLength = bytes.length;
    this.heldType = type;
    this.heldTotal = total;
  }

  /** Feeds the start of `chunk` into the held message; returns what it completed. */
  private continueHeld(chunk: Buffer): { consumed: number; out: Buffer[] } {
    const out: Buffer[] = [];
    let consumed = 0;
    if (this.heldTotal === 0) {
      // The header itself was split: complete it first.
      const need = HEADER - this.heldLength;
      const take = Math.min(need, chunk.length);
      this.held.push(chunk.subarray(0, take));
      this.heldLength += take;
      consumed = take;
      if (this.heldLength < HEADER) {
        this.held = [Buffer.concat(this.held)];
        return { consumed, out };
      }
      const header = Buffer.concat(this.held);
      const type = header[0];
      const messageLength = header.readInt32BE(1);
      this.checkLength(type, messageLength);
      const total = messageLength + 1;
      if (this.inspect[type] === 0) {
        // Not ours to inspect: release the header and skip the body.
        this.handlers.onPassthrough?.(type, messageLength);
        this.resetHeld();
        out.push(header);
        // push() forwards the body as it arrives, this chunk's part included.
        this.skipRemaining = total - HEADER;
        return { consumed, out };
      }
      this.held = [header];
      this.heldType = type;
      this.heldTotal = total;
    }
    const need = this.heldTotal - this.heldLength;
    const take = Math.min(need, chunk.length - consumed);
    this.held.push(chunk.subarray(consumed, consumed + take));
    this.heldLength += take;
    consumed += take;
    if (this.heldLength < this.heldTotal) {
      // Still incomplete: own the bytes, the chunk may be reused.
      this.held = [Buffer.concat(this.held)];
      return { consumed, out };
    }
    const message = Buffer.concat(this.held, this.heldTotal);
    const type = this.heldType;
    this.resetHeld();
    const verdict = this.handlers.onMessage(type, message, 0, message.length);
    if (verdict === undefined) out.push(message);
    else if (verdict !== null && verdict.length > 0) out.push(verdict);
    return { consumed, out };
  }

  private resetHeld(): void {
    this.held = [];
    this.heldLength = 0;
    this.heldTotal = 0;
    this.heldType = 0;
  }
}
