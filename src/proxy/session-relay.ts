/**
 * The relay at the heart of a session: bytes flow through unchanged. Each
 * direction has a MessageScanner that reads headers, hands the few message
 * types the tracker needs to it, and returns the chunk to forward.
 * Backpressure is respected both ways: when a write is refused, the other
 * side is paused until `drain`.
 *
 * This is the hot path — every chunk and every inspected message passes
 * here — so it allocates nothing per chunk beyond what the scanners return.
 * This is the client's side and the flow control; the server's side is
 * session-replies.ts. How the session starts and ends is session.ts and
 * session-endings.ts; the server connection's login and cancel key are its
 * ServerSide's.
 */
import { EventEmitter } from 'node:events';
import type net from 'node:net';
import type { Logger } from 'pino';
import { Backend, Frontend, type TxStatus } from '../protocol/codes.js';
import { errorResponse, readyForQuery, type Report } from '../protocol/encode.js';
import { MessageLimits } from '../protocol/message-limits.js';
import { DROP, FORWARD, MessageScanner, type Verdict } from '../protocol/message-scanner.js';
import { SessionTracker } from '../tracker/session-tracker.js';
import type { SessionInfo } from '../tracker/types.js';
import { newSessionId } from '../tracker/session-ids.js';
import type { SessionState } from '../sessions/session-view.js';
import { ClientRefused } from './authentication-relay.js';
import { ProxyErrors } from './errors.js';
import { LoginGate } from './login-gate.js';
import { readIntoReusedBuffer } from './reused-read-buffer.js';
import type { ServerSide } from './server-side.js';
import { isReplication, type SessionInterceptor, type SessionOptions } from './session-hooks.js';
import { CLIENT_INSPECT, CLIENT_INSPECT_RENAMING, SERVER_INSPECT } from './session-inspect.js';
import type { ServerStatementCache } from '../pool/prepared-statements.js';
import type { RenamedStatements } from './renamed-statements.js';

const DEFAULT = 'default';

/** The client's StartupMessage as read: its bytes (forwarded to a server of the session's own), its parameters, and what followed it. */
export interface SessionStartup {
  packet: Buffer;
  params: Record<string, string>;
  rest: Buffer;
}

export abstract class SessionRelay extends EventEmitter {
  readonly info: SessionInfo;
  readonly tracker: SessionTracker;
  state: SessionState = 'connecting';
  /** The secret key the client was given in BackendKeyData. */
  backendKey: Buffer | null = null;
  /** The backend pid the client was given (the session's backend, except in transaction pooling). */
  keyPid = 0;
  /** The server's ParameterStatus values (server_version, client_encoding, …). */
  readonly parameters = new Map<string, string>();

  protected readonly client: net.Socket;
  /** What the client sent that was read before its socket moved to reused-buffer reads. */
  protected readonly clientPending: Buffer | null;
  /** The server side's socket, held here for the relay; null until connected and once a pooled one went back. */
  protected upstream: net.Socket | null = null;
  /** Whose connection the server side is: the session's own, or a pooled one on loan. Null until start. */
  protected server: ServerSide | null = null;
  /** Holds client messages sent ahead of the first ReadyForQuery; null once they went their way. */
  protected loginGate: LoginGate | null = new LoginGate();
  protected readonly clientScanner: MessageScanner;
  protected readonly serverScanner: MessageScanner;
  /** Set by the subclass: the policy hook is handed the Session itself. */
  protected interceptor: SessionInterceptor | null = null;
  protected readonly log: Logger;
  /** The client sent Terminate: its close is clean. */
  protected terminated = false;
  /** The interceptor sent messages ahead of Terminate: wait for the server to answer them and close. */
  protected settling = false;
  /** The client sent its last byte (Terminate, FIN, or its socket vanished): see depart. */
  protected departed = false;
  /** The server sent a FATAL error: its close is expected, the client knows why. */
  protected serverFatal = false;
  protected draining = false;
  protected closed = false;
  /**
   * Transaction pooling: named prepared statements renamed for the link
   * held now (renamed-statements.ts), whose statement cache `linkStatements`
   * gives. Null otherwise.
   */
  protected renamed: RenamedStatements | null = null;
  protected linkStatements: () => ServerStatementCache | null = () => null;
  /** Transaction pooling: the client cancelled while its next statement waited for a server (see cancelledInWaiting). */
  protected cancelNext = false;
  protected readonly paused = { client: false, upstream: false };

  constructor(
    socket: net.Socket,
    protected readonly startup: SessionStartup,
    protected readonly options: SessionOptions,
  ) {
    super();
    const params = startup.params;
    this.info = {
      id: options.id ?? newSessionId(),
      user: params.user ?? '',
      database: params.database ?? params.user ?? '',
      applicationName: params.application_name ?? '',
      clientAddress: socket.remoteAddress ?? 'local',
      startedAt: Date.now(),
      backendPid: 0,
      replication: isReplication(params),
      slots: [],
    };
    this.log = options.log.child({ session: this.info.id });
    const client = readIntoReusedBuffer(socket, (chunk) => this.fromClient(chunk), options.reuseReadBuffer);
    this.client = client.socket;
    this.clientPending = client.pending;
    this.tracker = new SessionTracker(this.info, options.listener);
    this.clientScanner = new MessageScanner(
      options.borrowed?.server.mode === 'transaction' ? CLIENT_INSPECT_RENAMING : CLIENT_INSPECT,
      { onMessage: (t, b, s, e) => this.onClientMessage(t, b, s, e) },
      // Until the server accepts the login, nothing longer than an authentication response.
      MessageLimits.beforeAuthentication(options.maxMessageLength),
    );
    this.serverScanner = new MessageScanner(
      SERVER_INSPECT,
      {
        onMessage: (t, b, s, e) => this.onServerMessage(t, b, s, e),
        onPassthrough: (t) => {
          if (t === Backend.DataRow) this.tracker.onDataRow();
        },
      },
      options.maxMessageLength,
    );
  }

  /** The client's socket as the session reads it: not always the one it was given. */
  get clientSocket(): net.Socket {
    return this.client;
  }

  get backendPid(): number {
    return this.info.backendPid;
  }

  /** Transaction status the server reported last. */
  get txStatus(): TxStatus {
    return this.tracker.status;
  }

  /** Ends the session from our side, telling the client why when `report` is given. */
  abstract close(report: Report | null): void;
  /** The client broke the protocol: it is told so, and the session ends. */
  protected abstract protocolViolation(err: Error): void;
  /** Draining for shutdown: close once no transaction is open. */
  protected abstract closeIfIdle(): void;
  /** The server's BackendKeyData arrived: a CancelRequest may now find this session. */
  protected abstract registerBackendKey(): void;
  /** A whole server message the scanner hands over (session-replies.ts). */
  protected abstract onServerMessage(type: number, buf: Buffer, start: number, end: number): Verdict;
  /** A server message once the session is ready, as the tracker and the policies read it (session-replies.ts). */
  protected abstract onServerMessageAsRead(type: number, buf: Buffer, start: number, end: number): Verdict;
  /** A socket paused for backpressure drained. */
  protected afterDrain(): void {}

  /**
   * Sends messages of txproxy's own to the server between client messages
   * (a policy ending a transaction). False when a client message is only
   * partly forwarded, so nothing can go in between now.
   */
  sendToServer(bytes: Buffer): boolean {
    if (this.closed || this.upstream === null || !this.clientScanner.atBoundary) return false;
    const out = this.renamed === null ? bytes : this.renamed.toServer(this.linkStatements()!, bytes, bytes, 0, bytes.length, (answer) => this.answerInServersStead(answer));
    if (out != null) this.upstream.write(out);
    return true;
  }

  // ------------------------------------------------------------ client → server

  /** Relays a chunk from the client; true when the chunk's memory is still referenced afterwards (see reused-read-buffer.ts). */
  protected fromClient(chunk: Buffer): boolean {
    if (this.closed) return false;
    // Transaction pooling between transactions: the chunk waits for a server.
    if (this.upstream === null) return this.state === 'ready' && this.server?.hold !== undefined ? this.server.hold(chunk) : false;
    if (this.loginGate !== null) {
      chunk = this.loginGate.push(chunk);
      // Nothing more is read until the held messages can go (TCP holds the rest, as for the server itself).
      if (this.loginGate.holding) this.client.pause();
      if (chunk.length === 0) return false;
    }
    let out;
    this.tracker.chunkStarted();
    try {
      out = this.clientScanner.push(chunk);
    } catch (err) {
      if (err instanceof ClientRefused) {
        this.log.warn({ code: err.report.code, reason: err.report.message }, 'client refused during authentication');
        this.close(err.report);
        return false;
      }
      this.protocolViolation(err as Error);
      return false;
    } finally {
      this.tracker.chunkEnded();
    }
    return this.relay(out, this.client, this.upstream, 'client');
  }

  private onClientMessage(type: number, buf: Buffer, start: number, end: number): Verdict {
    if (type === Frontend.Terminate) {
      this.terminated = true;
      const before = this.state === 'ready' ? this.interceptor?.onTerminate?.() : undefined;
      // A pooled server connection outlives its client: Terminate ends only the client's side.
      if (before === undefined) return this.server!.forwardsTerminate ? FORWARD : DROP;
      this.settling = true;
      return Buffer.concat([before, buf.subarray(start, end)]);
    }
    if (type === Frontend.Password) {
      if (this.state !== 'authenticating') return FORWARD;
      return this.server!.clientResponse(buf, start, end);
    }
    if (this.state !== 'ready' || this.info.replication) return FORWARD;
    const decided = this.interceptor?.onClientMessage?.(type, buf, start, end) ?? DEFAULT;
    let verdict: Verdict;
    if (decided === DEFAULT) {
      const entry = this.tracker.onClientMessage(type, buf, start, end);
      verdict = FORWARD;
      // Transaction pooling may refuse a statement that would tie the client to its server, or one cancelled while it waited for a server.
      const refusal = this.renamed !== null && entry !== null ? this.cancelledInWaiting(type) ?? this.server!.refusal?.(entry) ?? null : null;
      if (refusal !== null) return this.renamed!.refuse(buf, start, refusal, (answer) => this.answerInServersStead(answer));
    } else verdict = decided;
    if (this.renamed === null) return verdict;
    return this.renamed.toServer(this.linkStatements()!, verdict, buf, start, end, (answer) => this.answerInServersStead(answer));
  }

  /** Transaction pooling: the client's cancel came while this statement waited for a server. */
  private cancelledInWaiting(type: number): Report | null {
    if (!this.cancelNext || (type !== Frontend.Query && type !== Frontend.Parse)) return null;
    this.cancelNext = false;
    return ProxyErrors.cancelledWhileWaiting();
  }

  /**
   * Transaction pooling: an answer txproxy gives in the server's stead (a
   * Parse the link already has). It is read as any server message would
   * be, and goes to the client now: every answer before it has gone.
   */
  private answerInServersStead(answer: Buffer): void {
    const verdict = this.onServerMessageAsRead(answer[0], answer, 0, answer.length);
    const out = verdict === undefined ? answer : verdict;
    if (out !== null && !this.client.destroyed) this.relay(out, this.upstream!, this.client, 'upstream');
  }

  /**
   * Transaction pooling: a client message that will never reach a server (a
   * Query cancelled while it waited for one) is answered as the server
   * would have: `report` as its ErrorResponse, then ReadyForQuery. The
   * tracker records all three; the policies see none, as nothing of the
   * client's went out.
   */
  protected answerWithoutServer(message: Buffer, report: Report): void {
    if (this.closed) return;
    this.tracker.onClientMessage(message[0], message, 0, message.length);
    const answers = [errorResponse(report), readyForQuery('I')];
    for (const answer of answers) this.tracker.onServerMessage(answer[0], answer, 0, answer.length);
    if (!this.client.destroyed) this.client.write(Buffer.concat(answers));
  }

  /**
   * Writes what a chunk became to `sink`, pausing `source` until the sink
   * drains. True when the chunk's memory is still referenced afterwards (see
   * reused-read-buffer.ts).
   */
  protected relay(out: Buffer | Buffer[], source: net.Socket, sink: net.Socket, side: 'client' | 'upstream'): boolean {
    if (!write(sink, out)) this.pauseUntilDrain(source, sink, side);
    // Until the session is ready every read gets a fresh buffer: startup is rare, and its handlers may keep what they read.
    return sink.writableLength > 0 || this.state !== 'ready';
  }


  // ------------------------------------------------------------ flow control

  private pauseUntilDrain(source: net.Socket, sink: net.Socket, side: 'client' | 'upstream'): void {
    if (this.paused[side]) return;
    this.paused[side] = true;
    source.pause();
    sink.once('drain', () => {
      this.paused[side] = false;
      if (this.closed) return;
      source.resume();
      this.afterDrain();
    });
  }
}

/** Writes one chunk or several (corked into one writev); returns false when the socket asks to wait. */
function write(socket: net.Socket, out: Buffer | Buffer[]): boolean {
  if (Buffer.isBuffer(out)) return socket.write(out);
  if (out.length === 0) return true;
  if (out.length === 1) return socket.write(out[0]);
  socket.cork();
  let ok = true;
  for (const buf of out) ok = socket.write(buf);
  socket.uncork();
  return ok;
}
