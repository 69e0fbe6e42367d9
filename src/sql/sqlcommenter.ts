/**
 * sqlcommenter tags: the `/*key='value',…*\/` comment that Django, Rails
 * QueryLogs, Prisma, knex and Hibernate append to SQL to say which request,
 * route and controller issued it. https://google.github.io/sqlcommenter/spec/
 */
import { lex, TokenKind } from './lexer.js';

export type SqlCommenterTags = Record<string, string>;

export interface CommentedSql {
  /** The SQL without the tag comment, for grouping and for traces. */
  text: string;
  tags: SqlCommenterTags | null;
}

/**
 * Finds the tag comment (the last comment that parses as tags) and removes
 * it from the text; `standardConformingStrings` is the session's setting,
 * which decides what is a string and so what is a comment (lexer.ts).
 */
export function extractSqlCommenter(sql: string, standardConformingStrings = true): CommentedSql {
  return findSqlCommenter(sql, standardConformingStrings) ?? { text: sql, tags: null };
}

/**
 * extractSqlCommenter for the tracker's path: null when the text has no tag
 * comment, so that nearly every query makes no object for its answer.
 */
export function findSqlCommenter(sql: string, standardConformingStrings = true): CommentedSql | null {
  // Nearly every query has no block comment: leave at the cost of one scan.
  if (!sql.includes('/*')) return null;
  let found: { start: number; end: number; tags: SqlCommenterTags } | null = null;
  lex(sql, (kind, start, end) => {
    if (kind !== TokenKind.Comment || sql.charCodeAt(start) !== 47 /* / */) return;
    const tags = parseTags(sql.slice(start + 2, end - 2));
    if (tags !== null) found = { start, end, tags };
  }, standardConformingStrings);
  if (found === null) return null;
  const { start, end, tags } = found as { start: number; end: number; tags: SqlCommenterTags };
  const text = (sql.slice(0, start).trimEnd() + ' ' + sql.slice(end).trimStart()).trim();
  return { text, tags };
}

/** Parses `key='value',key2='value2'`; null when the comment is not of that form. */
export function parseTags(body: string): SqlCommenterTags | null {
  const tags: SqlCommenterTags = {};
  const s = body.trim();
  let i = 0;
  let any = false;
  while (i < s.length) {
    const eq = s.indexOf('=', i);
    if (eq < 0 || s.charCodeAt(eq + 1) !== 39 /* ' */) return null;
    const key = safeDecode(s.slice(i, eq).trim());
    let j = eq + 2;
    let raw = '';
    for (;;) {
      if (j >= s.length) return null;
      const c = s[j];
      if (c === '\\' && s[j + 1] === "'") {
        raw += "'";
        j += 2;
        continue;
      }
      if (c === "'") break;
      raw += c;
      j++;
    }
    if (key === null || key === '') return null;
    const value = safeDecode(raw);
    if (value === null) return null;
    tags[key] = value;
    any = true;
    j++; // closing quote
    while (j < s.length && s[j] === ' ') j++;
    if (j < s.length) {
      if (s[j] !== ',') return null;
      j++;
    }
    i = j;
  }
  return any ? tags : null;
}

function safeDecode(value: string): string | null {
  try {
    return decodeURIComponent(value);
  } catch {
    return null;
  }
}

/** The trace id of a W3C `traceparent` (`00-<trace-id>-<span-id>-<flags>`), if well-formed. */
export function traceIdOf(traceparent: string | undefined): string | null {
  if (traceparent === undefined) return null;
  const match = /^[0-9a-f]{2}-([0-9a-f]{32})-[0-9a-f]{16}-[0-9a-f]{2}$/.exec(traceparent.trim());
  return match ? match[1] : null;
}
