/**
 * Logs a client in on txproxy's side (pooling): reads the client's password
 * messages off its socket, lets ClientAuthenticator decide, and writes its
 * answers. What the client sent after its last authentication message (a
 * pipelined query) is handed back, untouched, for the session to judge and
 * trace like anything else.
 *
 * As PostgreSQL before it accepts a login: every message must be a password
 * message of at most PG_MAX_AUTH_TOKEN_LENGTH bytes, and the whole exchange
 * must end within the authentication timeout.
 */
import type net from 'node:net';
import { ClientAuthenticator, type AuthMethod, type AuthStep, type ServerCredentials } from '../auth/client-authenticator.js';
import type { Secret } from '../auth/userlist.js';
import { errorResponse, type Report } from '../protocol/encode.js';
import { PG_MAX_AUTH_TOKEN_LENGTH } from '../protocol/message-limits.js';
import { endClient } from '../proxy/end-client.js';
import { MessageReader, MessageTooLongError, type WholeMessage } from '../server-link/message-reader.js';

export interface ClientLoginOptions {
  method: AuthMethod;
  /** The user's stored secret (auth file, auth query); null when nobody knows the user. */
  lookupSecret(user: string): Promise<Secret | null>;
  timeoutMs: number;
  /** Sent before the first authentication request (NegotiateProtocolVersion), if any. */
  preamble?: Buffer;
}

export type ClientLoginResult =
  | { kind: 'ok'; credentials: ServerCredentials; secret: Secret | null; rest: Buffer }
  /** The client was refused (the FATAL went out and its socket is closing) or left. */
  | { kind: 'ended'; reason: string; report: Report | null };

export const LoginErrors = {
  timeout(): Report {
    // PostgreSQL's words for authentication_timeout.
    return { severity: 'FATAL', code: '08006', message: 'canceling authentication due to timeout' };
  },
  notPassword(type: number): Report {
    return { severity: 'FATAL', code: '08P01', message: `expected password response, got message type ${type}` };
  },
  invalidLength(reason: string): Report {
    return { severity: 'FATAL', code: '08P01', message: `invalid message during authentication: ${reason}` };
  },
  lookupFailed(user: string, reason: string): Report {
    return {
      severity: 'FATAL',
      code: '08006',
      message: `txproxy could not look up the password of user "${user}": ${reason}`,
      hint: 'Check auth.query and that auth.user can log in to the server.',
    };
  },
};

/** `initial`: bytes the client sent behind its StartupMessage. The socket is paused and read here until the login ends. */
export function loginClient(socket: net.Socket, user: string, initial: Buffer, options: ClientLoginOptions): Promise<ClientLoginResult> {
  return new Promise((resolve) => {
    const reader = new MessageReader(PG_MAX_AUTH_TOKEN_LENGTH);
    let authenticator: ClientAuthenticator | null = null;
    let secret: Secret | null = null;
    /** Client bytes read before the secret was known. */
    const early: Buffer[] = initial.length > 0 ? [initial] : [];
    let settled = false;

    const timer = setTimeout(() => refuse(LoginErrors.timeout()), options.timeoutMs);

    function settle(result: ClientLoginResult): void {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      socket.off('data', onData);
      socket.off('close', onClose);
      socket.pause();
      resolve(result);
    }

    function refuse(report: Report): void {
      if (settled) return;
      settle({ kind: 'ended', reason: report.message, report });
      endClient(socket, errorResponse(report));
    }

    function onClose(): void {
      settle({ kind: 'ended', reason: 'client closed the connection during authentication', report: null });
    }

    /** Writes the step's messages; true when the login is over. */
    function apply(step: AuthStep, after: WholeMessage[]): boolean {
      if (step.refused !== undefined) {
        settle({ kind: 'ended', reason: step.refused.message, report: step.refused });
        endClient(socket, Buffer.concat(step.send));
        return true;
      }
      socket.write(step.send.length === 1 ? step.send[0] : Buffer.concat(step.send));
      if (step.loggedIn === undefined) return false;
      settle({ kind: 'ok', credentials: step.loggedIn, secret, rest: Buffer.concat([...after.map(reframe), reader.takeRest()]) });
      return true;
    }

    function onData(chunk: Buffer): void {
      if (authenticator === null) {
        early.push(chunk);
        return;
      }
      const messages = read(chunk);
      if (messages !== null) answer(authenticator, messages);
    }

    function read(chunk: Buffer): WholeMessage[] | null {
      try {
        return reader.push(chunk);
      } catch (err) {
        if (!(err instanceof MessageTooLongError)) throw err;
        refuse(LoginErrors.invalidLength(err.message));
        return null;
      }
    }

    function answer(auth: ClientAuthenticator, messages: WholeMessage[]): void {
      for (let i = 0; i < messages.length; i++) {
        const message = messages[i];
        // A client that gives up sends Terminate: PostgreSQL just closes.
        if (message.type === 'X') return onClose();
        if (message.type !== 'p') return refuse(LoginErrors.notPassword(message.type.charCodeAt(0)));
        if (apply(auth.onPassword(message.body), messages.slice(i + 1))) return;
      }
    }

    socket.on('data', onData);
    socket.on('close', onClose);
    socket.resume();
    options.lookupSecret(user).then(
      (found) => {
        if (settled) return;
        secret = found;
        const auth = new ClientAuthenticator(options.method, user, found);
        authenticator = auth;
        const first = auth.begin();
        if (options.preamble !== undefined) first.send.unshift(options.preamble);
        const aheadBytes = Buffer.concat(early.splice(0));
        if (first.loggedIn !== undefined) {
          // Trust: the login is over at once, and everything sent ahead is the session's, under its limits.
          socket.write(Buffer.concat(first.send));
          settle({ kind: 'ok', credentials: first.loggedIn, secret, rest: aheadBytes });
          return;
        }
        socket.write(Buffer.concat(first.send));
        // What arrived while the secret was looked up, read now so that it keeps its order.
        const ahead = read(aheadBytes);
        if (ahead !== null) answer(auth, ahead);
      },
      (err: Error) => refuse(LoginErrors.lookupFailed(user, err.message)),
    );
  });
}

/** A whole message back in its wire form. */
function reframe(message: WholeMessage): Buffer {
  const out = Buffer.allocUnsafe(5 + message.body.length);
  out[0] = message.type.charCodeAt(0);
  out.writeInt32BE(4 + message.body.length, 1);
  message.body.copy(out, 5);
  return out;
}

