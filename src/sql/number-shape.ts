/**
 * The shape of a query whose number literals vary: `… WHERE id = 42` and
 * `… WHERE id = 7` split and classify alike, so the statement cache can
 * look them up under one key instead of lexing every one (the simple
 * protocol with values inlined is what psycopg2, and so Django, sends).
 *
 * The shape replaces each digit of a number literal by 0, keeping the
 * length, so positions in the shape are positions in the text. Digits that
 * follow an identifier character (`t1`, `s2`), or stand inside quotes
 * (`"savepoint 1"`, `'2024'`), stay: they can name things.
 *
 * Finding a text's shape reads it character by character, which costs more
 * than the rest of a cache hit together. So a text is first checked
 * against the shapes already known under its key (`shapeKey`,
 * `Shape.matches`, with the engine's own string comparison), and read
 * only when none matches.
 *
 * A Query arrives as bytes, and a shape of plain ASCII is also checked
 * against them (`shapeKeyOfBytes`, `Shape.matchesBytes`). A text of a known
 * shape is then never decoded to be recognised: its literals' values are
 * all it differs by (`literalValues`), and its string can be made from
 * them (`render`) if someone reads it (statement-cache.ts, ShapedQuery).
 */
import { Ch, isDigit, isIdentChar } from './lexer.js';
import { ShapeBytes } from './shape-bytes.js';

/**
 * Where the number literals of `sql` are, as [start, end) pairs; null when
 * it has none or cannot be read this simply.
 */
export function literalSpans(sql: string): number[] | null {
  const spans: number[] = [];
  /** The quote character of the string or quoted identifier we are in, or 0. */
  let quote = 0;
  const length = sql.length;
  for (let i = 0; i < length; i++) {
    const c = sql.charCodeAt(i);
    if (quote !== 0) {
      // A doubled quote closes and reopens: the same as staying inside.
      if (c === quote) quote = 0;
      else if (c === Ch.Backslash) return null;
      continue;
    }
    if (c === Ch.Quote || c === Ch.DoubleQuote) {
      quote = c;
      continue;
    }
    // Comments, dollar quotes, parameters and escapes could hide or fake a quote: leave those to the lexer.
    if (c === Ch.Dollar || c === Ch.Backslash) return null;
    if ((c === Ch.Minus || c === Ch.Slash) && sql.charCodeAt(i + 1) === (c === Ch.Minus ? Ch.Minus : Ch.Star)) return null;
    if (isDigit(c) && (i === 0 || !isIdentChar(sql.charCodeAt(i - 1)))) {
      let end = i + 1;
      while (end < length && isDigit(sql.charCodeAt(end))) end++;
      spans.push(i, end);
      i = end - 1;
    }
  }
  return spans.length === 0 ? null : spans;
}

/** The text's shape, or null when it has no number literal or cannot be read this simply. */
export function numberShape(sql: string): string | null {
  const spans = literalSpans(sql);
  return spans === null ? null : shapeText(sql, spans);
}

/**
 * What a text's shape is looked up under: its length and a few of its
 * characters, digits read as 0. Every text of a shape has the same key: a
 * character inside a literal is a digit in each of them, and one outside
 * is the shape's own. Reading four characters costs less than hashing a
 * string (the engine's own hash reads every character of a new one).
 */
export function shapeKey(sql: string): number {
  const n = sql.length;
  if (n === 0) return 0;
  return keyOf(n, sql.charCodeAt(n >> 2), sql.charCodeAt(n >> 1), sql.charCodeAt((3 * n) >> 2), sql.charCodeAt(n - 1));
}

/**
 * shapeKey of the text in `buf[start, end)`, read as bytes: for a text of
 * plain ASCII, the key of its string.
 */
export function shapeKeyOfBytes(buf: Uint8Array, start: number, end: number): number {
  const n = end - start;
  if (n === 0) return 0;
  return keyOf(n, buf[start + (n >> 2)], buf[start + (n >> 1)], buf[start + ((3 * n) >> 2)], buf[end - 1]);
}

/** The key of a text of length `n` from its four characters read (shapeKey), digits as 0. */
function keyOf(n: number, a: number, b: number, c: number, d: number): number {
  let key = n;
  key = Math.imul(key, 31) + digitAsZero(a);
  key = Math.imul(key, 31) + digitAsZero(b);
  key = Math.imul(key, 31) + digitAsZero(c);
  key = Math.imul(key, 31) + digitAsZero(d);
  // 30 bits: a small integer on every build of the engine, which a Map hashes at once.
  return key & 0x3fffffff;
}

function digitAsZero(c: number): number {
  return isDigit(c) ? Ch.Zero : c;
}

/** A shape: the parts of its texts between their number literals. */
export class Shape {
  readonly text: string;
  readonly length: number;
  /** The shape's number literals, as [start, end) pairs. */
  private readonly spans: readonly number[];
  /** The text before each literal, then after the last one. */
  private readonly parts: readonly string[];
  /** The shape as bytes (shape-bytes.ts); null when it is not plain ASCII. */
  private readonly bytes: ShapeBytes | null;

  /** The shape of `sql`, whose literals `literalSpans` found. */
  constructor(sql: string, spans: readonly number[]) {
    this.text = shapeText(sql, spans);
    this.length = sql.length;
    this.spans = spans;
    const parts: string[] = [];
    let from = 0;
    for (let k = 0; k < spans.length; k += 2) {
      parts.push(sql.slice(from, spans[k]));
      from = spans[k + 1];
    }
    parts.push(sql.slice(from));
    this.parts = parts;
    this.bytes = ShapeBytes.of(this.text, spans);
  }

  /**
   * matches() for the text in `buf[start, end)`, as bytes. Only a shape of
   * plain ASCII matches: so does the text then, and reads as the same string.
   */
  matchesBytes(buf: Uint8Array, start: number, end: number): boolean {
    return this.bytes !== null && this.bytes.matches(buf, start, end);
  }

  /**
   * The values of the literals of a text that matchesBytes(), in order;
   * null when one has more digits than a double holds exactly.
   */
  literalValues(buf: Uint8Array, start: number): number[] | null {
    return this.bytes === null ? null : this.bytes.literalValues(buf, start);
  }

  /** The text of this shape whose literals have these values (from literalValues). */
  render(values: readonly number[]): string {
    return this.matchedBytes().render(values);
  }

  /** Characters [from, to) of render(values) as bytes into `out` at `pos` (ShapeBytes.renderInto); returns where they end. */
  renderInto(values: readonly number[], from: number, to: number, out: Uint8Array, pos: number): number {
    return this.matchedBytes().renderInto(values, from, to, out, pos);
  }

  /** Whether its texts are their own JSON string bodies (ShapeBytes.jsonSafe). */
  get jsonSafe(): boolean {
    return this.bytes !== null && this.bytes.jsonSafe;
  }

  private matchedBytes(): ShapeBytes {
    if (this.bytes === null) throw new Error('only a shape matched in bytes has literal values');
    return this.bytes;
  }

  /**
   * Whether `sql` has this shape: the shape's own text outside its
   * literals, digits within them. Then `sql` reads as the shape does,
   * character class by character class, and its literals are exactly
   * these. (Digits after a literal would have made it longer; the
   * character before one is the shape's, which is no identifier's.)
   */
  matches(sql: string): boolean {
    if (sql.length !== this.length) return false;
    const { spans, parts } = this;
    // Equal slices, not startsWith: the engine compares two strings in native
    // code, while startsWith with a position took twice as long here.
    let from = 0;
    for (let k = 0; k < spans.length; k += 2) {
      const part = parts[k >> 1];
      if (sql.slice(from, from + part.length) !== part) return false;
      for (let i = spans[k]; i < spans[k + 1]; i++) if (!isDigit(sql.charCodeAt(i))) return false;
      from = spans[k + 1];
    }
    return sql.slice(from) === parts[parts.length - 1];
  }
}

function shapeText(sql: string, spans: readonly number[]): string {
  let shape = '';
  let copied = 0;
  for (let k = 0; k < spans.length; k += 2) {
    shape += sql.slice(copied, spans[k]) + zeros(spans[k + 1] - spans[k]);
    copied = spans[k + 1];
  }
  return shape + sql.slice(copied);
}

const ZEROS = '0'.repeat(32);

function zeros(n: number): string {
  return n <= ZEROS.length ? ZEROS.slice(0, n) : '0'.repeat(n);
}
