/**
 * How to open a connection to the upstream PostgreSQL server with the TLS
 * behaviour libpq gives the URL's `sslmode` (where it is: src/upstream/target.ts).
 * https://www.postgresql.org/docs/current/libpq-ssl.html#LIBPQ-SSL-SSLMODE-STATEMENTS
 */
import { readFileSync } from 'node:fs';
import net from 'node:net';
import tls from 'node:tls';
import { decodeErrorFields } from '../protocol/decode.js';
import { serialize } from '../protocol/frontend-messages.js';
import { socketPath, type UpstreamTarget } from '../upstream/target.js';

/** Callers written against this module's earlier shape read the parser from here. */
export { parseUpstreamUrl } from '../upstream/target.js';

export interface UpstreamConnection {
  socket: net.Socket;
  /** The link to the server is TLS: SCRAM channel binding must then be withheld from the client. */
  tls: boolean;
}

/** The upstream refused TLS, or the TLS handshake or certificate check failed. */
export class UpstreamTlsError extends Error {
  override name = 'UpstreamTlsError';
}

/**
 * The encryption attempts libpq makes for each sslmode, in order: `allow`
 * tries plain first and TLS if the server rejects that; `prefer` the other
 * way round. Unix sockets are never encrypted.
 */
export function encryptionAttempts(target: UpstreamTarget): boolean[] {
  if (target.host.startsWith('/')) return [false];
  switch (target.sslmode) {
    case 'disable':
      return [false];
    case 'allow':
      return [false, true];
    case 'prefer':
      return [true, false];
    default:
      return [true];
  }
}

/**
 * Opens a connection with the first encryption choice of the sslmode
 * (`prefer` settles for plain when the server declines TLS). Rejects with
 * an Error whose message says what failed: refused, timed out, TLS refused
 * by the server, certificate not trusted.
 */
export async function connectUpstream(target: UpstreamTarget, timeoutMs: number): Promise<UpstreamConnection> {
  return connectWith(target, encryptionAttempts(target)[0], timeoutMs);
}

/**
 * Opens a session's server connection and sends the client's StartupMessage.
 * Where the sslmode allows a second encryption choice (allow, prefer) and
 * the server rejects the first one before authentication begins (e.g. a
 * pg_hba.conf `hostssl` or `hostnossl` line), the connection is retried
 * with the other choice, as libpq does; the client sees none of it. The
 * bytes the server sent first are returned in `initial`, to be relayed.
 */
export async function startUpstream(
  target: UpstreamTarget,
  startupPacket: Buffer,
  timeoutMs: number,
  onRetry?: (reason: string) => void,
): Promise<UpstreamConnection & { initial: Buffer }> {
  const attempts = encryptionAttempts(target);
  for (let i = 0; ; i++) {
    const last = i === attempts.length - 1;
    let connection: UpstreamConnection;
    try {
      connection = await connectWith(target, attempts[i], timeoutMs);
    } catch (err) {
      // prefer: a failed TLS handshake falls back to plain; anything else (refused, timeout) would fail again.
      if (last || !(err instanceof UpstreamTlsError)) throw err;
      onRetry?.((err as Error).message);
      continue;
    }
    connection.socket.write(startupPacket);
    // A retry could only change the encryption; prefer may already have settled for plain.
    const retryDiffers = attempts.slice(i + 1).some((useTls) => useTls !== connection.tls);
    if (!retryDiffers) return { ...connection, initial: Buffer.alloc(0) };
    const first = await firstAnswer(connection.socket, timeoutMs);
    if (first !== null && first[0] !== ERROR_RESPONSE) return { ...connection, initial: first };
    connection.socket.destroy();
    onRetry?.(first === null ? 'server closed the connection after the StartupMessage' : `server rejected the StartupMessage: ${errorMessageOf(first)}`);
  }
}

/** The message of the ErrorResponse at the start of `chunk`, when the chunk holds all of it. */
function errorMessageOf(chunk: Buffer): string {
  const end = chunk.length >= 5 ? chunk.readInt32BE(1) + 1 : Infinity;
  if (end > chunk.length) return '(message incomplete)';
  try {
    return decodeErrorFields(chunk, 0, end).message;
  } catch {
    return '(message unreadable)';
  }
}

const ERROR_RESPONSE = 0x45; // E

/** The first chunk the server sends, or null if it closes first. */
function firstAnswer(socket: net.Socket, timeoutMs: number): Promise<Buffer | null> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => done(new Error(`no answer to the StartupMessage after ${timeoutMs} ms`)), timeoutMs);
    const onData = (chunk: Buffer) => done(null, chunk);
    const onGone = () => done(null, null);
    function done(err: Error | null, value: Buffer | null = null) {
      clearTimeout(timer);
      socket.off('data', onData);
      socket.off('error', onGone);
      socket.off('close', onGone);
      socket.pause();
      if (err) {
        socket.destroy();
        reject(err);
      } else resolve(value);
    }
    socket.on('data', onData);
    socket.on('error', onGone);
    socket.on('close', onGone);
    socket.resume();
  });
}

/** One connection attempt: connecting, the SSL answer and the TLS handshake share one `timeoutMs`, as libpq's connect_timeout. */
async function connectWith(target: UpstreamTarget, useTls: boolean, timeoutMs: number): Promise<UpstreamConnection> {
  const deadline = Date.now() + timeoutMs;
  const left = () => Math.max(1, deadline - Date.now());
  const socket = await openSocket(target, timeoutMs);
  if (!useTls) return { socket, tls: false };
  try {
    const accepted = await requestSsl(socket, left(), timeoutMs);
    if (!accepted) {
      if (target.sslmode === 'prefer') return { socket, tls: false };
      throw new UpstreamTlsError(`server does not support SSL, but sslmode=${target.sslmode} requires it`);
    }
    const secure = await upgrade(socket, target, left(), timeoutMs);
    return { socket: secure, tls: true };
  } catch (err) {
    socket.destroy();
    throw err;
  }
}

function openSocket(target: UpstreamTarget, timeoutMs: number): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const socket = target.host.startsWith('/')
      ? net.connect({ path: socketPath(target) })
      : net.connect({ host: target.host, port: target.port });
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error(`timeout after ${timeoutMs} ms`));
    }, timeoutMs);
    socket.once('connect', () => {
      clearTimeout(timer);
      socket.removeAllListeners('error');
      socket.setNoDelay(true);
      resolve(socket);
    });
    socket.once('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
  });
}

/** Sends SSLRequest; resolves true on 'S', false on 'N'. */
function requestSsl(socket: net.Socket, timeoutMs: number, budgetMs = timeoutMs): Promise<boolean> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => done(new Error(`no answer to SSLRequest within ${budgetMs} ms`)), timeoutMs);
    const onData = (chunk: Buffer) => {
      const answer = chunk[0];
      if (chunk.length > 1) {
        // CVE-2021-23222: nothing may follow the answer before the TLS handshake.
        done(new UpstreamTlsError('server sent unexpected data after its SSL answer'));
        return;
      }
      if (answer === 0x53) done(null, true);
      else if (answer === 0x4e) done(null, false);
      else done(new UpstreamTlsError(`server answered SSLRequest with unexpected byte 0x${answer.toString(16)}`));
    };
    const onError = (err: Error) => done(err);
    const onClose = () => done(new Error('server closed the connection during SSL negotiation'));
    function done(err: Error | null, value = false) {
      clearTimeout(timer);
      socket.off('data', onData);
      socket.off('error', onError);
      socket.off('close', onClose);
      socket.pause();
      if (err) reject(err);
      else resolve(value);
    }
    socket.on('data', onData);
    socket.on('error', onError);
    socket.on('close', onClose);
    socket.write(serialize.requestSsl());
  });
}

/**
 * The TLS handshake, checking what the sslmode asks for: nothing for
 * `prefer`/`require` (but `require` with an sslrootcert checks the chain,
 * as libpq does), the chain for `verify-ca`, the chain and the host name for
 * `verify-full`. Without sslrootcert (or with `sslrootcert=system`), the
 * chain is checked against Node's bundled public CAs.
 */
function upgrade(socket: net.Socket, target: UpstreamTarget, timeoutMs: number, budgetMs = timeoutMs): Promise<tls.TLSSocket> {
  const rootCert = target.sslrootcert !== null && target.sslrootcert !== 'system' ? target.sslrootcert : null;
  const verifyChain = target.sslmode === 'verify-ca' || target.sslmode === 'verify-full' || (target.sslmode === 'require' && rootCert !== null);
  let ca: Buffer | undefined;
  try {
    ca = verifyChain && rootCert !== null ? readFileSync(rootCert) : undefined;
  } catch (err) {
    return Promise.reject(new UpstreamTlsError(`cannot read sslrootcert ${rootCert}: ${(err as Error).message}`));
  }
  const options: tls.ConnectionOptions = {
    socket,
    // The name the certificate must carry (verify-full) is the host we connect to.
    host: target.host,
    rejectUnauthorized: verifyChain,
    ca,
    // SNI carries host names only, never addresses (RFC 6066).
    servername: net.isIP(target.host) === 0 ? target.host : undefined,
    checkServerIdentity: target.sslmode === 'verify-full' ? tls.checkServerIdentity : () => undefined,
  };
  return new Promise((resolve, reject) => {
    const secure = tls.connect(options);
    const timer = setTimeout(() => {
      secure.destroy();
      reject(new UpstreamTlsError(`TLS handshake not done within ${budgetMs} ms`));
    }, timeoutMs);
    secure.once('secureConnect', () => {
      clearTimeout(timer);
      secure.removeAllListeners('error');
      resolve(secure);
    });
    secure.once('error', (err) => {
      clearTimeout(timer);
      reject(new UpstreamTlsError(`TLS handshake failed (sslmode=${target.sslmode}): ${err.message.trim()}`));
    });
  });
}

/**
 * Sends a CancelRequest (the client's own bytes) to the server on a fresh
 * connection, encrypted as the sslmode asks so the secret key is not sent in
 * the clear where sessions are not (as libpq 17 does).
 */
export async function sendCancel(target: UpstreamTarget, packet: Buffer, timeoutMs: number): Promise<void> {
  const { socket } = await connectUpstream(target, timeoutMs);
  await new Promise<void>((resolve) => {
    socket.on('error', () => resolve());
    socket.on('close', () => resolve());
    // The server answers nothing and closes once it has read the request.
    socket.resume();
    socket.end(packet);
  });
}
