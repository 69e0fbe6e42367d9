/**
 * A shape (number-shape.ts) as the bytes of the texts that have it, for
 * recognising a Query before it is decoded. A text has the shape when its
 * bytes are the shape's outside the literals and digits within them.
 *
 * The bytes outside the literals are compared four at a time, as 32-bit
 * words read through a DataView with the literals' bytes masked out: about
 * half the cost of comparing them one by one. The view is made once per
 * ArrayBuffer, and a session's reads all land in one (reused-read-buffer.ts).
 */
import { latin1Slice } from '../protocol/buffer-codecs.js';
import { Ch, isDigit } from './lexer.js';

export class ShapeBytes {
  readonly length: number;
  /**
   * Every byte printable ASCII, none a quote or a backslash: its texts are
   * their own JSON string bodies (renderInto writes them into a trace record).
   */
  readonly jsonSafe: boolean;
  /** Each 4 bytes of the shape, little-endian, 0 where a literal's digit is. */
  private readonly words: Int32Array;
  /** 0xff for each byte of a word the text must equal, 0 for a literal's digit. */
  private readonly masks: Int32Array;
  /** The bytes after the last whole word, LITERAL_DIGIT for a literal's digit. */
  private readonly tail: Uint8Array;
  /** All the shape's bytes, as `tail`: what render() starts from. */
  private readonly bytes: Uint8Array;

  /** Null when `shape` is not plain ASCII: its bytes are then not its characters. */
  static of(shape: string, spans: readonly number[]): ShapeBytes | null {
    const bytes = new Uint8Array(shape.length);
    for (let i = 0; i < shape.length; i++) {
      const c = shape.charCodeAt(i);
      if (c >= 0x80 || c === LITERAL_DIGIT) return null;
      bytes[i] = c;
    }
    for (let k = 0; k < spans.length; k += 2) bytes.fill(LITERAL_DIGIT, spans[k], spans[k + 1]);
    return new ShapeBytes(bytes, spans);
  }

  private constructor(
    bytes: Uint8Array,
    /** The literals, as [start, end) pairs. */
    private readonly spans: readonly number[],
  ) {
    this.length = bytes.length;
    this.bytes = bytes;
    // A literal's digits stand as LITERAL_DIGIT here; they are printable too.
    this.jsonSafe = bytes.every((b) => b === LITERAL_DIGIT || (b >= 0x20 && b < 0x7f && b !== Ch.DoubleQuote && b !== Ch.Backslash));
    const wordCount = bytes.length >> 2;
    this.words = new Int32Array(wordCount);
    this.masks = new Int32Array(wordCount);
    for (let w = 0; w < wordCount; w++) {
      let word = 0;
      let mask = 0;
      for (let j = 3; j >= 0; j--) {
        const b = bytes[4 * w + j];
        word = (word << 8) | b;
        mask = (mask << 8) | (b === LITERAL_DIGIT ? 0 : 0xff);
      }
      this.words[w] = word;
      this.masks[w] = mask;
    }
    this.tail = bytes.slice(wordCount << 2);
  }

  /** Whether the text in `buf[start, end)` has this shape. No shape holds a NUL: a text cut short by one never matches. */
  matches(buf: Uint8Array, start: number, end: number): boolean {
    if (end - start !== this.length) return false;
    const { words, masks, tail, spans } = this;
    const view = viewOf(buf);
    const base = buf.byteOffset + start;
    for (let w = 0; w < words.length; w++) {
      if ((view.getInt32(base + 4 * w, true) & masks[w]) !== words[w]) return false;
    }
    const tailStart = start + (words.length << 2);
    for (let i = 0; i < tail.length; i++) {
      const expected = tail[i];
      const c = buf[tailStart + i];
      // A literal's digits are checked below, with the others.
      if (expected !== LITERAL_DIGIT && c !== expected) return false;
    }
    for (let k = 0; k < spans.length; k += 2) {
      for (let i = start + spans[k]; i < start + spans[k + 1]; i++) if (!isDigit(buf[i])) return false;
    }
    return true;
  }

  /** The text of this shape whose literals have these values (literalValues). */
  render(values: readonly number[]): string {
    const length = this.bytes.length;
    if (scratch.length < length) scratch = Buffer.allocUnsafe(length);
    this.renderInto(values, 0, length, scratch, 0);
    return latin1Slice(scratch, 0, length);
  }

  /**
   * Characters [from, to) of render(values), written as bytes into `out` at
   * `pos`; returns where they end. `from` and `to` cut no literal.
   */
  renderInto(values: readonly number[], from: number, to: number, out: Uint8Array, pos: number): number {
    const { bytes, spans } = this;
    const shift = pos - from;
    for (let i = from; i < to; i++) out[i + shift] = bytes[i];
    for (let k = 0; k < spans.length; k += 2) {
      if (spans[k] < from || spans[k + 1] > to) continue;
      // Right to left, leading zeros and all: a literal keeps its length in the shape.
      let value = values[k >> 1];
      for (let i = spans[k + 1] - 1; i >= spans[k]; i--) {
        const rest = Math.floor(value / 10);
        out[i + shift] = Ch.Zero + (value - rest * 10);
        value = rest;
      }
    }
    return to + shift;
  }

  /** The literals' values of a text that matches(), in order; null when one has more digits than a double holds exactly. */
  literalValues(buf: Uint8Array, start: number): number[] | null {
    const spans = this.spans;
    const values = new Array<number>(spans.length >> 1);
    for (let k = 0; k < spans.length; k += 2) {
      if (spans[k + 1] - spans[k] > MAX_EXACT_DIGITS) return null;
      let value = 0;
      for (let i = start + spans[k]; i < start + spans[k + 1]; i++) value = value * 10 + (buf[i] - Ch.Zero);
      values[k >> 1] = value;
    }
    return values;
  }
}

/**
 * A text of this shape is made as the server's bytes would be decoded: the
 * shape's bytes with the literals' digits written in, read as Latin-1 (plain
 * ASCII, as every shape here is) in one call. Building it from strings (the
 * parts, each value's digits) cost twice as much.
 */
let scratch = Buffer.allocUnsafe(1024);

/** Stands for a literal's digit in a shape's bytes: no text has a NUL. */
const LITERAL_DIGIT = 0;

/** Digits that every value of a literal of that length is exact for in a double. */
const MAX_EXACT_DIGITS = 15;

/** A DataView of each ArrayBuffer texts were matched in: one per session's read buffer, kept as long as it is. */
const views = new WeakMap<ArrayBufferLike, DataView>();
let viewedBuffer: ArrayBufferLike | null = null;
let view: DataView = new DataView(new ArrayBuffer(0));

/** A DataView of the whole ArrayBuffer under `buf`: the one used last, most often. */
function viewOf(buf: Uint8Array): DataView {
  const buffer = buf.buffer;
  if (buffer !== viewedBuffer) {
    let found = views.get(buffer);
    if (found === undefined) {
      found = new DataView(buffer);
      views.set(buffer, found);
    }
    viewedBuffer = buffer;
    view = found;
  }
  return view;
}
