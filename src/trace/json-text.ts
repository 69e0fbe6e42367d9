/**
 * JSON text for the trace: JSON.stringify's, with the characters a
 * terminal acts on escaped too. The trace writer's statement and
 * transaction records are written as bytes (json-bytes.ts), with these
 * for the values that have something to escape.
 */

/**
 * Characters that JSON.stringify would escape in a string, and those it
 * leaves raw that a terminal acts on (see terminalSafeJson).
 */
const NEEDS_ESCAPE = /["\\\u0000-\u001f\u007f-\u009f\u061c\u200e\u200f\u2028-\u202e\u2066-\u2069\ud800-\udfff]/;

/**
 * DEL, C1 controls (U+0080–U+009F, which some terminals take as ESC
 * sequences) and bidi controls (U+202E …), which JSON.stringify writes
 * raw: `tail -f` of a trace file must not hand a client's bytes to the
 * terminal. They can only stand inside a JSON string, where `\uXXXX` is
 * the same value to any JSON reader.
 */
const TERMINAL_CONTROL = /[\u007f-\u009f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]/g;

/** JSON text with the characters of TERMINAL_CONTROL written as `\uXXXX`. */
export function terminalSafeJson(json: string): string {
  TERMINAL_CONTROL.lastIndex = 0;
  if (!TERMINAL_CONTROL.test(json)) return json;
  return json.replace(TERMINAL_CONTROL, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
}

/** A JSON string literal. */
export function jsonString(value: string): string {
  return NEEDS_ESCAPE.test(value) ? terminalSafeJson(JSON.stringify(value)) : `"${value}"`;
}
