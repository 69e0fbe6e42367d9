/**
 * Encoders for the backend messages txproxy sends on its own: errors,
 * notices, ReadyForQuery, CommandComplete and a rewritten AuthenticationSASL.
 * Frontend messages are built with pg-protocol's `serialize`.
 */
import { Backend, StartupCode, type TxStatus } from './codes.js';

function message(type: number, body: Buffer): Buffer {
  const out = Buffer.allocUnsafe(5 + body.length);
  out[0] = type;
  out.writeInt32BE(4 + body.length, 1);
  body.copy(out, 5);
  return out;
}

function cstring(value: string): Buffer {
  return Buffer.from(value + '\0', 'utf8');
}

export type Severity = 'ERROR' | 'FATAL' | 'PANIC' | 'WARNING' | 'NOTICE' | 'DEBUG' | 'INFO' | 'LOG';

/** What txproxy says in an ErrorResponse or NoticeResponse. */
export interface Report {
  severity: Severity;
  /** A standard SQLSTATE. */
  code: string;
  message: string;
  detail?: string;
  hint?: string;
}

function reportFields(report: Report): Buffer {
  const parts: Buffer[] = [
    Buffer.from('S'),
    cstring(report.severity),
    Buffer.from('V'),
    cstring(report.severity),
    Buffer.from('C'),
    cstring(report.code),
    Buffer.from('M'),
    cstring(report.message),
  ];
  if (report.detail) parts.push(Buffer.from('D'), cstring(report.detail));
  if (report.hint) parts.push(Buffer.from('H'), cstring(report.hint));
  parts.push(Buffer.from([0]));
  return Buffer.concat(parts);
}

export function errorResponse(report: Report): Buffer {
  return message(Backend.ErrorResponse, reportFields(report));
}

export function noticeResponse(report: Report): Buffer {
  return message(Backend.NoticeResponse, reportFields(report));
}

const READY: Record<TxStatus, Buffer> = {
  I: Buffer.from([Backend.ReadyForQuery, 0, 0, 0, 5, 0x49]),
  T: Buffer.from([Backend.ReadyForQuery, 0, 0, 0, 5, 0x54]),
  E: Buffer.from([Backend.ReadyForQuery, 0, 0, 0, 5, 0x45]),
};

/** ReadyForQuery with the given status; shared immutable buffers. */
export function readyForQuery(status: TxStatus): Buffer {
  return READY[status];
}

export function commandComplete(tag: string): Buffer {
  return message(Backend.CommandComplete, cstring(tag));
}

/** AuthenticationSASL offering exactly `mechanisms`. */
export function authenticationSasl(mechanisms: string[]): Buffer {
  const code = Buffer.alloc(4);
  code.writeInt32BE(10, 0);
  return message(Backend.Authentication, Buffer.concat([code, ...mechanisms.map(cstring), Buffer.from([0])]));
}

/** A CancelRequest with a key of any length (protocol 3.2 keys are up to 256 bytes). */
export function cancelRequest(pid: number, key: Buffer): Buffer {
  const packet = Buffer.alloc(12 + key.length);
  packet.writeInt32BE(packet.length, 0);
  packet.writeInt32BE(StartupCode.Cancel, 4);
  packet.writeInt32BE(pid, 8);
  key.copy(packet, 12);
  return packet;
}

/** The one-byte answers to SSLRequest and GSSENCRequest. */
export const SSL_ACCEPT = Buffer.from('S');
export const SSL_REFUSE = Buffer.from('N');

/** ParameterStatus: a run-time parameter's current value. */
export function parameterStatus(name: string, value: string): Buffer {
  return message(Backend.ParameterStatus, Buffer.concat([cstring(name), cstring(value)]));
}

/** BackendKeyData: the pid and secret key a client cancels with. */
export function backendKeyData(pid: number, key: Buffer): Buffer {
  const body = Buffer.alloc(4 + key.length);
  body.writeInt32BE(pid, 0);
  key.copy(body, 4);
  return message(Backend.BackendKeyData, body);
}

/** NegotiateProtocolVersion: the newest minor version supported and the protocol options not recognized. */
export function negotiateProtocolVersion(newestMinor: number, unsupported: string[]): Buffer {
  const head = Buffer.alloc(8);
  head.writeInt32BE(newestMinor, 0);
  head.writeInt32BE(unsupported.length, 4);
  return message(Backend.NegotiateProtocolVersion, Buffer.concat([head, ...unsupported.map(cstring)]));
}
