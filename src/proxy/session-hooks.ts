/**
 * What a session is given: where the server is, the limits and timeouts it
 * works to, whom it reports to, and the policy hook that may change what
 * crosses it.
 */
import type { Logger } from 'pino';
import type { Verdict } from '../protocol/message-scanner.js';
import type { Entry } from '../tracker/session-tracker.js';
import type { BorrowedServer, LinkLender } from '../pool/pooled-connect.js';
import type { PinObserver } from '../pool/pin-report.js';
import type { SessionStateMode } from '../pool/session-state-policy.js';
import type { TrackerListener } from '../tracker/types.js';
import type { UpstreamTarget } from '../upstream/target.js';
import type { BackendKeyRegistry } from './backend-keys.js';
import type { Session } from './session.js';

export interface SessionOptions {
  /** The session id when it was minted before the session (a pool names its borrower by it); else a new one. */
  id?: string;
  target: UpstreamTarget;
  maxMessageLength: number;
  /** Read sockets into one reused buffer (reused-read-buffer.ts); false: a fresh Buffer per read. */
  reuseReadBuffer: boolean;
  connectTimeoutMs: number;
  /** After the client stopped sending, how long the server may take to finish what it sent (see client-departure.ts). */
  settleTimeoutMs: number;
  listener: TrackerListener;
  log: Logger;
  backendKeys: BackendKeyRegistry<Session>;
  /** Optional policy hook (src/policy) consulted for every client message. */
  interceptor?: (session: Session) => SessionInterceptor;
  /**
   * Pooling: the server connection txproxy borrowed for this client after
   * logging it in itself (src/pool), and where it goes back when the
   * session ends. Without it the session connects upstream and relays the
   * login.
   */
  borrowed?: { server: BorrowedServer; lender: LinkLender; maxPreparedStatements: number; sessionState: SessionStateMode };
  /** Transaction pooling: told when the state that pins a client to its server changes. */
  pins?: PinObserver;
}


/**
 * Lets a policy change what crosses the proxy. It sees each complete client
 * message before the tracker does and may send other bytes instead; it sees
 * each server message after the tracker matched it.
 */
export interface SessionInterceptor {
  /** `undefined`: record and forward as usual. Anything else: the interceptor recorded it and this is what to send. */
  onClientMessage?(type: number, buf: Buffer, start: number, end: number): Verdict | 'default';
  onServerMessage?(type: number, buf: Buffer, start: number, end: number, entry: Entry | null): Verdict;
  /**
   * The client sent Terminate. Bytes returned go to the server just before
   * it (e.g. the COMMIT that ends a request's transaction); the session then
   * stays until the server has answered them and closed.
   */
  onTerminate?(): Buffer | undefined;
  /** The server reported a (new) application_name: rules matching on it may now apply or not. */
  onApplicationName?(value: string): void;
  /** The session ends; `clean` when the client said Terminate. */
  onEnd?(clean: boolean): void;
}

/** A walsender connection (`replication=true|database`): a CopyBoth stream, never pooled or tracked. */
export function isReplication(params: Record<string, string>): boolean {
  const value = params.replication;
  return value !== undefined && value !== 'false' && value !== 'off' && value !== 'no' && value !== '0';
}
