/**
 * What a session reads of the protocol: the message types it hands to the
 * tracker (each whole, or only its head), and which authentication requests
 * wait for the client. Everything else streams through unread.
 */
import { AuthCode, Backend, Frontend } from '../protocol/codes.js';
import { Inspect } from '../protocol/message-scanner.js';

/** Client message types the tracker reads (see session-tracker.ts). */
export const CLIENT_INSPECT = flags([
  Frontend.Query,
  Frontend.Parse,
  Frontend.Bind,
  Frontend.Execute,
  Frontend.Sync,
  Frontend.Describe,
  Frontend.Close,
  Frontend.FunctionCall,
  Frontend.Terminate,
  // Only during authentication: the SCRAM channel-binding check (see onAuthenticationResponse).
  Frontend.Password,
  // Once per COPY: the tracker must know where copy-in data ends (see dropSyncsIgnoredByCopy).
  Frontend.CopyDone,
  Frontend.CopyFail,
]);
// Of these only the names are read: parameter values and arguments stream through, however large.
CLIENT_INSPECT[Frontend.Bind] = Inspect.head(2);
CLIENT_INSPECT[Frontend.FunctionCall] = Inspect.head(0);

/**
 * Transaction pooling renames prepared statements in Bind messages
 * (renamed-statements.ts), and a Bind of a name the client never prepared
 * is replaced whole: Binds are read whole there.
 */
export const CLIENT_INSPECT_RENAMING = CLIENT_INSPECT.slice();
CLIENT_INSPECT_RENAMING[Frontend.Bind] = Inspect.Whole;

/** Server message types the tracker reads; DataRow and CopyData only pass. */
export const SERVER_INSPECT = flags([
  Backend.CommandComplete,
  Backend.EmptyQueryResponse,
  Backend.PortalSuspended,
  Backend.ErrorResponse,
  Backend.ReadyForQuery,
  Backend.ParseComplete,
  Backend.BindComplete,
  Backend.CloseComplete,
  Backend.NoData,
  Backend.RowDescription,
  Backend.ParameterDescription,
  Backend.CopyInResponse,
  Backend.CopyOutResponse,
  Backend.CopyBothResponse,
  Backend.FunctionCallResponse,
  Backend.BackendKeyData,
  Backend.Authentication,
  Backend.ParameterStatus,
]);

function flags(types: number[]): Uint8Array {
  const table = new Uint8Array(256);
  for (const t of types) table[t] = 1;
  return table;
}

/** Authentication requests the client must answer with a 'p' message (GSSContinue may be the last word, so it is not one). */
export function expectsAnswer(code: number): boolean {
  return code === AuthCode.CleartextPassword || code === AuthCode.MD5Password || code === AuthCode.SASL || code === AuthCode.SASLContinue || code === AuthCode.GSS || code === AuthCode.SSPI;
}
