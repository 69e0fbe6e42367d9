/**
 * Recognizes the keywords the classifier looks for, without allocating: a
 * word of the query maps to its interned upper-case keyword, or to '' when
 * it is none of them. Upper-casing every word of every query instead showed
 * up as a cost of its own on the proxy's hot path.
 */

const KEYWORDS = [
  // transaction control
  'BEGIN', 'START', 'TRANSACTION', 'COMMIT', 'END', 'PREPARED', 'ABORT', 'ROLLBACK', 'WORK', 'TO',
  'SAVEPOINT', 'RELEASE', 'PREPARE', 'AND', 'CHAIN', 'NO',
  // reads and locking
  'SELECT', 'VALUES', 'TABLE', 'INTO', 'WITH', 'FOR', 'UPDATE', 'SHARE', 'KEY', 'DO', 'FROM', 'COPY',
  'EXPLAIN', 'ANALYZE', 'ANALYSE', 'VACUUM', 'LOCK',
  // writes and schema changes
  'INSERT', 'DELETE', 'MERGE', 'TRUNCATE', 'CREATE', 'ALTER', 'DROP', 'COMMENT', 'GRANT', 'REVOKE',
  'REINDEX', 'CLUSTER', 'REFRESH', 'SECURITY', 'IMPORT', 'CONCURRENTLY', 'VERBOSE', 'OR', 'REPLACE', 'CASE',
  // objects of CREATE / ALTER / DROP
  'INDEX', 'VIEW', 'SEQUENCE', 'SCHEMA', 'FUNCTION', 'PROCEDURE', 'TRIGGER', 'TYPE', 'DATABASE', 'ROLE',
  'USER', 'EXTENSION', 'DOMAIN', 'POLICY', 'PUBLICATION', 'SUBSCRIPTION', 'TABLESPACE', 'SYSTEM', 'RULE',
  'AGGREGATE', 'COLLATION', 'SERVER',
];

const MAX_LENGTH = 12;

function isLetter(c: number): boolean {
  return (c >= 65 && c <= 90) || (c >= 97 && c <= 122);
}

/** Case-folded hash of letters-only text; -1 for anything else. */
function hashOf(text: string, start: number, end: number): number {
  if (end - start > MAX_LENGTH) return -1;
  let h = 0;
  for (let i = start; i < end; i++) {
    const c = text.charCodeAt(i);
    if (!isLetter(c)) return -1;
    h = (Math.imul(h, 31) + (c & ~0x20)) | 0;
  }
  return h;
}

const byHash = new Map<number, string[]>();
for (const keyword of KEYWORDS) {
  const h = hashOf(keyword, 0, keyword.length);
  const list = byHash.get(h);
  if (list === undefined) byHash.set(h, [keyword]);
  else list.push(keyword);
}

function sameFolded(text: string, start: number, keyword: string): boolean {
  for (let i = 0; i < keyword.length; i++) {
    if ((text.charCodeAt(start + i) & ~0x20) !== keyword.charCodeAt(i)) return false;
  }
  return true;
}

/** The keyword `text[start, end)` is (upper case, interned), or ''. */
export function keywordAt(text: string, start: number, end: number): string {
  const h = hashOf(text, start, end);
  if (h === -1) return '';
  const candidates = byHash.get(h);
  if (candidates === undefined) return '';
  for (const keyword of candidates) {
    if (keyword.length === end - start && sameFolded(text, start, keyword)) return keyword;
  }
  return '';
}
