/**
 * Blanks out what SQL text may carry that a trace must not keep.
 *
 * redactSql: literals (strings, dollar-quoted bodies, numbers) become `?`
 * and line comments keep only their `--`; identifiers, keywords, `$n`
 * parameters, block comments and structure stay.
 *
 * maskSecrets: the password of CREATE/ALTER ROLE … PASSWORD '…' (and USER,
 * GROUP, USER MAPPING … OPTIONS (password '…'), SUBSCRIPTION … CONNECTION
 * '…') becomes `?`, for traces that otherwise keep SQL as sent.
 *
 * Where a string ends depends on the session's standard_conforming_strings
 * (lexer.ts). A caller that knows the setting the text was read with passes
 * it; one that does not gets every part that either reading holds as a
 * literal blanked, which can blank more than needed but never leaves a
 * literal's content in clear. Only texts with a backslash read differently.
 */
import { keywordAt } from './keywords.js';
import { lex, TokenKind } from './lexer.js';

const QUESTION = 0;
const LINE_COMMENT = 1;

/**
 * Parts of a text to replace, as flat triples: start, end, and what stands
 * for it (QUESTION or LINE_COMMENT), in text order, not overlapping.
 */
type Spans = number[];

export function redactSql(sql: string, standardConformingStrings?: boolean): string {
  if (standardConformingStrings === undefined) {
    if (!sql.includes('\\')) return redactRead(sql, true);
    return replaceSpans(sql, union(literalSpans(sql, true), literalSpans(sql, false)));
  }
  return redactRead(sql, standardConformingStrings);
}

/** One reading: built while lexing, as this runs for every traced statement in `redacted` mode. */
function redactRead(sql: string, standardConformingStrings: boolean): string {
  let out = '';
  let copied = 0;
  lex(
    sql,
    (kind, start, end) => {
      if (kind === TokenKind.String || kind === TokenKind.DollarString || kind === TokenKind.Number) {
        out += sql.slice(copied, start) + '?';
        copied = end;
      } else if (kind === TokenKind.Comment && sql.charCodeAt(start) === 45 /* - */) {
        // A line comment can hold anything; keep its marker only.
        out += sql.slice(copied, start) + '--';
        copied = end;
      }
    },
    standardConformingStrings,
  );
  return out + sql.slice(copied);
}

function literalSpans(sql: string, standardConformingStrings: boolean): Spans {
  const spans: Spans = [];
  lex(
    sql,
    (kind, start, end) => {
      if (kind === TokenKind.String || kind === TokenKind.DollarString || kind === TokenKind.Number) spans.push(start, end, QUESTION);
      else if (kind === TokenKind.Comment && sql.charCodeAt(start) === 45 /* - */) spans.push(start, end, LINE_COMMENT);
    },
    standardConformingStrings,
  );
  return spans;
}

/** Cheap test before lexing: statements that can carry a secret name one of these words. */
const SECRET_WORDS = /password|connection/i;

/**
 * The text with every password operand replaced by `?`, under both string
 * readings (a statement the server would not accept may still hold the
 * password its author meant). Texts that hold none come back as they are.
 */
export function maskSecrets(sql: string): string {
  if (!SECRET_WORDS.test(sql)) return sql;
  const spans = sql.includes('\\') ? union(secretSpans(sql, true), secretSpans(sql, false)) : secretSpans(sql, true);
  return spans.length === 0 ? sql : replaceSpans(sql, spans);
}

/** Whether the text holds a secret that maskSecrets would hide. */
export function holdsSecret(sql: string): boolean {
  return maskSecrets(sql) !== sql;
}

/**
 * The operands of PASSWORD (and of CONNECTION) in CREATE/ALTER statements.
 * In CREATE/ALTER ROLE, USER and GROUP any token is taken as the password
 * (`PASSWORD secret` without quotes is an error, but still a password),
 * except NULL; elsewhere (a foreign server's or user mapping's
 * `OPTIONS (password '…')`, a subscription's connection string) only a
 * string is.
 */
function secretSpans(sql: string, standardConformingStrings: boolean): Spans {
  const spans: Spans = [];
  /** Words of the current statement outside comments. */
  let words = 0;
  let first = '';
  let roleStatement = false;
  /** The previous token was PASSWORD or CONNECTION in a statement that may hold one. */
  let operandNext = false;
  lex(
    sql,
    (kind, start, end) => {
      if (kind === TokenKind.Comment) return;
      if (kind === TokenKind.Semicolon) {
        words = 0;
        first = '';
        roleStatement = false;
        operandNext = false;
        return;
      }
      if (operandNext) {
        operandNext = false;
        const literal = kind === TokenKind.String || kind === TokenKind.DollarString;
        const other = kind === TokenKind.Word || kind === TokenKind.QuotedIdent || kind === TokenKind.Number;
        if (literal || (roleStatement && other && !isWord(sql, start, end, 'null'))) {
          spans.push(start, end, QUESTION);
          return;
        }
      }
      if (kind !== TokenKind.Word) {
        if (kind === TokenKind.QuotedIdent) words++;
        return;
      }
      words++;
      if (words === 1) {
        first = keywordAt(sql, start, end);
        return;
      }
      if (first !== 'CREATE' && first !== 'ALTER') return;
      if (words === 2) {
        const object = keywordAt(sql, start, end);
        roleStatement = object === 'ROLE' || object === 'USER' || isWord(sql, start, end, 'group');
        return;
      }
      // CREATE/ALTER USER MAPPING: its password is an option, a string.
      if (words === 3 && isWord(sql, start, end, 'mapping')) roleStatement = false;
      // In ROLE statements the role's own name (third word) may be "password".
      if (isWord(sql, start, end, 'password') || isWord(sql, start, end, 'connection')) operandNext = words > 3 || !roleStatement;
    },
    standardConformingStrings,
  );
  return spans;
}

function isWord(sql: string, start: number, end: number, lower: string): boolean {
  if (end - start !== lower.length) return false;
  for (let i = 0; i < lower.length; i++) if ((sql.charCodeAt(start + i) | 0x20) !== lower.charCodeAt(i)) return false;
  return true;
}

/** The parts that either list covers, merged; a merged part is a line comment only if all of it was one. */
function union(a: Spans, b: Spans): Spans {
  const out: Spans = [];
  let i = 0;
  let j = 0;
  while (i < a.length || j < b.length) {
    // The next part by start, from either list.
    const fromA = j >= b.length || (i < a.length && a[i] <= b[j]);
    const list = fromA ? a : b;
    const k = fromA ? i : j;
    if (fromA) i += 3;
    else j += 3;
    const last = out.length - 3;
    if (last >= 0 && list[k] < out[last + 1]) {
      out[last + 1] = Math.max(out[last + 1], list[k + 1]);
      if (list[k + 2] !== LINE_COMMENT) out[last + 2] = QUESTION;
    } else out.push(list[k], list[k + 1], list[k + 2]);
  }
  return out;
}

function replaceSpans(sql: string, spans: Spans): string {
  let out = '';
  let copied = 0;
  for (let k = 0; k < spans.length; k += 3) {
    out += sql.slice(copied, spans[k]) + (spans[k + 2] === LINE_COMMENT ? '--' : '?');
    copied = spans[k + 1];
  }
  return out + sql.slice(copied);
}
