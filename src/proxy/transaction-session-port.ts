/**
 * What the transaction-pooling server side (transaction-server.ts) asks of
 * the session it serves: to relay through a link or none, to replay what it
 * held, to be told of pins, cancels and the end.
 */
import type net from 'node:net';
import type { Logger } from 'pino';
import type { PinReason } from '../pool/session-effects.js';
import type { Report } from '../protocol/encode.js';

/** What the transaction server side needs of its session. */
export interface TransactionSessionPort {
  readonly sessionId: string;
  readonly log: Logger;
  /** The session relays to and from `socket` now (null: no server), on backend `pid`. */
  serverChanged(socket: net.Socket | null, pid: number): void;
  /** A client chunk held while no server was there: relay it now. */
  replay(chunk: Buffer): void;
  pauseClient(): void;
  resumeClient(): void;
  /** Ends the session, telling the client why. */
  fail(report: Report): void;
  fromServer(chunk: Buffer): boolean;
  /** The link the session holds closed under it. */
  upstreamGone(): void;
  /** Sends a CancelRequest to the server. */
  cancel(packet: Buffer): void;
  /** The messages held for a link went to it. */
  replayed(): void;
  /** The client said Terminate while holding no server. */
  terminated(): void;
  /** The value of a reported parameter the client was last told. */
  parameterShown(name: string): string | undefined;
  /**
   * `true`: the client's next Query or Parse is answered 57014 in the
   * server's stead. `false`: no longer; returns whether it was still waiting.
   */
  cancelNextStatement(on: boolean): boolean;
  /** A client message that will never reach a server is answered with `report` and ReadyForQuery, as a server would have. */
  answerWithoutServer(message: Buffer, report: Report): void;
  /** The reasons the client is pinned to its server changed (at a ReadyForQuery outside a transaction, or at the end). */
  pinsChanged(added: PinReason[], removed: PinReason[]): void;
}
