/**
 * Message type bytes of the PostgreSQL frontend/backend protocol, version 3.
 * https://www.postgresql.org/docs/current/protocol-message-formats.html
 *
 * The same letter means different things in each direction ('C' is Close from
 * the client and CommandComplete from the server), hence two tables.
 */
export const Frontend = {
  Bind: 0x42, // B
  Close: 0x43, // C
  CopyData: 0x64, // d
  CopyDone: 0x63, // c
  CopyFail: 0x66, // f
  Describe: 0x44, // D
  Execute: 0x45, // E
  Flush: 0x48, // H
  FunctionCall: 0x46, // F
  Parse: 0x50, // P
  Password: 0x70, // p (also SASLInitialResponse, SASLResponse, GSSResponse)
  Query: 0x51, // Q
  Sync: 0x53, // S
  Terminate: 0x58, // X
} as const;

export const Backend = {
  Authentication: 0x52, // R
  BackendKeyData: 0x4b, // K
  BindComplete: 0x32, // 2
  CloseComplete: 0x33, // 3
  CommandComplete: 0x43, // C
  CopyBothResponse: 0x57, // W
  CopyData: 0x64, // d
  CopyDone: 0x63, // c
  CopyInResponse: 0x47, // G
  CopyOutResponse: 0x48, // H
  DataRow: 0x44, // D
  EmptyQueryResponse: 0x49, // I
  ErrorResponse: 0x45, // E
  FunctionCallResponse: 0x56, // V
  NegotiateProtocolVersion: 0x76, // v
  NoData: 0x6e, // n
  NoticeResponse: 0x4e, // N
  NotificationResponse: 0x41, // A
  ParameterDescription: 0x74, // t
  ParameterStatus: 0x53, // S
  ParseComplete: 0x31, // 1
  PortalSuspended: 0x73, // s
  ReadyForQuery: 0x5a, // Z
  RowDescription: 0x54, // T
} as const;

/** Codes carried by the first packet, which has no type byte. */
export const StartupCode = {
  Cancel: 80877102,
  SSL: 80877103,
  GSSENC: 80877104,
  /** Protocol 3.0 (major 3 << 16 | minor 0). */
  Protocol30: 196608,
  /** Protocol 3.2, PostgreSQL 18: BackendKeyData's key becomes variable-length. */
  Protocol32: 196610,
} as const;

/** A first byte of 0x16 is a TLS ClientHello: PostgreSQL 17+ `sslnegotiation=direct`. */
export const TLS_HANDSHAKE_BYTE = 0x16;

/** PostgreSQL's own cap for the startup packet (MAX_STARTUP_PACKET_LENGTH). */
export const MAX_STARTUP_PACKET_LENGTH = 10000;

/** PostgreSQL's largest message (PQ_LARGE_MESSAGE_LIMIT = MaxAllocSize - 1). */
export const PG_MAX_MESSAGE_LENGTH = 0x3fffffff - 1;

/** Authentication request codes inside an 'R' message. */
export const AuthCode = {
  Ok: 0,
  CleartextPassword: 3,
  MD5Password: 5,
  GSS: 7,
  GSSContinue: 8,
  SSPI: 9,
  SASL: 10,
  SASLContinue: 11,
  SASLFinal: 12,
} as const;

/** Transaction status byte of ReadyForQuery. */
export type TxStatus = 'I' | 'T' | 'E';

export function typeName(type: number): string {
  return String.fromCharCode(type);
}
