/**
 * Whole backend messages out of a byte stream, for txproxy's own
 * conversations with a server (login, control statements): small messages,
 * read off the hot path. Chunks are kept as they come and joined once per
 * message, so a message split into many chunks costs linear time.
 */
export interface WholeMessage {
  type: string;
  /** The body, after the type byte and the length. */
  body: Buffer;
}

/** A length field outside [4, the reader's limit]. */
export class MessageTooLongError extends Error {
  constructor(
    readonly messageType: string,
    readonly length: number,
    readonly limit: number,
  ) {
    super(length < 4 ? `invalid message length ${length}` : `message of ${length} bytes exceeds the limit of ${limit} bytes`);
    this.name = 'MessageTooLongError';
  }
}

export class MessageReader {
  private chunks: Buffer[] = [];
  private buffered = 0;

  /** @param maxLength the largest length field accepted (a peer that declares more is refused on the header alone). */
  constructor(private readonly maxLength = 0x3ffffffe) {}

  /** The messages `chunk` completes, in order. Throws MessageTooLongError on a nonsense length. */
  push(chunk: Buffer): WholeMessage[] {
    this.chunks.push(chunk);
    this.buffered += chunk.length;
    const messages: WholeMessage[] = [];
    for (;;) {
      if (this.buffered < 5) break;
      const length = this.peekLength();
      if (length < 4 || length > this.maxLength) throw new MessageTooLongError(String.fromCharCode(this.chunks[0][0]), length, this.maxLength);
      if (this.buffered < 1 + length) break;
      const all = this.join();
      messages.push({ type: String.fromCharCode(all[0]), body: Buffer.from(all.subarray(5, 1 + length)) });
      const rest = all.subarray(1 + length);
      this.chunks = rest.length > 0 ? [rest] : [];
      this.buffered = rest.length;
    }
    return messages;
  }

  /** The length field of the message at the front, read across chunks without joining them. */
  private peekLength(): number {
    const header = Buffer.alloc(5);
    let filled = 0;
    for (const chunk of this.chunks) {
      filled += chunk.copy(header, filled, 0, Math.min(chunk.length, 5 - filled));
      if (filled === 5) break;
    }
    return header.readInt32BE(1);
  }

  /** Bytes received after the last whole message. */
  takeRest(): Buffer {
    const rest = this.chunks.length === 0 ? Buffer.alloc(0) : this.join();
    this.chunks = [];
    this.buffered = 0;
    return rest;
  }

  private join(): Buffer {
    if (this.chunks.length > 1) this.chunks = [Buffer.concat(this.chunks, this.buffered)];
    return this.chunks[0];
  }
}
