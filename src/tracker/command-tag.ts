/**
 * Command tags of CommandComplete, e.g. `INSERT 0 3`, `UPDATE 2`, `SELECT 10`.
 * https://www.postgresql.org/docs/current/protocol-message-formats.html#PROTOCOL-MESSAGE-FORMATS-COMMANDCOMPLETE
 */

/** rowsOfTag of the tags seen lately: the same few end nearly every statement. */
const rowsOfRecentTags = new Map<string, number | null>();
const RECENT_TAGS = 256;

/** The row count a tag carries, or null for tags without one (`BEGIN`, `CREATE TABLE`). */
export function rowsOfTag(tag: string): number | null {
  const known = rowsOfRecentTags.get(tag);
  if (known !== undefined) return known;
  const rows = readRows(tag);
  if (rowsOfRecentTags.size >= RECENT_TAGS) rowsOfRecentTags.clear();
  rowsOfRecentTags.set(tag, rows);
  return rows;
}

function readRows(tag: string): number | null {
  // The digits at the end, read in place: a tag ends every statement.
  let i = tag.length;
  let rows = 0;
  for (let scale = 1; i > 0; i--, scale *= 10) {
    const digit = tag.charCodeAt(i - 1) - 48;
    if (digit < 0 || digit > 9) break;
    rows += digit * scale;
  }
  if (i === tag.length || tag.charCodeAt(i - 1) !== 32) return null;
  return startsWithOneOf(tag, COUNTED) ? rows : null;
}

/**
 * Tag prefixes by their first letter: every statement's tag is checked
 * against a set, most of them SELECT, and the first letter rules out most
 * prefixes before any comparison.
 */
type PrefixesByLetter = ReadonlyMap<number, readonly string[]>;

function byFirstLetter(prefixes: readonly string[]): PrefixesByLetter {
  const map = new Map<number, string[]>();
  for (const prefix of prefixes) {
    const letter = prefix.charCodeAt(0);
    map.set(letter, [...(map.get(letter) ?? []), prefix]);
  }
  return map;
}

function startsWithOneOf(tag: string, prefixes: PrefixesByLetter): boolean {
  const candidates = prefixes.get(tag.charCodeAt(0));
  if (candidates === undefined) return false;
  for (let i = 0; i < candidates.length; i++) if (tag.startsWith(candidates[i])) return true;
  return false;
}

/** Verbs whose tag ends with a row count. */
const COUNTED = byFirstLetter(['SELECT ', 'INSERT ', 'UPDATE ', 'DELETE ', 'MERGE ', 'MOVE ', 'FETCH ', 'COPY ']);
/** Verbs whose tag says data changed (TRUNCATE's tag, which has no count, is checked whole). */
const WRITES = byFirstLetter(['INSERT ', 'UPDATE ', 'DELETE ', 'MERGE ']);

/** The verb of a tag: `INSERT 0 1` → `INSERT`, `CREATE TABLE` → `CREATE TABLE`. */
export function verbOfTag(tag: string): string {
  const space = tag.indexOf(' ');
  if (space < 0) return tag;
  return rowsOfTag(tag) === null ? tag : tag.slice(0, space);
}

/** Tags that say data changed. */
export function isWriteTag(tag: string): boolean {
  return startsWithOneOf(tag, WRITES) || tag === 'TRUNCATE TABLE';
}
