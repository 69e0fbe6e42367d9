/**
 * One client session and the upstream connection it owns (session mode).
 *
 * Bytes flow through unchanged: each direction has a MessageScanner that
 * reads headers, hands the few message types the tracker needs to it, and
 * returns the chunk to forward. Backpressure is respected both ways: when a
 * write is refused, the other side is paused until `drain`.
 */
import { EventEmitter } from 'node:events';
import type net from 'node:net';
import type { Logger } from 'pino';
import { serialize } from '../protocol/frontend-messages.js';
import { AuthCode, Backend, Frontend, type TxStatus } from '../protocol/codes.js';
import {
  decodeAuthCode,
  decodeBackendKeyData,
  decodeErrorFields,
  decodeParameterStatus,
  decodeReadyForQuery,
} from '../protocol/decode.js';
import { cancelRequest, errorResponse, type Report } from '../protocol/encode.js';
import { MessageLimits } from '../protocol/message-limits.js';
import { DROP, FORWARD, MessageLengthError, MessageScanner, type Verdict } from '../protocol/message-scanner.js';
import { SessionTracker, type Entry } from '../tracker/session-tracker.js';
import type { SessionInfo, TrackerListener } from '../tracker/types.js';
import type { BackendKeyRegistry } from './backend-keys.js';
import { AuthenticationRelay, ClientRefused } from './authentication-relay.js';
import { LoginDeadline } from './login-deadline.js';
import { LoginGate } from './login-gate.js';
import { readIntoReusedBuffer } from './reused-read-buffer.js';
import { CLIENT_INSPECT, expectsAnswer, SERVER_INSPECT } from './session-inspect.js';
import { departure } from './client-departure.js';
import { endClient } from './end-client.js';
import { connectFailureReason, ProxyErrors } from './errors.js';
import { sendCancel, startUpstream, UpstreamTlsError } from './upstream.js';
import { describeTarget, type UpstreamTarget } from '../upstream/target.js';
import type { BorrowedServer } from '../pool/pooled-connect.js';
import type { ServerLink } from '../server-link/server-link.js';
import { newSessionId } from '../tracker/session-ids.js';
import type { SessionState, SessionView } from '../sessions/session-view.js';

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
  borrowed?: { server: BorrowedServer; release(link: ServerLink, reusable: boolean): void };
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

const DEFAULT = 'default';

const TERMINATE = serialize.end();

export class Session extends EventEmitter implements SessionView {
  readonly info: SessionInfo;
  readonly tracker: SessionTracker;
  state: SessionState = 'connecting';
  backendKey: Buffer | null = null;
  /** The server's ParameterStatus values (server_version, client_encoding, …). */
  readonly parameters = new Map<string, string>();

  private readonly client: net.Socket;
  /** What the client sent that was read before its socket moved to reused-buffer reads. */
  private readonly clientPending: Buffer | null;
  private upstream: net.Socket | null = null;
  /** connect_timeout while the server owes the login an answer; null once the session is ready. */
  private loginDeadline: LoginDeadline | null = null;
  /** A pooled server connection on loan to this session; null once it went back. */
  private link: ServerLink | null = null;
  /** The server's own cancel key when the client got one txproxy minted (pooling). */
  private serverKey: Buffer | null = null;
  /** Authentication relayed untouched but for channel binding; null once authenticated. */
  private authentication: AuthenticationRelay | null = null;
  /** Holds client messages sent ahead of the first ReadyForQuery; null once they went their way. */
  private loginGate: LoginGate | null = new LoginGate();
  private readonly clientScanner: MessageScanner;
  private readonly serverScanner: MessageScanner;
  private readonly interceptor: SessionInterceptor | null;
  private readonly log: Logger;
  /** The client sent Terminate: its close is clean. */
  private terminated = false;
  /** The interceptor sent messages ahead of Terminate: wait for the server to answer them and close. */
  private settling = false;
  /** The client sent its last byte (Terminate, FIN, or its socket vanished): see depart. */
  private departed = false;
  /** The server sent a FATAL error: its close is expected, the client knows why. */
  private serverFatal = false;
  private draining = false;
  private closed = false;
  /** Held client messages to forward once the server's chunk went to the client (see afterLoginChunk). */
  private heldForServer: Buffer | null = null;
  private paused = { client: false, upstream: false };

  constructor(
    socket: net.Socket,
    private readonly startup: { packet: Buffer; params: Record<string, string>; rest: Buffer },
    private readonly options: SessionOptions,
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
    };
    this.log = options.log.child({ session: this.info.id });
    const client = readIntoReusedBuffer(socket, (chunk) => this.fromClient(chunk), options.reuseReadBuffer);
    this.client = client.socket;
    this.clientPending = client.pending;
    this.tracker = new SessionTracker(this.info, options.listener);
    this.clientScanner = new MessageScanner(
      CLIENT_INSPECT,
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
    this.interceptor = options.interceptor?.(this) ?? null;
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

  /** Connects upstream, forwards the StartupMessage and starts relaying. */
  async start(): Promise<void> {
    const target = this.options.target;
    const connectStarted = Date.now();
    this.client.on('error', (err) => this.log.debug({ err: err.message }, 'client socket error'));
    this.client.on('close', () => this.onClientGone());
    // The client's FIN: it sends no more, but may still read the answers (see depart).
    this.client.on('end', () => this.onClientEnded());
    if (this.options.borrowed !== undefined) {
      this.startBorrowed(this.options.borrowed.server);
      return;
    }
    let connection;
    try {
      // Sends the StartupMessage; may retry with the other encryption choice (sslmode allow/prefer).
      connection = await startUpstream(target, this.startup.packet, this.options.connectTimeoutMs, (reason) =>
        this.log.info({ upstream: describeTarget(target), sslmode: target.sslmode, reason }, 'upstream rejected the first encryption choice: retrying'),
      );
    } catch (err) {
      const reason = connectFailureReason(err as Error);
      this.log.warn({ upstream: describeTarget(target), reason }, 'upstream unreachable');
      const report =
        err instanceof UpstreamTlsError
          ? ProxyErrors.upstreamTlsFailed(describeTarget(target), reason)
          : ProxyErrors.upstreamUnreachable(describeTarget(target), reason);
      this.failStartup(report);
      return;
    }
    if (this.closed) {
      connection.socket.destroy();
      return;
    }
    const adopted = readIntoReusedBuffer(connection.socket, (chunk) => this.fromServer(chunk), this.options.reuseReadBuffer);
    const upstream = adopted.socket;
    this.upstream = upstream;
    this.authentication = new AuthenticationRelay(this.client, upstream, connection.tls);
    this.state = 'authenticating';
    upstream.on('error', (err) => this.log.debug({ err: err.message }, 'upstream socket error'));
    upstream.on('close', () => this.onUpstreamGone());
    // The server's first whole answer must come within connect_timeout of connecting.
    const deadline = new LoginDeadline(this.options.connectTimeoutMs, (first) => this.upstreamStalled(upstream, first));
    this.loginDeadline = deadline;
    upstream.once('close', () => deadline.clear());
    deadline.serverOwes(connectStarted + this.options.connectTimeoutMs - Date.now());
    // What the server already answered (read while choosing the encryption) goes first.
    if (connection.initial.length > 0) this.fromServer(connection.initial);
    if (adopted.pending !== null) this.fromServer(adopted.pending);
    upstream.resume();
    if (this.startup.rest.length > 0) this.fromClient(this.startup.rest);
    if (this.clientPending !== null) this.fromClient(this.clientPending);
    // Held messages keep the client paused until the session is ready (releaseHeldMessages).
    if (!this.closed && this.loginGate?.holding !== true) this.client.resume();
  }

  /**
   * Starts on a pooled server connection: the client is logged in already,
   * and the welcome a fresh backend would send goes to it through the
   * server side as if the server had sent it, so the tracker, the backend
   * key registry and the login gate see what they see in any session.
   */
  private startBorrowed(server: BorrowedServer): void {
    const link = server.link;
    this.link = link;
    this.upstream = link.socket;
    this.serverKey = link.backendKey;
    this.state = 'authenticating';
    this.clientScanner.setLimits(MessageLimits.frontend(this.options.maxMessageLength));
    link.socket.on('close', this.onLinkClosed);
    link.attach((chunk) => this.fromServer(chunk));
    this.fromServer(server.welcome);
    if (this.startup.rest.length > 0) this.fromClient(this.startup.rest);
    if (this.clientPending !== null) this.fromClient(this.clientPending);
    if (this.closed) return;
    if (this.loginGate?.holding !== true) this.client.resume();
    link.socket.resume();
  }

  private readonly onLinkClosed = (): void => this.onUpstreamGone();

  /**
   * The CancelRequest to send the server for a client's cancel: the
   * client's own packet, or with a pooled connection one with the server's
   * key (the client only ever saw the key txproxy minted).
   */
  cancelPacketFor(clientPacket: Buffer): Buffer {
    return this.serverKey === null ? clientPacket : cancelRequest(this.info.backendPid, this.serverKey);
  }

  /**
   * A server that accepts the connection but stops answering during the
   * login (hung, overloaded, or not PostgreSQL at all) must not hold the
   * client forever: see LoginDeadline. Only the login is timed, so the
   * steady state pays nothing.
   */
  private upstreamStalled(upstream: net.Socket, firstAnswer: boolean): void {
    if (this.closed) return;
    const timeoutMs = this.options.connectTimeoutMs;
    const upstreamName = describeTarget(this.options.target);
    this.log.warn({ upstream: upstreamName, timeoutMs, firstAnswer }, 'upstream stalled during login');
    upstream.destroy();
    const reason = firstAnswer
      ? `the server accepted the connection but sent no complete answer within ${timeoutMs} ms (connect_timeout)`
      : `the server stopped answering during login for ${timeoutMs} ms (connect_timeout)`;
    this.close(ProxyErrors.upstreamUnreachable(upstreamName, reason));
  }

  // ------------------------------------------------------------ client → server

  /** Relays a chunk from the client; true when the chunk's memory is still referenced afterwards (see reused-read-buffer.ts). */
  private fromClient(chunk: Buffer): boolean {
    if (this.closed || this.upstream === null) return false;
    if (this.loginGate !== null) {
      chunk = this.loginGate.push(chunk);
      // Nothing more is read until the held messages can go (TCP holds the rest, as for the server itself).
      if (this.loginGate.holding) this.client.pause();
      if (chunk.length === 0) return false;
    }
    let out;
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
    }
    return this.relay(out, this.client, this.upstream, 'client');
  }

  private onClientMessage(type: number, buf: Buffer, start: number, end: number): Verdict {
    if (type === Frontend.Terminate) {
      this.terminated = true;
      const before = this.state === 'ready' ? this.interceptor?.onTerminate?.() : undefined;
      // A pooled server connection outlives its client: Terminate ends only the client's side.
      if (before === undefined) return this.link !== null ? DROP : FORWARD;
      this.settling = true;
      return Buffer.concat([before, buf.subarray(start, end)]);
    }
    if (type === Frontend.Password) {
      if (this.state !== 'authenticating') return FORWARD;
      // The client answered: the server owes the next step.
      this.loginDeadline?.serverOwes();
      return this.authentication?.clientResponse(buf, start, end) ?? FORWARD;
    }
    if (this.state !== 'ready' || this.info.replication) return FORWARD;
    const verdict = this.interceptor?.onClientMessage?.(type, buf, start, end) ?? DEFAULT;
    if (verdict !== DEFAULT) return verdict;
    this.tracker.onClientMessage(type, buf, start, end);
    return FORWARD;
  }

  // ------------------------------------------------------------ server → client

  /** Relays a chunk from the server; true when the chunk's memory is still referenced afterwards (see reused-read-buffer.ts). */
  private fromServer(chunk: Buffer): boolean {
    if (this.closed) return false;
    let out;
    try {
      out = this.serverScanner.push(chunk);
    } catch (err) {
      this.log.error({ err: (err as Error).message }, 'invalid message from upstream');
      // A server message over max_message_length is a setting to raise, not a lost connection.
      this.close(
        err instanceof MessageLengthError
          ? ProxyErrors.invalidServerMessage(describeTarget(this.options.target), err.message)
          : ProxyErrors.upstreamLost(describeTarget(this.options.target)),
      );
      return false;
    }
    // Settling after the client left: answers are still tracked, there is no one to send them to.
    if (this.client.destroyed) return false;
    const kept = this.relay(out, this.upstream!, this.client, 'upstream');
    if (this.loginGate !== null) this.afterLoginChunk();
    if (this.draining) this.closeIfIdle();
    return kept;
  }

  /**
   * After a server chunk of the login went to the client: messages the
   * client sent ahead of time go on once the session is ready (after the
   * client got its ReadyForQuery, so that the answers to them follow it),
   * or at once when the server asks for another authentication answer.
   */
  private afterLoginChunk(): void {
    const gate = this.loginGate!;
    const held = this.heldForServer;
    if (held !== null) {
      // The server asked for an authentication answer while messages were held: it refuses them.
      this.heldForServer = null;
      this.loginGate = null;
      this.fromClient(held);
      this.resumeClient();
      return;
    }
    if (this.state !== 'ready') return;
    this.loginGate = null;
    if (!gate.holding) return;
    this.fromClient(gate.take());
    this.resumeClient();
  }

  private resumeClient(): void {
    if (!this.closed && !this.paused.client) this.client.resume();
  }

  /**
   * Writes what a chunk became to `sink`, pausing `source` until the sink
   * drains. True when the chunk's memory is still referenced afterwards (see
   * reused-read-buffer.ts).
   */
  private relay(out: Buffer | Buffer[], source: net.Socket, sink: net.Socket, side: 'client' | 'upstream'): boolean {
    if (!write(sink, out)) this.pauseUntilDrain(source, sink, side);
    // Until the session is ready every read gets a fresh buffer: startup is rare, and its handlers may keep what they read.
    return sink.writableLength > 0 || this.state !== 'ready';
  }

  /**
   * Sends messages of txproxy's own to the server between client messages
   * (a policy ending a transaction). False when a client message is only
   * partly forwarded, so nothing can go in between now.
   */
  sendToServer(bytes: Buffer): boolean {
    if (this.closed || this.upstream === null || !this.clientScanner.atBoundary) return false;
    this.upstream.write(bytes);
    return true;
  }

  private onServerMessage(type: number, buf: Buffer, start: number, end: number): Verdict {
    if (this.state !== 'ready') return this.onStartupServerMessage(type, buf, start, end);
    if (type === Backend.ParameterStatus) {
      this.noteParameter(buf, start, end);
      return FORWARD;
    }
    if (this.info.replication) return FORWARD;
    if (type === Backend.ErrorResponse) this.noteFatal(buf, start, end);
    const entry = this.tracker.onServerMessage(type, buf, start, end);
    if (this.interceptor?.onServerMessage !== undefined) return this.interceptor.onServerMessage(type, buf, start, end, entry);
    return entry !== null && entry.hidden ? DROP : FORWARD;
  }

  /** Authentication and the messages before the first ReadyForQuery. */
  private onStartupServerMessage(type: number, buf: Buffer, start: number, end: number): Verdict {
    const clientsTurn = type === Backend.Authentication && expectsAnswer(decodeAuthCode(buf, start));
    this.loginDeadline?.serverMessage(clientsTurn, type === Backend.ReadyForQuery);
    switch (type) {
      case Backend.Authentication: {
        const code = decodeAuthCode(buf, start);
        if (code === AuthCode.Ok) this.clientScanner.setLimits(MessageLimits.frontend(this.options.maxMessageLength));
        if (this.loginGate !== null && expectsAnswer(code)) {
          const held = this.loginGate.serverAsked();
          if (held.length > 0) this.heldForServer = held;
        }
        return this.authentication?.serverRequest(buf, start, end) ?? FORWARD;
      }
      case Backend.BackendKeyData: {
        const { pid, key } = decodeBackendKeyData(buf, start, end);
        this.info.backendPid = pid;
        this.backendKey = key;
        this.options.backendKeys.register(this);
        return FORWARD;
      }
      case Backend.ParameterStatus:
        this.noteParameter(buf, start, end);
        return FORWARD;
      case Backend.ErrorResponse:
        this.noteFatal(buf, start, end);
        return FORWARD;
      case Backend.ReadyForQuery:
        this.state = 'ready';
        this.authentication = null;
        this.loginDeadline = null;
        this.log.debug({ pid: this.info.backendPid, user: this.info.user, database: this.info.database }, 'session ready');
        this.tracker.start();
        this.tracker.onServerMessage(type, buf, start, end);
        this.emit('ready');
        return FORWARD;
    }
    return FORWARD;
  }

  private noteParameter(buf: Buffer, start: number, end: number): void {
    const { name, value } = decodeParameterStatus(buf, start, end);
    this.parameters.set(name, value);
    this.tracker.onParameterStatus(name, value);
    if (name === 'application_name') {
      this.info.applicationName = value;
      this.interceptor?.onApplicationName?.(value);
    }
  }

  private noteFatal(buf: Buffer, start: number, end: number): void {
    const fields = decodeErrorFields(buf, start, end);
    const severity = fields.severityV ?? fields.severity;
    if (severity === 'FATAL' || severity === 'PANIC') this.serverFatal = true;
  }

  // ------------------------------------------------------------ flow control

  private pauseUntilDrain(source: net.Socket, sink: net.Socket, side: 'client' | 'upstream'): void {
    if (this.paused[side]) return;
    this.paused[side] = true;
    source.pause();
    sink.once('drain', () => {
      this.paused[side] = false;
      if (!this.closed) source.resume();
    });
  }

  // ------------------------------------------------------------ endings

  /** SIGTERM: finish the open transaction, then close; idle sessions close now. */
  drain(): void {
    this.draining = true;
    this.closeIfIdle();
  }

  private closeIfIdle(): void {
    if (this.closed) return;
    const idle = this.state !== 'ready' || (this.tracker.status === 'I' && this.tracker.pending === 0);
    if (idle && this.clientScanner.idle) this.close(ProxyErrors.shuttingDown());
  }

  /**
   * Ends the session from our side: tells the client why (when its stream
   * is at a message boundary), closes the server connection (the server
   * rolls back an open transaction).
   */
  close(report: Report | null): void {
    if (this.closed) return;
    // Mid-message, an ErrorResponse would be read as the rest of that
    // message: the client gets a plain close instead of garbage.
    if (report !== null && this.serverScanner.atBoundary) endClient(this.client, errorResponse(report));
    else this.client.destroy();
    this.closeUpstream('cancel');
    this.finish(false);
  }

  private failStartup(report: Report): void {
    endClient(this.client, errorResponse(report));
    this.finish(false);
  }

  private protocolViolation(err: Error): void {
    const report =
      err instanceof MessageLengthError ? ProxyErrors.invalidMessageLength(err.message, err.source) : ProxyErrors.invalidMessage(err.message);
    this.log.warn({ reason: err.message }, 'protocol violation by client');
    this.close(report);
  }

  /** The client sent FIN: it has finished sending, and may still read (a half-close). */
  private onClientEnded(): void {
    if (this.closed || this.departed) return;
    this.depart(true);
  }

  private onClientGone(): void {
    if (this.closed) return;
    if (!this.departed) {
      this.depart(false);
      return;
    }
    // Settling, and now nobody reads the answers: a server blocked writing
    // them would fail that write to a vanished client, and so it does here.
    if (this.paused.upstream) this.upstream?.destroy();
  }

  /** The client stopped sending: client-departure.ts says what becomes of the server connection. */
  private depart(clientReads: boolean): void {
    this.departed = true;
    const clean = this.terminated;
    if (!clean) this.log.debug({ status: this.tracker.status }, 'client disconnected without Terminate');
    const upstream = this.upstream;
    const ready = this.state === 'ready';
    const how =
      upstream === null || upstream.destroyed
        ? null
        : departure({
            upstreamBlocked: this.paused.upstream,
            ownMessagesAhead: this.settling,
            status: this.tracker.status,
            pending: ready ? this.tracker.pending : 0,
            inFlight: ready ? this.tracker.inFlightStatements() : [],
          });
    if (how === 'settle') {
      this.settle(upstream!, clientReads);
      return;
    }
    // Nothing in flight, no transaction: a pooled connection goes back to its pool.
    if (how === 'close' && this.link !== null) this.returnLink();
    if (how !== null) this.closeUpstream(how === 'drop' ? 'drop' : how === 'rollback' ? 'cancel' : 'terminate');
    if (clientReads && how !== 'drop') endClient(this.client);
    else this.client.destroy();
    this.finish(clean);
  }

  /**
   * Lets the server finish what the client sent: Terminate goes behind it
   * (or a plain EOF after a message the client left unfinished, as the
   * server would see directly), the answers are still tracked, and relayed
   * while the client reads; the session ends when the server closes.
   */
  private settle(upstream: net.Socket, clientReads: boolean): void {
    if (!clientReads) this.client.destroy();
    if ((this.terminated && this.link === null) || !this.clientScanner.idle) upstream.end();
    else upstream.end(TERMINATE);
    const timeoutMs = this.options.settleTimeoutMs;
    setTimeout(() => {
      if (upstream.destroyed) return;
      this.log.warn({ timeoutMs, pending: this.tracker.pending }, 'server did not finish within settle_timeout after the client stopped sending');
      upstream.destroy();
    }, timeoutMs).unref();
  }

  private onUpstreamGone(): void {
    if (this.closed) return;
    if (!this.terminated && !this.serverFatal && !this.departed) {
      this.log.warn({ upstream: describeTarget(this.options.target) }, 'upstream connection lost');
      this.close(ProxyErrors.upstreamLost(describeTarget(this.options.target)));
      return;
    }
    endClient(this.client);
    this.finish(this.terminated);
  }

  /**
   * Closes the server connection now.
   *
   * While the server side is paused for backpressure (or with `drop`), the
   * server is (or soon will be) blocked writing to us, and a blocked backend
   * acts neither on a cancel nor on Terminate: the connection is dropped, so
   * its write fails and it exits (rolling back) at once. Otherwise `cancel`
   * cancels a statement still running (or the server would only notice the
   * lost client when it next writes), and Terminate goes when the stream is
   * at a message boundary.
   */
  private closeUpstream(mode: 'drop' | 'cancel' | 'terminate'): void {
    const upstream = this.upstream;
    if (upstream === null || upstream.destroyed) return;
    if (mode === 'drop' || this.paused.upstream) {
      upstream.destroy();
      return;
    }
    if (mode === 'cancel' && this.tracker.activeStatement !== null && this.backendKey !== null) this.cancelRunningStatement();
    // The client's own Terminate went ahead already (not to a pooled connection, which never gets it).
    if (this.terminated && this.link === null) upstream.end();
    else if (this.clientScanner.atBoundary && this.clientScanner.idle) upstream.end(TERMINATE);
    else upstream.destroy();
    // Do not wait for a stuck server: the socket goes after a grace period.
    setTimeout(() => upstream.destroy(), 5000).unref();
  }

  private cancelRunningStatement(): void {
    const cancel = cancelRequest(this.info.backendPid, this.serverKey ?? this.backendKey!);
    sendCancel(this.options.target, cancel, this.options.connectTimeoutMs).catch((err: Error) =>
      this.log.debug({ err: err.message }, 'cancel of running statement failed'),
    );
  }

  private finish(clean: boolean): void {
    if (this.closed) return;
    this.closed = true;
    this.loginDeadline?.clear();
    const wasReady = this.state === 'ready';
    this.state = 'closed';
    this.options.backendKeys.unregister(this);
    // Still here: the connection was closed or is closing (rollback, settle, drop); the pool lets it go.
    if (this.link !== null) this.returnLink();
    if (wasReady) this.tracker.end(clean);
    this.interceptor?.onEnd?.(clean);
    this.emit('close', clean);
  }

  /**
   * Gives a pooled server connection back. Only with nothing in flight,
   * outside a transaction block, is it reusable (the pool then resets it);
   * anything else (an open transaction, unread results, a COPY, a client
   * gone mid-message, a connection already closing) and the pool closes it,
   * so the server rolls back and nobody inherits it.
   */
  private returnLink(): void {
    const link = this.link!;
    this.link = null;
    this.upstream = null;
    link.socket.off('close', this.onLinkClosed);
    const reusable =
      !this.settling &&
      !this.paused.upstream &&
      !link.socket.writableEnded &&
      this.state === 'ready' &&
      this.tracker.status === 'I' &&
      this.tracker.pending === 0 &&
      this.serverScanner.idle &&
      this.clientScanner.idle;
    // Blocked writing to us, the server would act on nothing else: drop the connection.
    if (this.paused.upstream) link.socket.destroy();
    this.options.borrowed!.release(link, reusable);
  }

  get isClosed(): boolean {
    return this.closed;
  }
}

/** A walsender connection (`replication=true|database`): a CopyBoth stream, never pooled or tracked. */
export function isReplication(params: Record<string, string>): boolean {
  const value = params.replication;
  return value !== undefined && value !== 'false' && value !== 'off' && value !== 'no' && value !== '0';
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
