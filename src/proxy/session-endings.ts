/**
 * How a session ends, whoever ends it: txproxy (shutdown, a protocol
 * violation, a failed login), the client (Terminate, a half-close, a socket
 * that vanished — client-departure.ts decides what becomes of the server
 * connection then), or the server (a FATAL error, a lost connection). A
 * connection of the session's own is closed; a pooled one goes back to its
 * pool, reusable only when the client left nothing on it.
 */
import type net from 'node:net';
import { serialize } from '../protocol/frontend-messages.js';
import { cancelRequest, errorResponse, type Report } from '../protocol/encode.js';
import { MessageLengthError } from '../protocol/message-scanner.js';
import { describeTarget } from '../upstream/target.js';
import { departure } from './client-departure.js';
import { endClient } from './end-client.js';
import { ProxyErrors } from './errors.js';
import { SessionReplies } from './session-replies.js';
import { sendCancel } from './upstream.js';

const TERMINATE = serialize.end();

export abstract class SessionEndings extends SessionReplies {
  /** Transaction pooling: the client left while its messages waited for a server (see departsAfterReplay). */
  private deferredDeparture: 'reads' | 'gone' | null = null;
  /** The server's BackendKeyData no longer names this session. */
  protected abstract unregisterBackendKey(): void;

  get isClosed(): boolean {
    return this.closed;
  }

  /** SIGTERM: finish the open transaction, then close; idle sessions close now. */
  drain(): void {
    this.draining = true;
    this.closeIfIdle();
  }

  protected closeIfIdle(): void {
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

  protected failStartup(report: Report): void {
    endClient(this.client, errorResponse(report));
    this.finish(false);
  }

  protected protocolViolation(err: Error): void {
    const report =
      err instanceof MessageLengthError ? ProxyErrors.invalidMessageLength(err.message, err.source) : ProxyErrors.invalidMessage(err.message);
    this.log.warn({ reason: err.message }, 'protocol violation by client');
    this.close(report);
  }

  /** The client sent FIN: it has finished sending, and may still read (a half-close). */
  protected onClientEnded(): void {
    if (this.closed || this.departed) return;
    if (this.departsAfterReplay(true)) return;
    this.depart(true);
  }

  protected onClientGone(): void {
    if (this.closed) return;
    if (!this.departed) {
      if (!this.departsAfterReplay(false)) this.depart(false);
      return;
    }
    // Settling, and now nobody reads the answers: a server blocked writing
    // them would fail that write to a vanished client, and so it does here.
    if (this.paused.upstream) this.upstream?.destroy();
  }

  /**
   * Transaction pooling: a client that leaves while its messages wait for
   * a server, with its Terminate behind them, leaves once they went to one
   * (see TransactionServerSide.leavesMessagesToRun). True: deferred.
   */
  private departsAfterReplay(clientReads: boolean): boolean {
    if (this.upstream !== null || this.server?.leavesMessagesToRun?.() !== true) return false;
    // Once its socket has vanished, the client reads nothing more.
    this.deferredDeparture = clientReads && this.deferredDeparture !== 'gone' ? 'reads' : 'gone';
    return true;
  }

  /** The messages held for a server went to it: a departure that waited for them happens now. */
  protected afterReplay(): void {
    const deferred = this.deferredDeparture;
    if (deferred === null || this.closed || this.departed) return;
    this.deferredDeparture = null;
    this.depart(deferred === 'reads' && !this.client.destroyed);
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
    if (how === 'close' && this.server?.onLoan === true) this.giveBack();
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
    if (this.clientsTerminateWentAhead() || !this.clientScanner.idle) upstream.end();
    else upstream.end(TERMINATE);
    const timeoutMs = this.options.settleTimeoutMs;
    setTimeout(() => {
      if (upstream.destroyed) return;
      this.log.warn({ timeoutMs, pending: this.tracker.pending }, 'server did not finish within settle_timeout after the client stopped sending');
      upstream.destroy();
    }, timeoutMs).unref();
  }

  /** The client's own Terminate went to the server (never to a pooled connection, which outlives it). */
  private clientsTerminateWentAhead(): boolean {
    return this.terminated && this.server!.forwardsTerminate;
  }

  protected onUpstreamGone(): void {
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
    if (mode === 'cancel' && this.tracker.activeStatement !== null && this.backendKey !== null) this.cancelRunningStatement(this.backendKey);
    if (this.clientsTerminateWentAhead()) upstream.end();
    else if (this.clientScanner.atBoundary && this.clientScanner.idle) upstream.end(TERMINATE);
    else upstream.destroy();
    // Do not wait for a stuck server: the socket goes after a grace period.
    setTimeout(() => upstream.destroy(), 5000).unref();
  }

  private cancelRunningStatement(clientKey: Buffer): void {
    const cancel = cancelRequest(this.info.backendPid, this.server!.serverKey(clientKey));
    sendCancel(this.options.target, cancel, this.options.connectTimeoutMs).catch((err: Error) =>
      this.log.debug({ err: err.message }, 'cancel of running statement failed'),
    );
  }

  private finish(clean: boolean): void {
    if (this.closed) return;
    this.closed = true;
    this.server?.ended();
    const wasReady = this.state === 'ready';
    this.state = 'closed';
    this.unregisterBackendKey();
    // Still here: the connection was closed or is closing (rollback, settle, drop); the pool lets it go.
    if (this.server?.onLoan === true) this.giveBack();
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
  private giveBack(): void {
    const socket = this.upstream!;
    this.upstream = null;
    const reusable =
      !this.settling &&
      !this.paused.upstream &&
      !socket.writableEnded &&
      this.state === 'ready' &&
      this.tracker.status === 'I' &&
      this.tracker.pending === 0 &&
      this.serverScanner.idle &&
      this.clientScanner.idle;
    this.server!.giveBack(reusable, this.paused.upstream);
  }
}
