/**
 * A server connection txproxy opens and logs in to itself, for the pool:
 * the socket, the backend's identity (pid and cancel key), the parameters
 * it reported, and a way to run txproxy's own statements on it while no
 * client holds it (the reset query, the check query, parameter changes).
 *
 * While a client holds the link, the client's session reads and writes the
 * socket; `lend()` stops this module reading it and `reclaim()` starts
 * again. Control statements are simple queries whose answers are read here
 * and never reach a client.
 */
import type net from 'node:net';
import type { ServerCredentials } from '../auth/client-authenticator.js';
import { errorFieldsOfBody, ServerLogin } from '../auth/server-login.js';
import type { TxStatus } from '../protocol/codes.js';
import type { ErrorFields } from '../protocol/decode.js';
import { serialize } from '../protocol/frontend-messages.js';
import { startUpstream } from '../proxy/upstream.js';
import { describeTarget, type UpstreamTarget } from '../upstream/target.js';
import { readIntoReusedBuffer } from '../proxy/reused-read-buffer.js';
import { MessageReader } from './message-reader.js';

export interface LinkIdentity {
  user: string;
  database: string;
  /** Further startup parameters (application_name, options, …). */
  parameters?: Record<string, string>;
}

export class LinkError extends Error {
  constructor(
    message: string,
    readonly fields?: ErrorFields,
  ) {
    super(message);
    this.name = 'LinkError';
  }
}

export interface ControlResult {
  /** CommandComplete tags, in order. */
  tags: string[];
  /** The first error the statements raised, if any. */
  error: ErrorFields | null;
  /** The transaction status of the ReadyForQuery that ended them. */
  status: TxStatus;
  /** The rows they returned, each column as text (null for NULL). */
  rows: (string | null)[][];
  /**
   * NotificationResponse messages (whole, header included) that arrived
   * meanwhile: on a link a LISTENing client holds, they are the client's.
   */
  notifications: Buffer[];
}

function startupPacket(identity: LinkIdentity): Buffer {
  const params: Record<string, string> = { user: identity.user, database: identity.database, ...identity.parameters };
  const body = Buffer.concat([...Object.entries(params).map(([k, v]) => Buffer.from(`${k}\0${v}\0`)), Buffer.from([0])]);
  const packet = Buffer.alloc(8 + body.length);
  packet.writeInt32BE(packet.length, 0);
  packet.writeInt32BE(196608, 4);
  body.copy(packet, 8);
  return packet;
}

/** How long a closed link waits for the server to close its side. */
const CLOSE_GRACE_MS = 5000;

export class ServerLink {
  readonly createdAt = Date.now();
  lastUsedAt = Date.now();
  private readonly reader = new MessageReader();
  private waiting: { resolve: (r: ControlResult) => void; reject: (e: Error) => void; result: ControlResult } | null = null;
  /** The borrowing session's reader: true when it still refers to the chunk afterwards (see reused-read-buffer.ts). */
  private borrower: ((chunk: Buffer) => boolean) | null = null;
  private borrowerClose: (() => void) | null = null;
  /** See takeNotifications. */
  private readonly unclaimed: Buffer[] = [];
  /** The socket, read from login on into one reused buffer where it can be (as a session's own connection is). */
  readonly socket: net.Socket;
  private closedReason: string | null = null;
  private readonly closeListeners: ((reason: string) => void)[] = [];

  /** `socket`: paused, and read by nobody else from now on. */
  private constructor(
    socket: net.Socket,
    readonly tls: boolean,
    readonly backendPid: number,
    readonly backendKey: Buffer,
    /** What the server reported at login and since, by name. */
    readonly parameters: Map<string, string>,
    reuseReadBuffer: boolean,
  ) {
    const adopted = readIntoReusedBuffer(socket, (chunk) => this.onChunk(chunk), reuseReadBuffer);
    this.socket = adopted.socket;
    this.socket.on('close', () => {
      this.onGone('the server closed the connection');
      this.borrowerClose?.();
    });
    this.socket.on('error', (err) => this.onGone(err.message));
    if (adopted.pending !== null) this.onChunk(adopted.pending);
    this.socket.resume();
  }

  /** Connects, logs in with `credentials` and waits for the first ReadyForQuery. */
  static async open(target: UpstreamTarget, identity: LinkIdentity, credentials: ServerCredentials, timeoutMs: number, reuseReadBuffer = true): Promise<ServerLink> {
    const deadline = Date.now() + timeoutMs;
    const connection = await startUpstream(target, startupPacket(identity), timeoutMs);
    const { socket } = connection;
    const login = new ServerLogin(identity.user, credentials);
    const reader = new MessageReader();
    return new Promise<ServerLink>((resolve, reject) => {
      const fail = (message: string, fields?: ErrorFields) => {
        cleanup();
        socket.destroy();
        reject(new LinkError(message, fields));
      };
      const timer = setTimeout(() => fail(`timeout logging in to ${describeTarget(target)}`), Math.max(0, deadline - Date.now()));
      const onData = (chunk: Buffer) => {
        for (const message of reader.push(chunk)) {
          const step = login.onMessage(message.type, message.body);
          for (const out of step.send ?? []) socket.write(out);
          if (step.failed !== undefined) return fail(step.failed.message, step.failed.fields);
          if (step.done !== undefined) {
            cleanup();
            socket.pause();
            return resolve(new ServerLink(socket, connection.tls, step.done.backendPid, step.done.backendKey, step.done.parameters, reuseReadBuffer));
          }
        }
      };
      const onClose = () => fail(`${describeTarget(target)} closed the connection during login`);
      const cleanup = () => {
        clearTimeout(timer);
        socket.off('data', onData);
        socket.off('close', onClose);
      };
      socket.on('data', onData);
      socket.on('close', onClose);
      // Negotiating encryption (sslmode prefer or allow) leaves the socket paused.
      socket.resume();
      if (connection.initial.length > 0) onData(connection.initial);
    });
  }

  get closed(): boolean {
    return this.closedReason !== null;
  }

  /** Why the link is closed; null while it is open. */
  get closeReason(): string | null {
    return this.closedReason;
  }

  /** Calls `listener` once, when the link closes for whatever reason (close(), the server, the network). */
  onClosed(listener: (reason: string) => void): void {
    if (this.closedReason !== null) queueMicrotask(() => listener(this.closedReason!));
    else this.closeListeners.push(listener);
  }

  /** Runs txproxy's own statements (one simple Query) and reads their answer. */
  run(sql: string): Promise<ControlResult> {
    if (this.closedReason !== null) return Promise.reject(new LinkError(this.closedReason));
    // Lent but not yet attached, the borrower may still run statements of txproxy's own (a client's startup settings).
    if (this.borrower !== null || this.waiting !== null) return Promise.reject(new LinkError('the server connection is busy'));
    return new Promise((resolve, reject) => {
      this.waiting = { resolve, reject, result: { tags: [], error: null, status: 'I', rows: [], notifications: [] } };
      this.socket.write(serialize.query(sql));
    });
  }

  /** Lent to a client; txproxy reads the socket until the client's session attaches. */
  lend(): void {
    this.lastUsedAt = Date.now();
  }

  /**
   * The borrowing session reads the socket from now on: every chunk goes to
   * `onData` as it arrives. The session may pause and resume the socket
   * (backpressure); reclaim() resumes it. Null: txproxy reads it again
   * (its own statements on a link still on loan). `onClose` is told when
   * the socket closes under the session.
   */
  attach(onData: ((chunk: Buffer) => boolean) | null, onClose: (() => void) | null = null): void {
    this.borrower = onData;
    this.borrowerClose = onClose;
  }

  /** Notifications that came while no borrower read the link nor txproxy ran anything on it. */
  takeNotifications(): Buffer[] {
    return this.unclaimed.splice(0);
  }

  /** Back from a client, which has read every answer up to a ReadyForQuery. */
  reclaim(): void {
    this.borrower = null;
    this.borrowerClose = null;
    this.unclaimed.length = 0;
    this.lastUsedAt = Date.now();
    this.socket.resume();
  }

  close(): void {
    this.markClosed('closed by txproxy');
    this.borrower = null;
    this.borrowerClose = null;
    if (this.socket.destroyed) return;
    // Terminate, as a client leaving politely would, so the server logs no "unexpected EOF".
    this.socket.end(serialize.end());
    // A borrower may have left the socket paused: read on to the server's EOF, and do not wait for a stuck server.
    this.socket.resume();
    setTimeout(() => this.socket.destroy(), CLOSE_GRACE_MS).unref();
  }

  /** A chunk read off the socket; true when it is still referred to afterwards. */
  private onChunk(chunk: Buffer): boolean {
    if (this.borrower !== null) return this.borrower(chunk);
    this.onControlData(chunk);
    // The reader may keep (part of) the chunk for a message not yet whole.
    return true;
  }

  private onControlData(chunk: Buffer): void {
    for (const message of this.reader.push(chunk)) {
      const waiting = this.waiting;
      if (message.type === 'S') {
        const nul = message.body.indexOf(0);
        this.parameters.set(message.body.toString('utf8', 0, nul), message.body.toString('utf8', nul + 1, message.body.length - 1));
      }
      if (waiting === null) {
        // An idle backend raises an error only as it ends the session
        // (pg_terminate_backend, idle_session_timeout, shutdown): the link is
        // unusable from now, before its socket's close event arrives.
        if (message.type === 'E') {
          const fields = errorFieldsOfBody(message.body);
          this.onGone(`the server ended the session: ${fields.message} (${fields.code})`);
          this.socket.destroy();
        }
        // A listening client's notification, between txproxy's statements and the client's next turn.
        if (message.type === 'A' && this.unclaimed.length < MAX_UNCLAIMED) this.unclaimed.push(wholeMessage(message.type, message.body));
        continue; // a notice or a parameter change while idle
      }
      if (message.type === 'D') waiting.result.rows.push(dataRowColumns(message.body));
      if (message.type === 'A') waiting.result.notifications.push(wholeMessage(message.type, message.body));
      if (message.type === 'C') waiting.result.tags.push(message.body.toString('utf8', 0, message.body.length - 1));
      if (message.type === 'E' && waiting.result.error === null) {
        waiting.result.error = errorFieldsOfBody(message.body);
      }
      if (message.type === 'Z') {
        this.waiting = null;
        waiting.result.status = String.fromCharCode(message.body[0]) as TxStatus;
        waiting.resolve(waiting.result);
      }
    }
  }

  private markClosed(reason: string): void {
    if (this.closedReason !== null) return;
    this.closedReason = reason;
    for (const listener of this.closeListeners.splice(0)) listener(reason);
  }

  private onGone(reason: string): void {
    this.markClosed(reason);
    const waiting = this.waiting;
    this.waiting = null;
    waiting?.reject(new LinkError(reason));
  }
}

/** Notifications kept for a borrower at most (a listener that never reads them must not grow memory). */
const MAX_UNCLAIMED = 1024;

/** A message as it came on the wire: type byte, length, body. */
function wholeMessage(type: string, body: Buffer): Buffer {
  const out = Buffer.allocUnsafe(5 + body.length);
  out[0] = type.charCodeAt(0);
  out.writeInt32BE(4 + body.length, 1);
  body.copy(out, 5);
  return out;
}

/** A DataRow's columns as text; null for NULL. */
function dataRowColumns(body: Buffer): (string | null)[] {
  const count = body.readInt16BE(0);
  const columns: (string | null)[] = [];
  let pos = 2;
  for (let i = 0; i < count; i++) {
    const length = body.readInt32BE(pos);
    pos += 4;
    if (length < 0) {
      columns.push(null);
      continue;
    }
    columns.push(body.toString('utf8', pos, pos + length));
    pos += length;
  }
  return columns;
}
