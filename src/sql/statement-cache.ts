/**
 * Remembers how recent SQL texts split and classify. Drivers send the same
 * texts over and over (BEGIN and COMMIT, the unnamed Parse of every
 * extended-protocol query, health checks), and a lookup costs a fraction of
 * lexing the text again. Texts that differ only in number literals share
 * one entry under their shape (see number-shape.ts). The results are
 * shared: treat them as read-only.
 *
 * Entries are read with standard_conforming_strings on. A text without a
 * backslash reads the same with it off; one with a backslash, in a session
 * that has it off, is split afresh (such sessions are rare).
 */
import { lastSplitHadLiterals, splitStatements, type StatementInfo } from './classify.js';
import { numberShape } from './number-shape.js';

const LIMIT = 1024;
/** Texts longer than this are rarely repeated verbatim; not worth the memory. */
const MAX_TEXT = 4096;

const cache = new Map<string, readonly StatementInfo[]>();

/** A shape's statements and where each one's text is, as [start, end) pairs; null when the shape cannot stand for its texts. */
interface ShapeEntry {
  statements: readonly StatementInfo[];
  spans: number[];
}

const shapes = new Map<string, ShapeEntry | null>();

export function splitStatementsCached(sql: string, standardConformingStrings = true): readonly StatementInfo[] {
  if (!standardConformingStrings && sql.includes('\\')) return splitStatements(sql, false);
  if (sql.length > MAX_TEXT) return splitStatements(sql);
  // A text with number literals is looked up by its shape alone: its own text
  // is rarely sent twice, and each lookup hashes the whole string.
  const shape = numberShape(sql);
  if (shape !== null) {
    let entry = shapes.get(shape);
    if (entry === undefined) {
      entry = shapeEntry(shape);
      remember(shapes, shape, entry);
    }
    if (entry !== null) return withTexts(entry, sql);
  }
  const hit = cache.get(sql);
  if (hit !== undefined) return hit;
  const statements = splitStatements(sql);
  // A text with other literals in it (`WHERE name = 'x'`) is rarely sent twice:
  // remembering it would only churn the cache.
  if (!lastSplitHadLiterals()) remember(cache, sql, statements);
  return statements;
}

function remember<V>(map: Map<string, V>, key: string, value: V): void {
  // Starting over when full costs less per query than evicting one by one.
  if (map.size >= LIMIT) map.clear();
  map.set(key, value);
}

/** One statement, e.g. an extended-protocol Parse (the server takes only one). */
export function classifyStatementCached(sql: string, standardConformingStrings = true): StatementInfo {
  const all = splitStatementsCached(sql, standardConformingStrings);
  return all.length === 1 ? all[0] : { ...all[0], text: sql.trim(), sentText: sql.trim() };
}

function shapeEntry(shape: string): ShapeEntry | null {
  const statements = splitStatements(shape);
  const spans: number[] = [];
  let from = 0;
  for (const info of statements) {
    // An operation named from the text itself (a statement not starting with a word) could hold a masked digit.
    if (/\d/.test(info.operation)) return null;
    // A shape has no comments (number-shape.ts): the text as sent is the statement's text.
    if (info.sentText !== info.text) return null;
    // Between statements there is only white space and semicolons: the first match from here is this statement.
    const start = shape.indexOf(info.text, from);
    if (start < 0) return null;
    spans.push(start, start + info.text.length);
    from = start + info.text.length;
  }
  return { statements, spans };
}

/** The shape's statements with the texts of `sql`, which has the same length and layout. */
function withTexts(entry: ShapeEntry, sql: string): StatementInfo[] {
  const { statements, spans } = entry;
  const out = new Array<StatementInfo>(statements.length);
  for (let i = 0; i < statements.length; i++) {
    const text = sql.slice(spans[2 * i], spans[2 * i + 1]);
    out[i] = { ...statements[i], text, sentText: text };
  }
  return out;
}
