/**
 * JSON text written as UTF-8 bytes straight into a buffer, piece by piece:
 * how the trace writer encodes its statement and transaction records.
 *
 * Building a record as a string and then encoding it made the string
 * twice: V8 joins the pieces into one flat string before encoding it, and
 * that copy cost more than building and encoding together (measured on a
 * select-only statement record of ~450 bytes: ~260 ns of ~500). Written
 * here, a plain ASCII value is copied byte by byte as it is read, numbers
 * are written as digits without becoming strings, and a record allocates
 * nothing. A value with anything to escape, or beyond ASCII, takes the
 * string path (json-text.ts), so the bytes are those of the same JSON text.
 *
 * The caller reserves room first: `worstCase` bounds each value's bytes.
 */
import { utf8Slice, utf8Write } from '../protocol/buffer-codecs.js';
import { jsonString } from './json-text.js';

/** A constant piece of JSON text, ASCII only, as bytes. */
export function asciiBytes(text: string): Uint8Array {
  const bytes = new Uint8Array(text.length);
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c >= 0x80) throw new Error(`not ASCII: ${text}`);
    bytes[i] = c;
  }
  return bytes;
}

/** A piece of JSON text (any characters) as its UTF-8 bytes. */
export function utf8Bytes(text: string): Uint8Array {
  return new Uint8Array(Buffer.from(text, 'utf8'));
}

/** The most bytes `string(value)` writes: `\uXXXX` for each UTF-16 unit, and the quotes. */
export function worstCase(value: string | null | undefined): number {
  return value == null ? 4 : value.length * 6 + 2;
}

/** Bytes a record's fixed parts, numbers and times can take, besides its strings and fragments. */
export const RECORD_SLACK = 1024;

const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const ZERO = 0x30;
const NULL_BYTES = asciiBytes('null');

export class JsonBytes {
  buf: Buffer = EMPTY;
  pos = 0;

  /** Writes from `pos` in `buf` on. */
  at(buf: Buffer, pos: number): this {
    this.buf = buf;
    this.pos = pos;
    return this;
  }

  /** A piece of `pieces`, by the name JsonPieces.add() gave it. */
  piece(pieces: Uint8Array, piece: number): void {
    const start = piece >>> 8;
    this.copy(pieces, start, start + (piece & 0xff));
  }

  /** Bytes as they are: a fragment made once (utf8Bytes). */
  bytes(bytes: Uint8Array): void {
    this.copy(bytes, 0, bytes.length);
  }

  private copy(from: Uint8Array, start: number, end: number): void {
    const buf = this.buf;
    let pos = this.pos;
    for (let i = start; i < end; i++) buf[pos++] = from[i];
    this.pos = pos;
  }

  byte(c: number): void {
    this.buf[this.pos++] = c;
  }

  /** Text known to be ASCII with nothing to escape: ids, times, status letters. */
  ascii(text: string): void {
    const buf = this.buf;
    let pos = this.pos;
    for (let i = 0; i < text.length; i++) buf[pos++] = text.charCodeAt(i);
    this.pos = pos;
  }

  /** `text` in quotes; as ascii(), nothing to escape. */
  quotedAscii(text: string): void {
    this.byte(QUOTE);
    this.ascii(text);
    this.byte(QUOTE);
  }

  /** quotedAscii(text), or `null`. */
  nullableAscii(text: string | null): void {
    if (text === null) this.bytes(NULL_BYTES);
    else this.quotedAscii(text);
  }

  /** A JSON string literal, as jsonString() writes it. */
  string(value: string): void {
    const buf = this.buf;
    const start = this.pos;
    let pos = start;
    buf[pos++] = QUOTE;
    for (let i = 0; i < value.length; i++) {
      const c = value.charCodeAt(i);
      // Printable ASCII but the quote and the backslash: the same byte in JSON and in UTF-8.
      if (c < 0x20 || c > 0x7e || c === QUOTE || c === BACKSLASH) {
        this.pos = start + utf8Write(buf, jsonString(value), start);
        return;
      }
      buf[pos++] = c;
    }
    buf[pos++] = QUOTE;
    this.pos = pos;
  }

  /** A JSON string literal, or `null`. */
  nullable(value: string | null | undefined): void {
    if (value == null) this.bytes(NULL_BYTES);
    else this.string(value);
  }

  /** A non-negative integer below 10^width, in `width` digits, leading zeros and all. */
  padded(value: number, width: number): void {
    const buf = this.buf;
    let pos = this.pos + width;
    this.pos = pos;
    for (let i = 0; i < width; i++) {
      const next = Math.floor(value / 10);
      buf[--pos] = ZERO + (value - next * 10);
      value = next;
    }
  }

  /** A non-negative integer (a count, a pid, a sequence number). */
  int(value: number): void {
    if (!(value >= 0 && value <= Number.MAX_SAFE_INTEGER && Number.isInteger(value))) {
      this.pos += utf8Write(this.buf, String(value), this.pos);
      return;
    }
    let digits = 1;
    for (let rest = value; rest >= 10; rest = Math.floor(rest / 10)) digits++;
    this.padded(value, digits);
  }

  /**
   * Milliseconds with microsecond precision, as `String(Math.round(ms * 1000) / 1000)`
   * would print them, from integers: a double's shortest decimal form costs
   * three times as much, and every statement and transaction has a duration.
   */
  ms(ms: number): void {
    const us = Math.round(ms * 1000);
    if (!(us >= 0 && us <= 0x3fffffff)) {
      this.pos += utf8Write(this.buf, String(us / 1000), this.pos);
      return;
    }
    const whole = Math.floor(us / 1000);
    this.int(whole);
    let fraction = us - whole * 1000;
    if (fraction === 0) return;
    const buf = this.buf;
    buf[this.pos++] = 0x2e; // .
    for (let unit = 100; fraction > 0; unit /= 10) {
      const digit = Math.floor(fraction / unit);
      buf[this.pos++] = ZERO + digit;
      fraction -= digit * unit;
    }
  }
}

const EMPTY = Buffer.alloc(0);

/**
 * Constant pieces of JSON text side by side in one block of bytes. Copied
 * from there, a record's twenty-odd pieces share a few cache lines instead
 * of taking an object each: the trace writes a record between two system
 * calls, when little of it is still in the cache. A piece is named by a
 * number, its offset and length, for JsonBytes.piece().
 */
export class JsonPieces {
  readonly bytes: Uint8Array;
  private used = 0;

  constructor(capacity: number) {
    this.bytes = new Uint8Array(capacity);
  }

  /** Adds a piece of ASCII text; returns its name. */
  add(text: string): number {
    const bytes = asciiBytes(text);
    if (bytes.length > 0xff || this.used + bytes.length > this.bytes.length) throw new Error(`no room for the piece ${text}`);
    this.bytes.set(bytes, this.used);
    const piece = this.used * 256 + bytes.length;
    this.used += bytes.length;
    return piece;
  }
}

/** Takes a line's bytes where they are to end up (BufferedWriter, ScratchLine). */
export interface LineWriter {
  /**
   * A writer with room for `maxBytes` (and a line break after them); null
   * when the line is dropped (the writer counts it). endLine() ends it.
   */
  beginLine(maxBytes: number): JsonBytes | null;
  endLine(): void;
}

/**
 * One line encoded into memory of its own, for whoever wants it as a
 * string (tail sampling, the admin API's stream, tests).
 */
export class ScratchLine implements LineWriter {
  private buffer = Buffer.allocUnsafe(4096);
  private readonly out = new JsonBytes();

  beginLine(maxBytes: number): JsonBytes {
    if (this.buffer.length < maxBytes) this.buffer = Buffer.allocUnsafe(Math.max(maxBytes, this.buffer.length * 2));
    return this.out.at(this.buffer, 0);
  }

  endLine(): void {}

  /** The line written last, without a line break. */
  text(): string {
    return utf8Slice(this.buffer, 0, this.out.pos);
  }
}
