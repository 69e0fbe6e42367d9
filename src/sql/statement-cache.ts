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
import { literalSpans, Shape, shapeKey, shapeKeyOfBytes } from './number-shape.js';

const LIMIT = 1024;
/** Texts longer than this are rarely repeated verbatim; not worth the memory. */
const MAX_TEXT = 4096;

const cache = new Map<string, readonly StatementInfo[]>();

/** A shape, and how texts of it split. */
interface ShapeEntry {
  shape: Shape;
  /** Null when the shape cannot stand for its texts. */
  split: ShapeSplit | null;
}

/** A shape's statements and where each one's text is, as [start, end) pairs. */
interface ShapeSplit {
  statements: readonly StatementInfo[];
  spans: number[];
  /**
   * Whether its statements can stand for those of its texts (ShapedQuery):
   * not when one is read for its words (a SET read for
   * standard_conforming_strings, string-syntax.ts), where a digit is a value.
   */
  lazy: boolean;
}

/** Shapes by key (number-shape.ts); most keys have one. */
const shapes = new Map<number, ShapeEntry[]>();
/**
 * Shapes kept per key. A key is a few characters of a text, so shapes can
 * share one: pgbench's TPC-B, with its literals of every length, puts up to
 * eight on some keys.
 */
const SHAPES_PER_KEY = 16;

export function splitStatementsCached(sql: string, standardConformingStrings = true): readonly StatementInfo[] {
  if (!standardConformingStrings && sql.includes('\\')) return splitStatements(sql, false);
  if (sql.length > MAX_TEXT) return splitStatements(sql);
  // A text with number literals is looked up by its shape: its own text is
  // rarely sent twice. Only a text that matches no shape known, and is not
  // remembered itself, is read for its literals (a text can have digits and
  // no number literal: `SAVEPOINT s1`).
  const key = shapeKey(sql);
  const known = knownShape(key, sql);
  if (known !== null && known.split !== null) return withTexts(known.split, sql);
  const hit = cache.get(sql);
  if (hit !== undefined) return hit;
  if (known === null) {
    const made = newShape(key, sql);
    if (made !== null && made.split !== null) return withTexts(made.split, sql);
  }
  const statements = splitStatements(sql);
  // A text with other literals in it (`WHERE name = 'x'`) is rarely sent twice:
  // remembering it would only churn the cache.
  if (!lastSplitHadLiterals()) remember(cache, sql, statements);
  return statements;
}

/**
 * A Query's text of a known shape, still in bytes, `buf[start, end)`: its
 * statements are the shape's, and its text is made only if someone reads
 * it (ShapedQuery). Null when it has no known shape (decode it and split
 * that), or has a literal too long to keep as a number.
 * A shape holds no comment and no backslash, so neither a sqlcommenter tag
 * nor standard_conforming_strings bears on a text that has one.
 */
export function knownShapeOf(buf: Uint8Array, start: number, end: number): ShapedQuery | null {
  if (end - start > MAX_TEXT) return null;
  const entries = shapes.get(shapeKeyOfBytes(buf, start, end));
  if (entries === undefined) return null;
  for (let i = 0; i < entries.length; i++) {
    const entry = entries[i];
    if (!entry.shape.matchesBytes(buf, start, end)) continue;
    if (entry.split === null || !entry.split.lazy) return null;
    moveForward(entries, i);
    const values = entry.shape.literalValues(buf, start);
    return values === null ? null : new ShapedQuery(entry.shape, entry.split, values);
  }
  return null;
}

/**
 * A Query recognised by its shape (knownShapeOf). Its statements are the
 * shape's own, shared: their `text` and `sentText` are the shape's, with
 * zeros for digits. The query's own texts are statementText()'s.
 */
export class ShapedQuery {
  private text: string | null = null;

  constructor(
    private readonly shape: Shape,
    private readonly split: ShapeSplit,
    private readonly values: readonly number[],
  ) {}

  get statements(): readonly StatementInfo[] {
    return this.split.statements;
  }

  /** The text of statement `index` as the client sent it. */
  statementText(index: number): string {
    const text = (this.text ??= this.shape.render(this.values));
    const { spans } = this.split;
    return text.slice(spans[2 * index], spans[2 * index + 1]);
  }

  /** statementText(index).length, without making the text. */
  statementLength(index: number): number {
    const { spans } = this.split;
    return spans[2 * index + 1] - spans[2 * index];
  }

  /** Whether statementText() is always its own JSON string body: no quote, backslash or control in it. */
  get jsonSafe(): boolean {
    return this.shape.jsonSafe;
  }

  /**
   * statementText(index) as bytes into `out` at `pos`, without making the
   * string (a trace record's text); returns where it ends.
   */
  writeStatementText(index: number, out: Uint8Array, pos: number): number {
    const { spans } = this.split;
    return this.shape.renderInto(this.values, spans[2 * index], spans[2 * index + 1], out, pos);
  }
}

function remember<K, V>(map: Map<K, V>, key: K, value: V): void {
  // Starting over when full costs less per query than evicting one by one.
  if (map.size >= LIMIT) map.clear();
  map.set(key, value);
}

/** One statement, e.g. an extended-protocol Parse (the server takes only one). */
export function classifyStatementCached(sql: string, standardConformingStrings = true): StatementInfo {
  const all = splitStatementsCached(sql, standardConformingStrings);
  return all.length === 1 ? all[0] : { ...all[0], text: sql.trim(), sentText: sql.trim() };
}

/**
 * The entry of a shape already known that the text has, if any. A shape
 * found moves one place towards the front of its key's list, so the shapes
 * sent most come to be tried first: a text whose literals vary in length
 * (an account number of 1 to 7 digits) has many shapes, but a few of them
 * most of the time.
 */
function knownShape(key: number, sql: string): ShapeEntry | null {
  const entries = shapes.get(key);
  if (entries === undefined) return null;
  for (let i = 0; i < entries.length; i++) {
    const entry = entries[i];
    if (!entry.shape.matches(sql)) continue;
    moveForward(entries, i);
    return entry;
  }
  return null;
}

function moveForward(entries: ShapeEntry[], i: number): void {
  if (i === 0) return;
  const entry = entries[i];
  entries[i] = entries[i - 1];
  entries[i - 1] = entry;
}

/** The entry of the text's shape, made now; null when the text has no shape. */
function newShape(key: number, sql: string): ShapeEntry | null {
  const spans = literalSpans(sql);
  if (spans === null) return null;
  const shape = new Shape(sql, spans);
  const entry: ShapeEntry = { shape, split: shapeSplit(shape.text) };
  let entries = shapes.get(key);
  if (entries === undefined) {
    entries = [];
    remember(shapes, key, entries);
  }
  // Last, behind the shapes that earned their place; when the list is full, in place of the last.
  if (entries.length < SHAPES_PER_KEY) entries.push(entry);
  else entries[entries.length - 1] = entry;
  return entry;
}

function shapeSplit(shape: string): ShapeSplit | null {
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
  return { statements, spans, lazy: statements.every((info) => !READ_FOR_WORDS.has(info.operation)) };
}

/** Statements whose text the tracker reads beyond their classification (string-syntax.ts). */
const READ_FOR_WORDS = new Set(['SET', 'RESET', 'DISCARD']);

/** The shape's statements with the texts of `sql`, which has the same length and layout. */
function withTexts(entry: ShapeSplit, sql: string): StatementInfo[] {
  const { statements, spans } = entry;
  const out = new Array<StatementInfo>(statements.length);
  for (let i = 0; i < statements.length; i++) {
    const text = sql.slice(spans[2 * i], spans[2 * i + 1]);
    out[i] = withText(statements[i], text);
  }
  return out;
}

/**
 * A copy of `info` with its own text. Field by field rather than by spread:
 * every copy then has the one object layout, and it is made for every query.
 */
function withText(info: StatementInfo, text: string): StatementInfo {
  return {
    text,
    sentText: text,
    operation: info.operation,
    txControl: info.txControl,
    savepoint: info.savepoint,
    chain: info.chain,
    write: info.write,
    lockingRead: info.lockingRead,
    nonTransactional: info.nonTransactional,
    standardConformingStrings: info.standardConformingStrings,
  };
}
