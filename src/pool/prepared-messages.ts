/**
 * Byte-level reading and building of the frontend messages that name
 * prepared statements (Parse, Bind, Describe, Close), for renaming them to
 * server-side names. Only headers and names are read or rebuilt; the rest of
 * a message (a Parse's query and types, a Bind's parameters) is reused as a
 * view on the original buffer.
 * https://www.postgresql.org/docs/current/protocol-message-formats.html
 */
import { Frontend } from '../protocol/codes.js';
import { ProtocolDecodeError } from '../protocol/decode.js';

/** Index of the NUL ending the C string that starts at `pos`. */
function cstringEnd(buf: Buffer, pos: number, end: number): number {
  const nul = buf.indexOf(0, pos);
  if (nul < 0 || nul >= end) throw new ProtocolDecodeError('unterminated string in message');
  return nul;
}

/** A Parse: its statement name and its content (query, parameter count and type OIDs). */
export interface ParseParts {
  name: string;
  /** The Parse body after the name: what identifies the statement's text and types. */
  content: Buffer;
}

/** Reads a whole Parse message spanning `buf[start, end)`. */
export function readParse(buf: Buffer, start: number, end: number): ParseParts {
  const nul = cstringEnd(buf, start + 5, end);
  return { name: buf.toString('utf8', start + 5, nul), content: buf.subarray(nul + 1, end) };
}

/** A Bind: portal name, statement name and the rest of the body (formats, values, result formats). */
export interface BindParts {
  portal: Buffer;
  statement: string;
  rest: Buffer;
}

export function readBind(buf: Buffer, start: number, end: number): BindParts {
  const portalEnd = cstringEnd(buf, start + 5, end);
  const statementEnd = cstringEnd(buf, portalEnd + 1, end);
  return {
    portal: buf.subarray(start + 5, portalEnd),
    statement: buf.toString('utf8', portalEnd + 1, statementEnd),
    rest: buf.subarray(statementEnd + 1, end),
  };
}

/** Describe and Close: 'S' (statement) or 'P' (portal), and the name. */
export interface TargetParts {
  target: number;
  name: string;
}

export function readTarget(buf: Buffer, start: number, end: number): TargetParts {
  if (end - start < 7) throw new ProtocolDecodeError('Describe or Close message too short');
  const nul = cstringEnd(buf, start + 6, end);
  return { target: buf[start + 5], name: buf.toString('utf8', start + 6, nul) };
}

/** `P` + length + name + content, the content copied once into the new message. */
export function buildParse(name: string, content: Buffer): Buffer {
  const nameLength = Buffer.byteLength(name);
  const out = Buffer.allocUnsafe(5 + nameLength + 1 + content.length);
  out[0] = Frontend.Parse;
  out.writeInt32BE(out.length - 1, 1);
  out.write(name, 5, 'utf8');
  out[5 + nameLength] = 0;
  content.copy(out, 6 + nameLength);
  return out;
}

/**
 * The header of a Bind renamed to `statement`: type, length, portal and
 * statement name. The caller sends `rest` (a view on the client's bytes)
 * right after it, so the parameter values are never copied.
 */
export function buildBindHeader(portal: Buffer, statement: string, restLength: number): Buffer {
  const statementLength = Buffer.byteLength(statement);
  const headerLength = 5 + portal.length + 1 + statementLength + 1;
  const out = Buffer.allocUnsafe(headerLength);
  out[0] = Frontend.Bind;
  out.writeInt32BE(headerLength - 1 + restLength, 1);
  portal.copy(out, 5);
  out[5 + portal.length] = 0;
  out.write(statement, 6 + portal.length, 'utf8');
  out[headerLength - 1] = 0;
  return out;
}

/** Describe or Close of a statement or portal `name`. */
export function buildTarget(type: number, target: number, name: string): Buffer {
  const nameLength = Buffer.byteLength(name);
  const out = Buffer.allocUnsafe(7 + nameLength);
  out[0] = type;
  out.writeInt32BE(out.length - 1, 1);
  out[5] = target;
  out.write(name, 6, 'utf8');
  out[6 + nameLength] = 0;
  return out;
}

/** 'S' in Describe and Close. */
export const TARGET_STATEMENT = 0x53;
