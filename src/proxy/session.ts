/**
 * One client session and the server connection it holds: a connection of
 * its own whose login the client does through txproxy, or (pooling) one
 * txproxy logged in and lends it. The relay is session-relay.ts, the
 * endings session-endings.ts; this is how a session starts, and what the
 * rest of txproxy (the listener, cancel routing, policies, observers) uses.
 */
import type net from 'node:net';
import { MessageLimits } from '../protocol/message-limits.js';
import type { SessionView } from '../sessions/session-view.js';
import type { BorrowedServer } from '../pool/pooled-connect.js';
import { sessionEffects } from '../pool/session-effects.js';
import { BorrowedServerSide } from './borrowed-server.js';
import { RenamedStatements } from './renamed-statements.js';
import { sendCancel } from './upstream.js';
import { TransactionServerSide, type TransactionSessionPort } from './transaction-server.js';
import { RelayedServerSide } from './relayed-server.js';
import { SessionEndings } from './session-endings.js';
import type { SessionOptions } from './session-hooks.js';
import type { SessionStartup } from './session-relay.js';

export { isReplication, type SessionInterceptor, type SessionOptions } from './session-hooks.js';

export class Session extends SessionEndings implements SessionView {
  constructor(socket: net.Socket, startup: SessionStartup, options: SessionOptions) {
    super(socket, startup, options);
    this.interceptor = options.interceptor?.(this) ?? null;
  }

  /** Connects upstream, forwards the StartupMessage and starts relaying. */
  async start(): Promise<void> {
    this.client.on('error', (err) => this.log.debug({ err: err.message }, 'client socket error'));
    this.client.on('close', () => this.onClientGone());
    // The client's FIN: it sends no more, but may still read the answers (see depart).
    this.client.on('end', () => this.onClientEnded());
    if (this.options.borrowed !== undefined) {
      this.startBorrowed(this.options.borrowed.server);
      this.noticeEarlyDeparture();
      return;
    }
    const server = new RelayedServerSide(this.options, this.log);
    this.server = server;
    const connection = await server.connect(this.startup.packet);
    if (!('socket' in connection)) {
      this.failStartup(connection);
      return;
    }
    if (this.closed) {
      connection.socket.destroy();
      return;
    }
    const pending = server.adopt(connection, this.client, {
      onData: (chunk) => this.fromServer(chunk),
      onClose: () => this.onUpstreamGone(),
      onStall: (report) => this.close(report),
    });
    this.upstream = server.socket;
    this.state = 'authenticating';
    // What the server already answered (read while choosing the encryption) goes first.
    if (connection.initial.length > 0) this.fromServer(connection.initial);
    if (pending !== null) this.fromServer(pending);
    this.upstream?.resume();
    if (this.startup.rest.length > 0) this.fromClient(this.startup.rest);
    if (this.clientPending !== null) this.fromClient(this.clientPending);
    // Held messages keep the client paused until the session is ready (see afterLoginChunk).
    if (!this.closed && this.loginGate?.holding !== true) this.client.resume();
  }

  /**
   * Starts on a pooled server connection: the client is logged in already,
   * and the welcome a fresh backend would send goes to it through the
   * server side as if the server had sent it, so the tracker, the backend
   * key registry and the login gate see what they see in any session.
   */
  private startBorrowed(borrowed: BorrowedServer): void {
    const { lender, maxPreparedStatements, sessionState } = this.options.borrowed!;
    let server;
    if (borrowed.mode === 'transaction') {
      const side = new TransactionServerSide(borrowed, this.transactionPort(), { lender, maxPreparedStatements, sessionState });
      this.renamed = new RenamedStatements();
      this.linkStatements = () => side.statements;
      this.tracker.afterStatement = (statement) => side.pins.statementRan(sessionEffects(statement.text, statement.info.operation));
      this.once('close', () => side.unpinAll());
      server = side;
    } else {
      server = new BorrowedServerSide(
        borrowed,
        (link, reusable) => lender.release(link, reusable),
        () => this.onUpstreamGone(),
        (chunk) => this.fromServer(chunk),
      );
    }
    this.server = server;
    this.upstream = server.socket;
    this.state = 'authenticating';
    this.clientScanner.setLimits(MessageLimits.frontend(this.options.maxMessageLength));
    this.fromServer(borrowed.welcome);
    if (this.startup.rest.length > 0) this.fromClient(this.startup.rest);
    if (this.clientPending !== null) this.fromClient(this.clientPending);
    if (this.closed) return;
    if (this.loginGate?.holding !== true) this.client.resume();
    this.upstream?.resume();
  }

  /**
   * A pooled client may leave while txproxy logs it in and readies its
   * server connection, before the listeners above existed: the events are
   * gone, the socket's state is not, and the link must go back to its pool.
   */
  private noticeEarlyDeparture(): void {
    if (this.client.destroyed) this.onClientGone();
    else if (this.client.readableEnded) this.onClientEnded();
  }

  get pinReasons(): readonly string[] {
    return this.server instanceof TransactionServerSide ? this.server.pinned : [];
  }

  /** What the transaction-pooling server side asks of the session. */
  private transactionPort(): TransactionSessionPort {
    return {
      sessionId: this.info.id,
      log: this.log,
      serverChanged: (socket, pid) => {
        this.upstream = socket;
        if (socket === null) {
          this.options.backendKeys.onServer(this, this.info.backendPid, 0);
          return;
        }
        this.options.backendKeys.onServer(this, 0, pid);
        this.info.backendPid = pid;
      },
      replay: (chunk) => this.fromClient(chunk),
      pauseClient: () => this.client.pause(),
      resumeClient: () => {
        if (!this.closed && !this.paused.client && this.loginGate?.holding !== true) this.client.resume();
      },
      fail: (report) => this.close(report),
      fromServer: (chunk) => this.fromServer(chunk),
      upstreamGone: () => this.onUpstreamGone(),
      replayed: () => this.afterReplay(),
      parameterShown: (name) => this.parameters.get(name),
      terminated: () => {
        this.terminated = true;
      },
      cancelNextStatement: (on) => {
        const waiting = this.cancelNext;
        this.cancelNext = on;
        return waiting;
      },
      answerWithoutServer: (message, report) => this.answerWithoutServer(message, report),
      cancel: (packet) => {
        sendCancel(this.options.target, packet, this.options.connectTimeoutMs).catch((err: Error) => this.log.debug({ err: err.message }, 'cancel of a statement sent late failed'));
      },
      pinsChanged: (added, removed) => {
        this.log.debug({ added, removed }, 'pins changed');
        this.options.pins?.changed(this.info, added, removed);
      },
    };
  }

  /**
   * The CancelRequest to send the server for a client's cancel: the
   * client's own packet, or with a pooled connection one with the server's
   * key (the client only ever saw the key txproxy minted).
   */
  cancelPacketFor(clientPacket: Buffer): Buffer | null {
    return this.server === null ? clientPacket : this.server.cancelPacketFor(clientPacket, this.info.backendPid);
  }

  protected registerBackendKey(): void {
    this.options.backendKeys.register(this);
  }

  protected unregisterBackendKey(): void {
    this.options.backendKeys.unregister(this);
  }
}
