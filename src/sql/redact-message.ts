/**
 * Blanks the values a server error message quotes, for traces that keep no
 * literals: `invalid input syntax for type integer: "secret133"` becomes
 * `invalid input syntax for type integer: "?"`.
 *
 * PostgreSQL's message style puts double quotes around whatever the message
 * names, values and object names alike, and does not escape quotes inside
 * them. A quoted part right after a word that names a kind of object
 * (`relation "orders"`, `constraint "orders_pkey"`, `column "email"`) is an
 * object name and stays, as identifiers stay in redacted SQL. Any other
 * quoted part is a value: it is blanked through the message's last quote, so
 * a value holding quotes of its own cannot end early and leave the rest in
 * clear. Text a routine raises itself (RAISE EXCEPTION 'user %', name) has
 * no quotes to go by and stays as it is.
 */

/** Words after which PostgreSQL's messages quote an object's name. */
const OBJECT_KINDS = new Set([
  'aggregate',
  'attribute',
  'channel',
  'class',
  'collation',
  'column',
  'constraint',
  'conversion',
  'cursor',
  'database',
  'domain',
  'encoding',
  'extension',
  'family',
  'function',
  'index',
  'language',
  'mapping',
  'operator',
  'option',
  'parameter',
  'policy',
  'portal',
  'procedure',
  'publication',
  'relation',
  'role',
  'routine',
  'rule',
  'savepoint',
  'schema',
  'sequence',
  'server',
  'statement',
  'statistics',
  'subscription',
  'table',
  'tablespace',
  'trigger',
  'type',
  'user',
  'variable',
  'view',
  'wrapper',
]);

export function redactMessage(message: string): string {
  let q = message.indexOf('"');
  if (q < 0) return message;
  let out = '';
  let copied = 0;
  while (q >= 0) {
    if (OBJECT_KINDS.has(wordBefore(message, q))) {
      const close = message.indexOf('"', q + 1);
      if (close < 0) break; // an unterminated name: nothing follows it
      q = message.indexOf('"', close + 1);
      continue;
    }
    // A value: blanked through the last quote, after which no quote is left to look at.
    const last = message.lastIndexOf('"');
    out += message.slice(copied, q) + '"?"';
    copied = last > q ? last + 1 : message.length;
    break;
  }
  return out + message.slice(copied);
}

/** The word just before position `q`, lower case ('' if none). */
function wordBefore(message: string, q: number): string {
  let end = q;
  while (end > 0 && message.charCodeAt(end - 1) === 32) end--;
  let start = end;
  while (start > 0 && isLetter(message.charCodeAt(start - 1))) start--;
  return message.slice(start, end).toLowerCase();
}

function isLetter(c: number): boolean {
  return (c >= 65 && c <= 90) || (c >= 97 && c <= 122) || c === 95;
}

