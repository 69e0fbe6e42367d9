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
 */
import { Ch, isDigit, isIdentChar } from './lexer.js';

/** The text's shape, or null when it has no number literal or cannot be read this simply. */
export function numberShape(sql: string): string | null {
  let shape = '';
  let copied = 0;
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
      shape += sql.slice(copied, i) + zeros(end - i);
      copied = end;
      i = end - 1;
    }
  }
  if (copied === 0) return null;
  return shape + sql.slice(copied);
}

const ZEROS = '0'.repeat(32);

function zeros(n: number): string {
  return n <= ZEROS.length ? ZEROS.slice(0, n) : '0'.repeat(n);
}
