/**
 * A server connection of the session's own (no pooling): txproxy connects,
 * forwards the client's StartupMessage and relays the authentication, so
 * the client logs in to the server itself. The client's cancel key is the
 * server's, and the connection ends with its client.
 */
import type net from 'node:net';
import type { Logger } from 'pino';
import type { Report } from '../protocol/encode.js';
import { FORWARD, type Verdict } from '../protocol/message-scanner.js';
import { describeTarget, type UpstreamTarget } from '../upstream/target.js';
import { AuthenticationRelay } from './authentication-relay.js';
import { connectFailureReason, ProxyErrors } from './errors.js';
import { LoginDeadline } from './login-deadline.js';
import { readIntoReusedBuffer } from './reused-read-buffer.js';
import type { ServerSide } from './server-side.js';
import { startUpstream, UpstreamTlsError, type UpstreamConnection } from './upstream.js';

export interface RelayedServerOptions {
  target: UpstreamTarget;
  connectTimeoutMs: number;
  reuseReadBuffer: boolean;
}

/** What the relay is told of the connection. */
export interface RelayedServerEvents {
  /** A chunk from the server; true when its memory is still referenced afterwards (see reused-read-buffer.ts). */
  onData(chunk: Buffer): boolean;
  /** The connection closed. */
  onClose(): void;
  /** The server stalled the login past connect_timeout: the client is to be told `report`. */
  onStall(report: Report): void;
}

export class RelayedServerSide implements ServerSide {
  readonly forwardsTerminate = true;
  readonly onLoan = false;
  socket: net.Socket | null = null;
  /** Authentication relayed untouched but for channel binding; null once authenticated. */
  private authentication: AuthenticationRelay | null = null;
  /** connect_timeout while the server owes the login an answer; null once the session is ready. */
  private deadline: LoginDeadline | null = null;
  private readonly connectStarted = Date.now();

  constructor(
    private readonly options: RelayedServerOptions,
    private readonly log: Logger,
  ) {}

  /**
   * Connects and sends the StartupMessage, retrying with the other
   * encryption choice where the sslmode allows one (allow, prefer). On
   * failure, the report the client is to get.
   */
  async connect(startupPacket: Buffer): Promise<(UpstreamConnection & { initial: Buffer }) | Report> {
    const target = this.options.target;
    try {
      return await startUpstream(target, startupPacket, this.options.connectTimeoutMs, (reason) =>
        this.log.info({ upstream: describeTarget(target), sslmode: target.sslmode, reason }, 'upstream rejected the first encryption choice: retrying'),
      );
    } catch (err) {
      const reason = connectFailureReason(err as Error);
      this.log.warn({ upstream: describeTarget(target), reason }, 'upstream unreachable');
      return err instanceof UpstreamTlsError
        ? ProxyErrors.upstreamTlsFailed(describeTarget(target), reason)
        : ProxyErrors.upstreamUnreachable(describeTarget(target), reason);
    }
  }

  /**
   * Starts reading the connection into the relay, the login timed from
   * connecting. Returns what was read before, to be relayed first.
   */
  adopt(connection: UpstreamConnection, client: net.Socket, events: RelayedServerEvents): Buffer | null {
    const adopted = readIntoReusedBuffer(connection.socket, events.onData, this.options.reuseReadBuffer);
    const upstream = adopted.socket;
    this.socket = upstream;
    this.authentication = new AuthenticationRelay(client, upstream, connection.tls);
    upstream.on('error', (err) => this.log.debug({ err: err.message }, 'upstream socket error'));
    upstream.on('close', events.onClose);
    // The server's first whole answer must come within connect_timeout of connecting.
    const timeoutMs = this.options.connectTimeoutMs;
    const deadline = new LoginDeadline(timeoutMs, (first) => this.stalled(upstream, first, events));
    this.deadline = deadline;
    upstream.once('close', () => deadline.clear());
    deadline.serverOwes(this.connectStarted + timeoutMs - Date.now());
    return adopted.pending;
  }

  /**
   * A server that accepts the connection but stops answering during the
   * login (hung, overloaded, or not PostgreSQL at all) must not hold the
   * client forever: see LoginDeadline. Only the login is timed, so the
   * steady state pays nothing.
   */
  private stalled(upstream: net.Socket, firstAnswer: boolean, events: RelayedServerEvents): void {
    const timeoutMs = this.options.connectTimeoutMs;
    const upstreamName = describeTarget(this.options.target);
    this.log.warn({ upstream: upstreamName, timeoutMs, firstAnswer }, 'upstream stalled during login');
    upstream.destroy();
    const reason = firstAnswer
      ? `the server accepted the connection but sent no complete answer within ${timeoutMs} ms (connect_timeout)`
      : `the server stopped answering during login for ${timeoutMs} ms (connect_timeout)`;
    events.onStall(ProxyErrors.upstreamUnreachable(upstreamName, reason));
  }

  serverRequest(buf: Buffer, start: number, end: number): Verdict {
    return this.authentication?.serverRequest(buf, start, end) ?? FORWARD;
  }

  clientResponse(buf: Buffer, start: number, end: number): Verdict {
    // The client answered: the server owes the next step.
    this.deadline?.serverOwes();
    return this.authentication?.clientResponse(buf, start, end) ?? FORWARD;
  }

  loginMessage(clientsTurn: boolean, ready: boolean): void {
    this.deadline?.serverMessage(clientsTurn, ready);
  }

  loginDone(): void {
    this.authentication = null;
    this.deadline = null;
  }

  /** The client got the server's own key: its CancelRequest goes as it is. */
  cancelPacketFor(clientPacket: Buffer): Buffer {
    return clientPacket;
  }

  serverKey(clientKey: Buffer): Buffer {
    return clientKey;
  }

  giveBack(): void {
    throw new Error('a server connection of the session itself is closed, never given back');
  }

  ended(): void {
    this.deadline?.clear();
  }
}
