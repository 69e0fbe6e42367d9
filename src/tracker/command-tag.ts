/**
 * Command tags of CommandComplete, e.g. `INSERT 0 3`, `UPDATE 2`, `SELECT 10`.
 * https://www.postgresql.org/docs/current/protocol-message-formats.html#PROTOCOL-MESSAGE-FORMATS-COMMANDCOMPLETE
 */

/** The row count a tag carries, or null for tags without one (`BEGIN`, `CREATE TABLE`). */
export function rowsOfTag(tag: string): number | null {
  // The digits at the end, read in place: a tag ends every statement.
  let i = tag.length;
  let rows = 0;
  for (let scale = 1; i > 0; i--, scale *= 10) {
    const digit = tag.charCodeAt(i - 1) - 48;
    if (digit < 0 || digit > 9) break;
    rows += digit * scale;
  }
  if (i === tag.length || tag.charCodeAt(i - 1) !== 32) return null;
  return hasCountedVerb(tag) ? rows : null;
}

/** Whether the tag's first word is one whose tag ends with a row count; told by its first letter first. */
function hasCountedVerb(tag: string): boolean {
  switch (tag.charCodeAt(0)) {
    case 83: // S
      return tag.startsWith('SELECT ');
    case 73: // I
      return tag.startsWith('INSERT ');
    case 85: // U
      return tag.startsWith('UPDATE ');
    case 68: // D
      return tag.startsWith('DELETE ');
    case 77: // M
      return tag.startsWith('MERGE ') || tag.startsWith('MOVE ');
    case 70: // F
      return tag.startsWith('FETCH ');
    case 67: // C
      return tag.startsWith('COPY ');
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
