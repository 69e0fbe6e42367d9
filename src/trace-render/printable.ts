/**
 * Text from a trace made safe to print on a terminal. Every string of a
 * record came from somewhere a client controls (SQL, application_name,
 * sqlcommenter tags, error messages that quote values), and a terminal
 * obeys control characters: ESC starts sequences that move the cursor,
 * clear the screen, set the window title or write to the clipboard; BEL
 * ends some of them; C1 characters (U+0080–U+009F) act as ESC sequences on
 * some terminals; bidi controls (U+202E RIGHT-TO-LEFT OVERRIDE …) reorder
 * what is shown, so text reads other than it is.
 *
 * Each such character is replaced by a visible escape: `\n`, `\r`, `\t`,
 * `\x1b` (below U+0100) or `\u202e`. A backslash already in the text is
 * left as it is: `\x1b` in a transcript may also be those four characters
 * as sent, which is the lesser harm than doubling every backslash of SQL.
 */

/** C0 controls, DEL, C1 controls, the bidi marks, embeddings, overrides and isolates, line and paragraph separators. */
const UNSAFE = /[\u0000-\u001f\u007f-\u009f\u061c\u200e\u200f\u2028-\u202e\u2066-\u2069]/g;
/** The same, but for the tab and line breaks of multi-line SQL, which the transcript folds into spaces. */
const UNSAFE_IN_SQL = /[\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f-\u009f\u061c\u200e\u200f\u2028-\u202e\u2066-\u2069]/g;

const NAMED: Record<string, string> = { '\n': '\\n', '\r': '\\r', '\t': '\\t' };

function escape(char: string): string {
  const named = NAMED[char];
  if (named !== undefined) return named;
  const code = char.charCodeAt(0);
  return code < 0x100 ? `\\x${code.toString(16).padStart(2, '0')}` : `\\u${code.toString(16).padStart(4, '0')}`;
}

/** A single-line value (a name, a tag, an error message): every control character escaped, line breaks too. */
export function printable(text: string): string {
  UNSAFE.lastIndex = 0;
  return UNSAFE.test(text) ? text.replace(UNSAFE, escape) : text;
}

/**
 * SQL text: escaped like printable(), but tabs and line breaks are kept for
 * the transcript, which prints SQL on one line with each run of whitespace
 * folded into one space.
 */
export function printableSql(text: string): string {
  UNSAFE_IN_SQL.lastIndex = 0;
  return UNSAFE_IN_SQL.test(text) ? text.replace(UNSAFE_IN_SQL, escape) : text;
}
