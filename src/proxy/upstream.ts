/**
 * The upstream PostgreSQL server: where it is, and how to open a connection
 * to it with the TLS behaviour libpq gives the URL's `sslmode`.
 * https://www.postgresql.org/docs/current/libpq-ssl.html#LIBPQ-SSL-SSLMODE-STATEMENTS
 */
import { readFileSync } from 'node:fs';
import net from 'node:net';
import tls from 'node:tls';
import { serialize } from '../protocol/frontend-messages.js';

export type SslMode = 'disable' | 'allow' | 'prefer' | 'require' | 'verify-ca' | 'verify-full';
const SSL_MODES: SslMode[] = ['disable', 'allow', 'prefer', 'require', 'verify-ca', 'verify-full'];

export interface UpstreamTarget {
  host: string;
  port: number;
  sslmode: SslMode;
  /** PEM CA bundle for verify-ca / verify-full (`sslrootcert`). */
  sslrootcert: string | null;
  /** Credentials for txproxy's own connections (lock monitor, readiness); clients bring their own. */
  user: string | null;
  password: string | null;
  database: string | null;
}

export class UpstreamUrlError extends Error {
  override name = 'UpstreamUrlError';
}

/** Parses `postgres://[user[:password]@]host[:port][/database][?sslmode=…&sslrootcert=…&host=/socket/dir]`. */
export function parseUpstreamUrl(url: string): UpstreamTarget {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    // Not echoed: the URL may hold a password.
    throw new UpstreamUrlError('not a valid URL');
  }
  if (parsed.protocol !== 'postgres:' && parsed.protocol !== 'postgresql:') {
    throw new UpstreamUrlError(`the scheme must be postgres:// or postgresql://, not ${parsed.protocol}//`);
  }
  const sslmode = (parsed.searchParams.get('sslmode') ?? 'prefer') as SslMode;
  if (!SSL_MODES.includes(sslmode)) {
    throw new UpstreamUrlError(`sslmode must be one of ${SSL_MODES.join(', ')}, not '${sslmode}'`);
  }
  // libpq's `?host=/var/run/postgresql` names a Unix socket directory.
  const host = parsed.searchParams.get('host') ?? decodeURIComponent(parsed.hostname.replace(/^\[|\]$/g, '')) ?? 'localhost';
  return {
    host: host === '' ? 'localhost' : host,
    port: parsed.port === '' ? 5432 : Number(parsed.port),
    sslmode,
    sslrootcert: parsed.searchParams.get('sslrootcert'),
    user: parsed.username === '' ? null : decodeURIComponent(parsed.username),
    password: parsed.password === '' ? null : decodeURIComponent(parsed.password),
    database: parsed.pathname.length > 1 ? decodeURIComponent(parsed.pathname.slice(1)) : null,
  };
}

/** `host:port` or the socket path, for messages. */
export function describeTarget(target: UpstreamTarget): string {
  return target.host.startsWith('/') ? socketPath(target) : `${target.host}:${target.port}`;
}

function socketPath(target: UpstreamTarget): string {
  return `${target.host}/.s.PGSQL.${target.port}`;
}

export interface UpstreamConnection {
  socket: net.Socket;
  /** The link to the server is TLS: SCRAM channel binding must then be withheld from the client. */
  tls: boolean;
}

/**
 * Opens a connection, negotiating TLS per sslmode. Rejects with an Error
 * whose message says what failed (refused, timed out, TLS refused by server).
 */
export async function connectUpstream(target: UpstreamTarget, timeoutMs: number): Promise<UpstreamConnection> {
  const socket = await openSocket(target, timeoutMs);
  if (target.sslmode === 'disable' || target.sslmode === 'allow' || target.host.startsWith('/')) {
    return { socket, tls: false };
  }
  try {
    const accepted = await requestSsl(socket, timeoutMs);
    if (!accepted) {
      if (target.sslmode === 'prefer') return { socket, tls: false };
      throw new Error(`server does not support SSL, but sslmode=${target.sslmode} requires it`);
    }
    const secure = await upgrade(socket, target, timeoutMs);
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
function requestSsl(socket: net.Socket, timeoutMs: number): Promise<boolean> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => done(new Error(`no answer to SSLRequest after ${timeoutMs} ms`)), timeoutMs);
    const onData = (chunk: Buffer) => {
      const answer = chunk[0];
      if (chunk.length > 1) {
        // CVE-2021-23222: nothing may follow the answer before the TLS handshake.
        done(new Error('server sent unexpected data after its SSL answer'));
        return;
      }
      if (answer === 0x53) done(null, true);
      else if (answer === 0x4e) done(null, false);
      else done(new Error(`server answered SSLRequest with unexpected byte 0x${answer.toString(16)}`));
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

function upgrade(socket: net.Socket, target: UpstreamTarget, timeoutMs: number): Promise<tls.TLSSocket> {
  const verify = target.sslmode === 'verify-ca' || target.sslmode === 'verify-full';
  const options: tls.ConnectionOptions = {
    socket,
    rejectUnauthorized: verify,
    ca: target.sslrootcert ? readFileSync(target.sslrootcert) : undefined,
    servername: net.isIP(target.host) === 0 ? target.host : undefined,
    // verify-ca checks the chain only; verify-full also the host name.
    checkServerIdentity: target.sslmode === 'verify-full' ? tls.checkServerIdentity : () => undefined,
  };
  return new Promise((resolve, reject) => {
    const secure = tls.connect(options);
    const timer = setTimeout(() => {
      secure.destroy();
      reject(new Error(`TLS handshake timed out after ${timeoutMs} ms`));
    }, timeoutMs);
    secure.once('secureConnect', () => {
      clearTimeout(timer);
      secure.removeAllListeners('error');
      resolve(secure);
    });
    secure.once('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
  });
}

/** Sends a CancelRequest (the client's own bytes) to the server on a fresh connection. */
export async function sendCancel(target: UpstreamTarget, packet: Buffer, timeoutMs: number): Promise<void> {
  // The server reads a CancelRequest before authentication and pg_hba, so a
  // plain connection serves even when sessions must use TLS (as libpq < 17 does).
  const socket = await openSocket(target, timeoutMs);
  await new Promise<void>((resolve) => {
    socket.on('error', () => resolve());
    socket.on('close', () => resolve());
    socket.end(packet);
  });
}
