/**
 * The server's side of the relay: each server chunk relayed to the client,
 * the server messages the session reads on the way (login, parameters,
 * errors, ReadyForQuery), the login gate's held messages let go, and in
 * transaction pooling the answers of the server link read back through
 * the statement renaming, with the link let go at a ReadyForQuery outside
 * a transaction.
 */
import { AuthCode, Backend } from '../protocol/codes.js';
import { decodeAuthCode, decodeBackendKeyData, decodeErrorFields, decodeParameterStatus } from '../protocol/decode.js';
import { MessageLimits } from '../protocol/message-limits.js';
import { DROP, FORWARD, MessageLengthError, type Verdict } from '../protocol/message-scanner.js';
import { describeTarget } from '../upstream/target.js';
import { ProxyErrors } from './errors.js';
import { isView } from './renamed-statements.js';
import { expectsAnswer } from './session-inspect.js';
import { SessionRelay } from './session-relay.js';

export abstract class SessionReplies extends SessionRelay {
  /** Held client messages to forward once the server's chunk went to the client (see afterLoginChunk). */
  private heldForServer: Buffer | null = null;
  /** A ReadyForQuery outside a transaction came in the server chunk being relayed (see afterIdleReady). */
  private readyAtIdle = false;
  /** That ReadyForQuery came while the client was slow to read: look again once it drained. */
  private idleWhenDrained = false;

  /** Relays a chunk from the server; true when the chunk's memory is still referenced afterwards (see reused-read-buffer.ts). */
  protected fromServer(chunk: Buffer): boolean {
    if (this.closed) return false;
    let out;
    this.tracker.chunkStarted();
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
    } finally {
      this.tracker.chunkEnded();
    }
    // Settling after the client left: answers are still tracked, there is no one to send them to.
    if (this.client.destroyed) return false;
    const kept = this.relay(out, this.upstream!, this.client, 'upstream');
    if (this.loginGate !== null) this.afterLoginChunk();
    if (this.draining) this.closeIfIdle();
    if (this.readyAtIdle) this.afterIdleReady();
    return kept;
  }

  /**
   * Transaction pooling: the server said ReadyForQuery outside a
   * transaction. With nothing in flight either way (a client may pipeline
   * its next transaction behind this one) the server side may let the link go.
   */
  private afterIdleReady(): void {
    this.readyAtIdle = false;
    const quiet =
      !this.closed &&
      !this.departed &&
      this.state === 'ready' &&
      this.tracker.status === 'I' &&
      this.tracker.pending === 0 &&
      this.renamed!.pending === 0 &&
      this.clientScanner.idle &&
      this.serverScanner.idle &&
      !this.paused.client;
    if (!quiet) return;
    if (this.paused.upstream) this.idleWhenDrained = true;
    else this.server!.idle?.();
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


  protected onServerMessage(type: number, buf: Buffer, start: number, end: number): Verdict {
    if (this.state !== 'ready') return this.onStartupServerMessage(type, buf, start, end);
    if (this.renamed === null || this.info.replication) return this.onServerMessageAsRead(type, buf, start, end);
    if (type === Backend.ReadyForQuery && buf[start + 5] === 0x49 /* I */) this.readyAtIdle = true;
    const seen = this.renamed.fromServer(this.linkStatements()!, buf, start, end);
    if (seen === null || (seen.length === 1 && isView(seen[0], buf, start, end))) return this.onServerMessageAsRead(type, buf, start, end);
    const out: Buffer[] = [];
    for (const message of seen) {
      const own = isView(message, buf, start, end);
      const verdict = own ? this.onServerMessageAsRead(type, buf, start, end) : this.onServerMessageAsRead(message[0], message, 0, message.length);
      if (verdict === undefined) out.push(message);
      else if (verdict !== null) out.push(verdict);
    }
    return out.length === 0 ? DROP : Buffer.concat(out);
  }

  protected onServerMessageAsRead(type: number, buf: Buffer, start: number, end: number): Verdict {
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
    this.server!.loginMessage(clientsTurn, type === Backend.ReadyForQuery);
    switch (type) {
      case Backend.Authentication: {
        const code = decodeAuthCode(buf, start);
        if (code === AuthCode.Ok) this.clientScanner.setLimits(MessageLimits.frontend(this.options.maxMessageLength));
        if (this.loginGate !== null && expectsAnswer(code)) {
          const held = this.loginGate.serverAsked();
          if (held.length > 0) this.heldForServer = held;
        }
        return this.server!.serverRequest(buf, start, end);
      }
      case Backend.BackendKeyData: {
        const { pid, key } = decodeBackendKeyData(buf, start, end);
        this.info.backendPid = pid;
        this.keyPid = pid;
        this.backendKey = key;
        this.registerBackendKey();
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
        // Transaction pooling: a client that says nothing yet holds no server.
        if (this.renamed !== null) this.readyAtIdle = true;
        this.server!.loginDone();
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

  protected override afterDrain(): void {
    if (!this.idleWhenDrained) return;
    this.idleWhenDrained = false;
    this.afterIdleReady();
  }
}
