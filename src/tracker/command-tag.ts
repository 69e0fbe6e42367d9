/**
 * Command tags of CommandComplete, e.g. `INSERT 0 3`, `UPDATE 2`, `SELECT 10`.
 * https://www.postgresql.org/docs/current/protocol-message-formats.html#PROTOCOL-MESSAGE-FORMATS-COMMANDCOMPLETE
 */

/** The row count a tag carries, or null for tags without one (`BEGIN`, `CREATE TABLE`). */
export function rowsOfTag(tag: string): number | null {
  const space = tag.indexOf(' ');
  if (space < 0 || !isCountedVerb(tag, space)) return null;
  // Read in place: a tag ends every statement, and slicing it costs more than this loop.
  const from = tag.lastIndexOf(' ') + 1;
  if (from === tag.length) return null;
  let n = 0;
  for (let i = from; i < tag.length; i++) {
    const digit = tag.charCodeAt(i) - 48;
    if (digit < 0 || digit > 9) return null;
    n = n * 10 + digit;
  }
  return n;
}

/** Whether the tag's first word, `verbLength` long, is one whose tag ends with a row count. */
function isCountedVerb(tag: string, verbLength: number): boolean {
  switch (verbLength) {
    case 4:
      return tag.startsWith('MOVE') || tag.startsWith('COPY');
    case 5:
      return tag.startsWith('MERGE') || tag.startsWith('FETCH');
    case 6:
      return tag.startsWith('SELECT') || tag.startsWith('INSERT') || tag.startsWith('UPDATE') || tag.startsWith('DELETE');
    default:
      return false;
  }
}

/** The verb of a tag: `INSERT 0 1` → `INSERT`, `CREATE TABLE` → `CREATE TABLE`. */
export function verbOfTag(tag: string): string {
  const space = tag.indexOf(' ');
  if (space < 0) return tag;
  return rowsOfTag(tag) === null ? tag : tag.slice(0, space);
}

/** Tags that say data changed. */
export function isWriteTag(tag: string): boolean {
  // By first letter: every statement's tag comes here, most of them SELECT.
  switch (tag.charCodeAt(0)) {
    case 73: // I
      return tag.startsWith('INSERT ');
    case 85: // U
      return tag.startsWith('UPDATE ');
    case 68: // D
      return tag.startsWith('DELETE ');
    case 77: // M
      return tag.startsWith('MERGE ');
    case 84: // T
      return tag === 'TRUNCATE TABLE';
    default:
      return false;
  }
}
