/**
 * The server half of a session: the connection its client's messages go to.
 * It is either a connection of the session's own, whose login the client
 * does itself through txproxy (relayed-server.ts), or a pooled connection
 * txproxy logged in and lends the session (borrowed-server.ts). The two
 * differ in the login, in the cancel key, and in how they end: one is
 * closed, the other goes back to its pool. The relay itself (session-relay.ts)
 * only ever sees the socket.
 */
import type net from 'node:net';
import type { Report } from '../protocol/encode.js';
import type { Verdict } from '../protocol/message-scanner.js';
import type { Entry } from '../tracker/session-tracker.js';

export interface ServerSide {
  /** The server connection; null until connected, and again once a pooled one went back. */
  readonly socket: net.Socket | null;
  /**
   * The client's Terminate goes on to the server: a connection of the
   * session's own ends with its client; a pooled one outlives it.
   */
  readonly forwardsTerminate: boolean;
  /** A pooled connection still on loan: it goes back to its pool instead of being closed. */
  readonly onLoan: boolean;

  /** An Authentication request from the server during login: what to send the client. */
  serverRequest(buf: Buffer, start: number, end: number): Verdict;
  /** The client's answer to one (a PasswordMessage): what to send the server. */
  clientResponse(buf: Buffer, start: number, end: number): Verdict;
  /** A whole server message of the login arrived; the client's turn next, or the login done. */
  loginMessage(clientsTurn: boolean, ready: boolean): void;
  /** The login is over (the first ReadyForQuery): nothing of it is needed any more. */
  loginDone(): void;

  /** The CancelRequest to send the server for the client's own CancelRequest; null: nothing to cancel. */
  cancelPacketFor(clientPacket: Buffer, backendPid: number): Buffer | null;
  /** The secret key a cancel sent to the server must carry, given the one the client got. */
  serverKey(clientKey: Buffer): Buffer;

  /**
   * Gives a pooled connection back: `reusable` when nothing of the client's
   * is left on it (the pool resets it), else the pool closes it; `blocked`
   * when the server is stuck writing to us, so it is dropped at once.
   */
  giveBack(reusable: boolean, blocked: boolean): void;
  /** The session ended: stop any timer of the login. */
  ended(): void;

  // Transaction pooling only (transaction-server.ts):
  /** A client chunk that came while no server is held; true when it is kept to relay later. */
  hold?(chunk: Buffer): boolean;
  /** At a ReadyForQuery outside a transaction with nothing in flight: the link may go back. */
  idle?(): void;
  /** The client stopped sending while messages wait for a server: whether they end with its Terminate (to be run). */
  leavesMessagesToRun?(): boolean;
  /** A client Query or Parse just recorded: the refusal to answer in its place, or null. */
  refusal?(entry: Entry): Report | null;
}
