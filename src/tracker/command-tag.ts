/**
 * Command tags of CommandComplete, e.g. `INSERT 0 3`, `UPDATE 2`, `SELECT 10`.
 * https://www.postgresql.org/docs/current/protocol-message-formats.html#PROTOCOL-MESSAGE-FORMATS-COMMANDCOMPLETE
 */

const COUNTED = new Set(['INSERT', 'UPDATE', 'DELETE', 'MERGE', 'SELECT', 'MOVE', 'FETCH', 'COPY']);

/** The row count a tag carries, or null for tags without one (`BEGIN`, `CREATE TABLE`). */
export function rowsOfTag(tag: string): number | null {
  const space = tag.indexOf(' ');
  if (space < 0) return null;
  const verb = tag.slice(0, space);
  if (!COUNTED.has(verb)) return null;
  const last = tag.lastIndexOf(' ');
  const n = Number(tag.slice(last + 1));
  return Number.isFinite(n) ? n : null;
}

/** The verb of a tag: `INSERT 0 1` → `INSERT`, `CREATE TABLE` → `CREATE TABLE`. */
export function verbOfTag(tag: string): string {
  const space = tag.indexOf(' ');
  if (space < 0) return tag;
  return rowsOfTag(tag) === null ? tag : tag.slice(0, space);
}

/** Tags that say data changed. */
export function isWriteTag(tag: string): boolean {
  return (
    tag.startsWith('INSERT ') ||
    tag.startsWith('UPDATE ') ||
    tag.startsWith('DELETE ') ||
    tag.startsWith('MERGE ') ||
    tag === 'TRUNCATE TABLE'
  );
}
