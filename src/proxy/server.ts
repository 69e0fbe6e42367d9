/**
 * The listener: accepts clients, runs the startup handshake (at most
 * max_pending_handshakes at once, each within handshake_timeout), enforces
 * max_client_conn, routes CancelRequests to the session that owns the
 * backend, and drains sessions on shutdown.
 */
import { EventEmitter } from 'node:events';
import net from 'node:net';
import type tls from 'node:tls';
import type { Logger } from 'pino';
import { errorResponse } from '../protocol/encode.js';
import type { TrackerListener } from '../tracker/types.js';
import { BackendKeyRegistry } from './backend-keys.js';
import { clientHandshake } from './client-handshake.js';
import { endClient } from './end-client.js';
import { ProxyErrors } from './errors.js';
import { isReplication, Session, type SessionInterceptor, type SessionOptions } from './session.js';
import { sendCancel } from './upstream.js';
import type { UpstreamTarget } from '../upstream/target.js';
import type { PinObserver } from '../pool/pin-report.js';
import { connectPooled, type PooledConnectOptions } from '../pool/pooled-connect.js';
import { newSessionId } from '../tracker/session-ids.js';

/** What the listener needs to pool: how clients log in, and the pools. */
export type PooledServers = PooledConnectOptions;

export interface ProxyServerOptions {
  host: string;
  port: number;
  target: UpstreamTarget;
  maxClientConn: number;
  /** Connections allowed in the startup handshake at once; more are refused at once. */
  maxPendingHandshakes: number;
  /** How long a client may take to send its startup packet. */
  handshakeTimeoutMs: number;
  maxMessageLength: number;
  reuseReadBuffer: boolean;
  connectTimeoutMs: number;
  /** After a client stopped sending, how long the server may take to finish what it sent. */
  settleTimeoutMs: number;
  tlsContext: tls.SecureContext | null;
  listener: TrackerListener;
  log: Logger;
  interceptor?: (session: Session) => SessionInterceptor;
  /** Pooling (src/pool): clients log in to txproxy and borrow server connections. Replication connections never do. */
  pooled?: PooledServers;
  /** Transaction pooling: who is told of pinned clients. */
  pins?: PinObserver;
}

export class ProxyServer extends EventEmitter {
  readonly sessions = new Set<Session>();
  readonly backendKeys = new BackendKeyRegistry<Session>();
  private readonly server: net.Server;
  private readonly sockets = new Set<net.Socket>();
  private stopping = false;
  /** Connections in clientHandshake now. */
  private pendingHandshakes = 0;
  private readonly shedLog = new FloodLog();
  private readonly acceptLog = new FloodLog();

  constructor(private readonly options: ProxyServerOptions) {
    super();
    // allowHalfOpen: a client that shuts down its sending side still gets its answers, as from PostgreSQL.
    this.server = net.createServer({ noDelay: true, pauseOnConnect: true, allowHalfOpen: true }, (socket) => this.accept(socket));
  }

  /** Starts listening; resolves with the bound address (port 0 picks a free one). */
  listen(): Promise<net.AddressInfo> {
    return new Promise((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(this.options.port, this.options.host, () => {
        this.server.off('error', reject);
        // Once listening, an error is a failed accept (EMFILE when out of file
        // descriptors): libuv has already closed that connection; log and go on.
        this.server.on('error', (err) => this.acceptLog.failed(err, this.options.log));
        resolve(this.server.address() as net.AddressInfo);
      });
    });
  }

  get address(): net.AddressInfo {
    return this.server.address() as net.AddressInfo;
  }

  /** Open client connections, including those still in the startup handshake or being refused. */
  get clientConnections(): number {
    return this.sockets.size;
  }

  /** Connections in the startup handshake now (not yet sessions). */
  get handshakesInProgress(): number {
    return this.pendingHandshakes;
  }

  private async accept(socket: net.Socket): Promise<void> {
    this.track(socket);
    socket.on('error', () => undefined);
    const client = socket.remoteAddress ?? 'local';
    if (this.pendingHandshakes >= this.options.maxPendingHandshakes) {
      this.refuseHandshake(socket, client);
      return;
    }
    this.pendingHandshakes++;
    let result;
    try {
      result = await clientHandshake(socket, { tlsContext: this.options.tlsContext, timeoutMs: this.options.handshakeTimeoutMs });
    } finally {
      this.pendingHandshakes--;
    }
    if (result.kind === 'closed') {
      if (result.refusal !== null) this.options.log.warn({ client, code: result.refusal.code, reason: result.reason }, 'client refused during startup');
      else if (result.violation === true) this.options.log.info({ client, reason: result.reason }, 'client closed without reply: invalid startup packet');
      else this.options.log.debug({ client, reason: result.reason }, 'client left during startup');
      return;
    }
    if (result.kind === 'cancel') {
      result.socket.destroy();
      this.forwardCancel(result.pid, result.key, result.packet);
      return;
    }
    if (this.stopping) {
      endClient(result.socket, errorResponse(ProxyErrors.shuttingDown()));
      return;
    }
    if (this.sessions.size >= this.options.maxClientConn) {
      this.options.log.warn({ limit: this.options.maxClientConn }, 'client refused: max_client_conn reached');
      endClient(result.socket, errorResponse(ProxyErrors.tooManyClients(this.options.maxClientConn)));
      return;
    }
    // Minted before the login: a pool names the session holding each of its links.
    const id = newSessionId();
    const pooled = this.options.pooled;
    let borrowed: SessionOptions['borrowed'];
    let startup: { packet: Buffer; params: Record<string, string>; rest: Buffer } = result;
    if (pooled !== undefined && !isReplication(result.params)) {
      const connected = await connectPooled(result.socket, result, pooled, id);
      if (connected.kind === 'ended') {
        if (connected.report !== null) this.options.log.warn({ client, code: connected.report.code, reason: connected.reason }, 'client refused at login');
        else this.options.log.debug({ client, reason: connected.reason }, 'client left during login');
        return;
      }
      borrowed = { server: connected.server, lender: pooled.lender, maxPreparedStatements: pooled.maxPreparedStatements, sessionState: pooled.sessionState };
      startup = { ...result, rest: connected.server.rest };
    }
    const session = new Session(result.socket, startup, {
      id,
      borrowed,
      target: this.options.target,
      maxMessageLength: this.options.maxMessageLength,
      reuseReadBuffer: this.options.reuseReadBuffer,
      connectTimeoutMs: this.options.connectTimeoutMs,
      settleTimeoutMs: this.options.settleTimeoutMs,
      listener: this.options.listener,
      log: this.options.log,
      backendKeys: this.backendKeys,
      interceptor: this.options.interceptor,
      pins: this.options.pins,
    });
    // The session may read the connection through a new socket object (see reused-read-buffer.ts).
    if (session.clientSocket !== result.socket) this.track(session.clientSocket);
    this.sessions.add(session);
    session.once('close', () => {
      this.sessions.delete(session);
      this.emit('sessionClosed', session);
      if (this.stopping && this.sessions.size === 0) this.emit('drained');
    });
    this.emit('session', session);
    await session.start();
  }

  /**
   * Too many connections are still in their startup handshake (clients that
   * connect and say nothing hold one each): the newcomer is told at once,
   * as the postmaster tells a client it cannot start a backend for, and its
   * descriptor is freed as soon as the message is handed to the kernel — a
   * flood that reconnects as fast as it is refused must not hold more.
   */
  private refuseHandshake(socket: net.Socket, client: string): void {
    const limit = this.options.maxPendingHandshakes;
    const refused = this.shedLog.count();
    if (refused > 0) this.options.log.warn({ client, limit, refused }, 'client refused: max_pending_handshakes reached');
    socket.end(errorResponse(ProxyErrors.tooManyPendingHandshakes(limit)));
    socket.once('finish', () => socket.destroy());
    setTimeout(() => socket.destroy(), REFUSED_HANDSHAKE_GRACE_MS).unref();
  }

  private track(socket: net.Socket): void {
    this.sockets.add(socket);
    socket.once('close', () => this.sockets.delete(socket));
  }

  private forwardCancel(pid: number, key: Buffer, packet: Buffer): void {
    const owner = this.backendKeys.match(pid, key);
    if (owner === undefined) {
      // The server ignores a cancel it cannot match; so do we.
      this.options.log.debug({ pid }, 'cancel request for unknown backend ignored');
      return;
    }
    const cancel = owner.cancelPacketFor(packet);
    // A client between transactions in transaction pooling holds no server: nothing runs for it.
    if (cancel === null) return;
    sendCancel(this.options.target, cancel, this.options.connectTimeoutMs).catch((err: Error) =>
      this.options.log.warn({ pid, err: err.message }, 'could not forward cancel request'),
    );
  }

  /**
   * Stops accepting; idle sessions close now, the others when their
   * transaction ends; whatever is left after `drainMs` is closed (the
   * server rolls those transactions back).
   */
  async shutdown(drainMs: number): Promise<void> {
    this.stopping = true;
    const closed = new Promise<void>((resolve) => this.server.close(() => resolve()));
    for (const session of this.sessions) session.drain();
    if (this.sessions.size > 0) {
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, drainMs);
        timer.unref();
        this.once('drained', () => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
    for (const session of this.sessions) session.close(ProxyErrors.shuttingDown());
    for (const socket of this.sockets) socket.destroy();
    await closed;
  }
}

/** The longest a refused connection is kept should its last message not go out at once. */
const REFUSED_HANDSHAKE_GRACE_MS = 1000;

/**
 * A flood of refused or failed connections logs one line per interval,
 * with how many there were since the last line.
 */
class FloodLog {
  private lastLogged = 0;
  private seen = 0;

  /** Counts one; returns how many to report now, or 0 to stay quiet. */
  count(): number {
    this.seen++;
    const now = Date.now();
    if (now - this.lastLogged < FLOOD_LOG_INTERVAL_MS) return 0;
    this.lastLogged = now;
    const n = this.seen;
    this.seen = 0;
    return n;
  }

  failed(err: Error, log: Logger): void {
    const failed = this.count();
    if (failed > 0) log.error({ err: err.message, failed }, 'could not accept a client connection');
  }
}

const FLOOD_LOG_INTERVAL_MS = 10_000;
