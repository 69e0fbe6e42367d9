/**
 * Where the upstream PostgreSQL server is, as a libpq-style URL names it:
 * host or Unix socket directory, port, sslmode, and the credentials of
 * txproxy's own connections. Config, the lock monitor, the pool and the
 * proxy all read it; how a connection is opened is src/proxy/upstream.ts.
 */
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

export function socketPath(target: UpstreamTarget): string {
  return `${target.host}/.s.PGSQL.${target.port}`;
}
