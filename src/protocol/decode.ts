/**
 * Decoders for the few message types txproxy must look inside. Each takes the
 * whole message (`buf[start, end)`, type byte and length included) and reads
 * only the fields it needs. Formats:
 * https://www.postgresql.org/docs/current/protocol-message-formats.html
 */
import { StartupCode, type TxStatus } from './codes.js';
import { RecentStrings } from './recent-strings.js';
import { utf8Slice } from './buffer-codecs.js';

const BODY = 5;

/** Reads a NUL-terminated string at `pos`; returns it and the position after the NUL. */
export function readCString(buf: Buffer, pos: number, end: number): [string, number] {
  const nul = nulAfter(buf, pos, end);
  return [utf8Slice(buf, pos, nul), nul + 1];
}

/** Where the string at `pos` ends: at its first NUL, as the server reads it. */
function nulAfter(buf: Buffer, pos: number, end: number): number {
  const nul = buf.indexOf(0, pos);
  if (nul < 0 || nul >= end) throw new ProtocolDecodeError('string is not NUL-terminated');
  return nul;
}

export class ProtocolDecodeError extends Error {
  override name = 'ProtocolDecodeError';
}

/** Query ('Q'): the SQL text. */
export function decodeQuery(buf: Buffer, start: number, end: number): string {
  return recentString(recentQueries, buf, start + BODY, end);
}

/**
 * Where a Query's text starts; it ends at the message's last byte, its NUL,
 * when the message is well formed (decodeQuery checks that).
 */
export function queryTextStart(start: number): number {
  return start + BODY;
}

/** `buf[start, end)` as UTF-8 text. */
export function textAt(buf: Uint8Array, start: number, end: number): string {
  return utf8Slice(buf as Buffer, start, end);
}

/** Parse ('P'): statement name and SQL text (parameter types are not needed). */
export function decodeParse(buf: Buffer, start: number, end: number): { name: string; sql: string } {
  const [name, next] = readCString(buf, start + BODY, end);
  const [sql] = readCString(buf, next, end);
  return { name, sql };
}

/** Bind ('B'): portal and statement names; parameter values are never read. */
export function decodeBind(buf: Buffer, start: number, end: number): { portal: string; statement: string } {
  const [portal, next] = readCString(buf, start + BODY, end);
  const [statement] = readCString(buf, next, end);
  return { portal, statement };
}

/** Execute ('E'): portal name and the row limit (0 = all). */
export function decodeExecute(buf: Buffer, start: number, end: number): { portal: string; maxRows: number } {
  const [portal, next] = readCString(buf, start + BODY, end);
  const maxRows = next + 4 <= end ? buf.readInt32BE(next) : 0;
  return { portal, maxRows };
}

/** Close ('C') and Describe ('D'): 'S' statement or 'P' portal, and its name. */
export function decodeTarget(buf: Buffer, start: number, end: number): { target: 'S' | 'P'; name: string } {
  const target = buf[start + BODY] === 0x50 ? 'P' : 'S';
  const [name] = readCString(buf, start + BODY + 1, end);
  return { target, name };
}

/** Short texts sent over and over (BEGIN, COMMIT, a health check) and command tags: see RecentStrings. */
const recentQueries = new RecentStrings(textAt);
const recentTags = new RecentStrings(textAt);

/** CommandComplete ('C'): the command tag, e.g. `INSERT 0 1`. */
export function decodeCommandComplete(buf: Buffer, start: number, end: number): string {
  return recentString(recentTags, buf, start + BODY, end);
}

/** The NUL-terminated string at `from`, the message's last: one of `recent` if its bytes are. */
function recentString(recent: RecentStrings, buf: Buffer, from: number, end: number): string {
  // A well-formed message ends with the string's NUL. A recent string's bytes hold no NUL: matching them, these hold none either.
  const known = buf[end - 1] === 0 ? recent.find(buf, from, end - 1) : null;
  return known ?? recent.add(buf, from, nulAfter(buf, from, end));
}

/** ReadyForQuery ('Z'): the transaction status byte. */
export function decodeReadyForQuery(buf: Buffer, start: number): TxStatus {
  return String.fromCharCode(buf[start + BODY]) as TxStatus;
}

/** Fields of ErrorResponse / NoticeResponse, keyed by their one-letter codes. */
export interface ErrorFields {
  /** Localized severity (S); V is the non-localized one. */
  severity: string;
  code: string;
  message: string;
  detail?: string;
  hint?: string;
  position?: string;
  where?: string;
  schema?: string;
  table?: string;
  column?: string;
  constraint?: string;
  /** The non-localized severity, when the server sent it (9.6+). */
  severityV?: string;
}

const FIELD_NAMES: Record<string, keyof ErrorFields> = {
  S: 'severity',
  V: 'severityV',
  C: 'code',
  M: 'message',
  D: 'detail',
  H: 'hint',
  P: 'position',
  W: 'where',
  s: 'schema',
  t: 'table',
  c: 'column',
  n: 'constraint',
};

/** ErrorResponse ('E') / NoticeResponse ('N'). Unknown fields are skipped, as the protocol requires. */
export function decodeErrorFields(buf: Buffer, start: number, end: number): ErrorFields {
  const fields: ErrorFields = { severity: '', code: '', message: '' };
  let pos = start + BODY;
  while (pos < end && buf[pos] !== 0) {
    const key = String.fromCharCode(buf[pos]);
    const [value, next] = readCString(buf, pos + 1, end);
    const name = FIELD_NAMES[key];
    if (name !== undefined) fields[name] = value;
    pos = next;
  }
  return fields;
}

/** BackendKeyData ('K'): pid and the secret key (4 bytes in 3.0, up to 256 in 3.2). */
export function decodeBackendKeyData(buf: Buffer, start: number, end: number): { pid: number; key: Buffer } {
  const pid = buf.readInt32BE(start + BODY);
  return { pid, key: Buffer.from(buf.subarray(start + BODY + 4, end)) };
}

/** ParameterStatus ('S'): name and value. */
export function decodeParameterStatus(buf: Buffer, start: number, end: number): { name: string; value: string } {
  const [name, next] = readCString(buf, start + BODY, end);
  const [value] = readCString(buf, next, end);
  return { name, value };
}

/** Authentication ('R'): the request code. */
export function decodeAuthCode(buf: Buffer, start: number): number {
  return buf.readInt32BE(start + BODY);
}

/** AuthenticationSASL ('R', code 10): the offered mechanisms. */
export function decodeSaslMechanisms(buf: Buffer, start: number, end: number): string[] {
  const mechanisms: string[] = [];
  let pos = start + BODY + 4;
  while (pos < end && buf[pos] !== 0) {
    const [name, next] = readCString(buf, pos, end);
    mechanisms.push(name);
    pos = next;
  }
  return mechanisms;
}

/** A startup-phase packet: int32 length, int32 code, then code-specific data. */
export type StartupPacket =
  | { kind: 'ssl' }
  | { kind: 'gssenc' }
  | { kind: 'cancel'; pid: number; key: Buffer }
  | { kind: 'startup'; major: number; minor: number; params: Record<string, string> }
  | { kind: 'unknown'; code: number };

/** Decodes a whole startup packet (length prefix included). */
export function decodeStartupPacket(buf: Buffer): StartupPacket {
  const code = buf.readInt32BE(4);
  if (code === StartupCode.SSL) return { kind: 'ssl' };
  if (code === StartupCode.GSSENC) return { kind: 'gssenc' };
  if (code === StartupCode.Cancel) {
    if (buf.length < 12) throw new ProtocolDecodeError('CancelRequest is too short');
    return { kind: 'cancel', pid: buf.readInt32BE(8), key: Buffer.from(buf.subarray(12)) };
  }
  const major = code >>> 16;
  const minor = code & 0xffff;
  if (major !== 3) return { kind: 'unknown', code };
  const params: Record<string, string> = {};
  let pos = 8;
  while (pos < buf.length && buf[pos] !== 0) {
    const [name, next] = readCString(buf, pos, buf.length);
    const [value, after] = readCString(buf, next, buf.length);
    params[name] = value;
    pos = after;
  }
  return { kind: 'startup', major, minor, params };
}
