/**
 * A small SQL lexer that knows exactly what PostgreSQL's scanner knows about
 * where a token ends: '…' strings (with '' escapes), E'…' strings (with
 * backslash escapes), "…" identifiers, $tag$…$tag$ bodies, -- and nested
 * /* *\/ comments, and $n parameters. It does not parse SQL; it lets callers
 * split a Query on top-level semicolons, read leading keywords and blank out
 * literals, without being fooled by a ';' or a keyword inside a string.
 *
 * Where a plain '…' string ends depends on the session: with
 * `standard_conforming_strings = off` PostgreSQL reads backslash escapes in
 * it (and in N'…') as in E'…', so `'a\'b'` is one string, not `'a\'` and
 * the start of another. Callers pass the session's setting.
 */

export const enum TokenKind {
  Word, // keyword or unquoted identifier
  QuotedIdent, // "..."
  String, // '...', E'...', B'...', X'...', U&'...'
  DollarString, // $tag$...$tag$
  Number,
  Param, // $1
  Comment,
  Semicolon,
  OpenParen,
  CloseParen,
  Other,
}

export interface Token {
  kind: TokenKind;
  start: number;
  end: number;
}

/** Character codes the scanners look for. */
export const enum Ch {
  Tab = 9,
  Newline = 10,
  Return = 13,
  Space = 32,
  DoubleQuote = 34,
  Dollar = 36,
  Quote = 39,
  OpenParen = 40,
  CloseParen = 41,
  Star = 42,
  Minus = 45,
  Dot = 46,
  Slash = 47,
  Zero = 48,
  Nine = 57,
  Semicolon = 59,
  Backslash = 92,
  Underscore = 95,
}

function isIdentStart(c: number): boolean {
  return (c >= 65 && c <= 90) || (c >= 97 && c <= 122) || c === Ch.Underscore || c >= 128;
}

/** Letters, digits, `_`, `$` and anything beyond ASCII: what may follow an identifier's first character. */
export function isIdentChar(c: number): boolean {
  return isIdentStart(c) || (c >= Ch.Zero && c <= Ch.Nine) || c === Ch.Dollar;
}

/** e, b, x, n: letters that, glued to a quote, start a special string constant. */
function isStringPrefix(c: number): boolean {
  const lower = c | 0x20;
  return lower === 101 || lower === 98 || lower === 120 || lower === 110;
}

export function isDigit(c: number): boolean {
  return c >= Ch.Zero && c <= Ch.Nine;
}

function isSpace(c: number): boolean {
  return c === Ch.Space || c === Ch.Tab || c === Ch.Newline || c === Ch.Return || c === 12 || c === 11;
}

/**
 * Calls `onToken` for every token of `sql`, whitespace skipped. An unterminated
 * string or comment runs to the end of the text, as the server would report.
 * `standardConformingStrings` is the session's setting of that name (on by
 * default since PostgreSQL 9.1): off, plain '…' strings take backslash escapes.
 */
export function lex(
  sql: string,
  onToken: (kind: TokenKind, start: number, end: number) => void,
  standardConformingStrings = true,
): void {
  const n = sql.length;
  const plainEscapes = !standardConformingStrings;
  let i = 0;
  while (i < n) {
    const c = sql.charCodeAt(i);
    if (isSpace(c)) {
      i++;
      continue;
    }
    const start = i;
    if (c === Ch.Minus && sql.charCodeAt(i + 1) === Ch.Minus) {
      const nl = sql.indexOf('\n', i + 2);
      i = nl < 0 ? n : nl;
      onToken(TokenKind.Comment, start, i);
      continue;
    }
    if (c === Ch.Slash && sql.charCodeAt(i + 1) === Ch.Star) {
      i = skipBlockComment(sql, i);
      onToken(TokenKind.Comment, start, i);
      continue;
    }
    if (c === Ch.Quote) {
      i = skipQuoted(sql, i + 1, Ch.Quote, plainEscapes);
      onToken(TokenKind.String, start, i);
      continue;
    }
    if (c === Ch.DoubleQuote) {
      i = skipQuoted(sql, i + 1, Ch.DoubleQuote, false);
      onToken(TokenKind.QuotedIdent, start, i);
      continue;
    }
    if (isIdentStart(c)) {
      const next = sql.charCodeAt(i + 1);
      // E'…' (escape string), B'…', X'…', N'…': a one-letter prefix glued to a quote.
      // N'…' is a plain string to the server's scanner: it follows the setting.
      if (next === Ch.Quote && isStringPrefix(c)) {
        const lower = c | 0x20;
        i = skipQuoted(sql, i + 2, Ch.Quote, lower === 101 || (lower === 110 && plainEscapes));
        onToken(TokenKind.String, start, i);
        continue;
      }
      // U&'…' and U&"…"
      if ((c | 0x20) === 117 && next === 38 /* & */) {
        const q = sql.charCodeAt(i + 2);
        if (q === Ch.Quote || q === Ch.DoubleQuote) {
          i = skipQuoted(sql, i + 3, q, false);
          onToken(q === Ch.Quote ? TokenKind.String : TokenKind.QuotedIdent, start, i);
          continue;
        }
      }
      i++;
      while (i < n && isIdentChar(sql.charCodeAt(i))) i++;
      onToken(TokenKind.Word, start, i);
      continue;
    }
    if (c === Ch.Dollar) {
      const next = sql.charCodeAt(i + 1);
      if (isDigit(next)) {
        i += 2;
        while (i < n && isDigit(sql.charCodeAt(i))) i++;
        onToken(TokenKind.Param, start, i);
        continue;
      }
      const tagEnd = dollarTagEnd(sql, i);
      if (tagEnd > 0) {
        const tag = sql.slice(i, tagEnd);
        const close = sql.indexOf(tag, tagEnd);
        i = close < 0 ? n : close + tag.length;
        onToken(TokenKind.DollarString, start, i);
        continue;
      }
    }
    if (isDigit(c) || (c === Ch.Dot && isDigit(sql.charCodeAt(i + 1)))) {
      i = skipNumber(sql, i);
      onToken(TokenKind.Number, start, i);
      continue;
    }
    i++;
    if (c === Ch.Semicolon) onToken(TokenKind.Semicolon, start, i);
    else if (c === Ch.OpenParen) onToken(TokenKind.OpenParen, start, i);
    else if (c === Ch.CloseParen) onToken(TokenKind.CloseParen, start, i);
    else onToken(TokenKind.Other, start, i);
  }
}

function skipBlockComment(sql: string, i: number): number {
  // PostgreSQL block comments nest.
  let depth = 0;
  const n = sql.length;
  while (i < n) {
    const c = sql.charCodeAt(i);
    if (c === Ch.Slash && sql.charCodeAt(i + 1) === Ch.Star) {
      depth++;
      i += 2;
    } else if (c === Ch.Star && sql.charCodeAt(i + 1) === Ch.Slash) {
      depth--;
      i += 2;
      if (depth === 0) return i;
    } else i++;
  }
  return n;
}

/** Skips to just past the closing quote; a doubled quote is an escaped one. */
function skipQuoted(sql: string, i: number, quote: number, backslashEscapes: boolean): number {
  const n = sql.length;
  while (i < n) {
    const c = sql.charCodeAt(i);
    if (backslashEscapes && c === Ch.Backslash) {
      i += 2;
      continue;
    }
    if (c === quote) {
      if (sql.charCodeAt(i + 1) === quote) {
        i += 2;
        continue;
      }
      return i + 1;
    }
    i++;
  }
  return n;
}

/** If a dollar-quote tag ($$ or $tag$) starts at i, returns the index after it, else -1. */
function dollarTagEnd(sql: string, i: number): number {
  let j = i + 1;
  const first = sql.charCodeAt(j);
  if (first === Ch.Dollar) return j + 1;
  if (!isIdentStart(first)) return -1;
  j++;
  while (j < sql.length) {
    const c = sql.charCodeAt(j);
    if (c === Ch.Dollar) return j + 1;
    if (!isIdentStart(c) && !isDigit(c)) return -1;
    j++;
  }
  return -1;
}

function skipNumber(sql: string, i: number): number {
  const n = sql.length;
  const start = i;
  // 0x1F, 0o17, 0b101 (PostgreSQL 16+): the prefix then hex digits and underscores.
  const prefix = sql.charCodeAt(i + 1) | 0x20;
  if (sql.charCodeAt(i) === Ch.Zero && (prefix === 120 || prefix === 111 || prefix === 98)) {
    i += 2;
    while (i < n && (isIdentChar(sql.charCodeAt(i)) && sql.charCodeAt(i) !== Ch.Dollar)) i++;
    return i;
  }
  while (i < n && (isDigit(sql.charCodeAt(i)) || sql.charCodeAt(i) === Ch.Underscore)) i++;
  if (sql.charCodeAt(i) === Ch.Dot && sql.charCodeAt(i + 1) !== Ch.Dot) {
    i++;
    while (i < n && (isDigit(sql.charCodeAt(i)) || sql.charCodeAt(i) === Ch.Underscore)) i++;
  }
  if ((sql.charCodeAt(i) | 0x20) === 101 && i > start) {
    let j = i + 1;
    const sign = sql.charCodeAt(j);
    if (sign === 43 || sign === Ch.Minus) j++;
    if (isDigit(sql.charCodeAt(j))) {
      i = j;
      while (i < n && isDigit(sql.charCodeAt(i))) i++;
    }
  }
  return i;
}

/** The text of an identifier token as PostgreSQL sees it: unquoted folds to lower case. */
export function identifierValue(sql: string, kind: TokenKind, start: number, end: number): string {
  if (kind === TokenKind.QuotedIdent) {
    const body = sql.charCodeAt(start) === 34 ? sql.slice(start + 1, end - 1) : sql.slice(start + 3, end - 1);
    return body.replace(/""/g, '"');
  }
  return sql.slice(start, end).toLowerCase();
}
