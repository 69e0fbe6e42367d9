/**
 * Every error txproxy itself sends to clients, in one list (docs/errors.md
 * documents each). Each is what a PostgreSQL server would send in the same
 * spot: a severity, a standard SQLSTATE, and a message that says what to do.
 */
import type { Report } from '../protocol/encode.js';
import type { LimitSource } from '../protocol/message-limits.js';

/** Plain words for why a connection to the upstream failed (Node's messages repeat the address and use errno names). */
export function connectFailureReason(err: Error): string {
  switch ((err as NodeJS.ErrnoException).code) {
    case 'ECONNREFUSED':
      return 'connection refused';
    case 'ENOTFOUND':
      return 'host name not found';
    case 'EAI_AGAIN':
      return 'host name lookup failed (temporary DNS failure)';
    case 'ETIMEDOUT':
      return 'connection timed out';
    case 'EHOSTUNREACH':
      return 'no route to host';
    case 'ENETUNREACH':
      return 'network is unreachable';
    case 'ECONNRESET':
      return 'connection reset by the server';
    case 'ENOENT':
      return 'no such Unix socket';
    case 'EACCES':
      return 'permission denied';
    default:
      return err.message;
  }
}

export const ProxyErrors = {
  /** The upstream server could not be reached when the client connected. */
  upstreamUnreachable(upstream: string, reason: string): Report {
    return {
      severity: 'FATAL',
      code: '08001', // sqlclient_unable_to_establish_sqlconnection
      message: `txproxy could not connect to the upstream server at ${upstream}: ${reason}`,
      hint: 'Check that PostgreSQL is running there and that txproxy\'s --upstream / TXPROXY_UPSTREAM points at it.',
    };
  },

  /** TLS to the upstream server failed as its sslmode requires (refused, untrusted certificate, wrong host name). */
  upstreamTlsFailed(upstream: string, reason: string): Report {
    return {
      severity: 'FATAL',
      code: '08001', // sqlclient_unable_to_establish_sqlconnection
      message: `txproxy could not connect to the upstream server at ${upstream}: ${reason}`,
      hint: "Check the upstream URL's sslmode and sslrootcert against the server's TLS setup and certificate.",
    };
  },

  /** The upstream connection broke in the middle of the session. */
  upstreamLost(upstream: string): Report {
    return {
      severity: 'FATAL',
      code: '08006', // connection_failure
      message: `txproxy lost its connection to the upstream server at ${upstream}`,
      detail: 'The server closed the connection unexpectedly; an open transaction was rolled back by the server.',
      hint: 'Reconnect and retry the transaction.',
    };
  },

  tooManyClients(limit: number): Report {
    return {
      severity: 'FATAL',
      code: '53300', // too_many_connections
      message: `sorry, too many clients already: txproxy allows ${limit} client connections (max_client_conn)`,
      hint: 'Close idle connections, use a client-side pool, or raise max_client_conn.',
    };
  },

  /** More connections than max_pending_handshakes have yet to send their startup packet. */
  tooManyPendingHandshakes(limit: number): Report {
    return {
      severity: 'FATAL',
      code: '53300', // too_many_connections
      message: `sorry, too many clients already: txproxy allows ${limit} connections in the startup handshake at once (max_pending_handshakes)`,
      hint: 'Retry in a moment. If it persists, look for clients that connect without sending a startup packet, or raise max_pending_handshakes.',
    };
  },

  /** Transaction pooling: the client's cancel came while its statement waited for a server; PostgreSQL's own words. */
  cancelledWhileWaiting(): Report {
    return { severity: 'ERROR', code: '57014', message: 'canceling statement due to user request' };
  },

  shuttingDown(): Report {
    return {
      severity: 'FATAL',
      code: '57P01', // admin_shutdown
      message: 'terminating connection because txproxy is shutting down',
      hint: 'Reconnect in a moment; a new txproxy instance will accept the connection.',
    };
  },

  invalidStartupPacket(reason: string): Report {
    return {
      severity: 'FATAL',
      code: '08P01', // protocol_violation
      message: `invalid startup packet: ${reason}`,
      hint: 'Connect with a PostgreSQL client library speaking protocol 3.0 or 3.2.',
    };
  },

  /** Also a second SSLRequest or GSSENCRequest (1234.5679, 1234.5680), as PostgreSQL reads them. */
  unsupportedProtocol(code: number): Report {
    return {
      severity: 'FATAL',
      code: '0A000', // feature_not_supported, as PostgreSQL's own
      message: `unsupported frontend protocol ${code >>> 16}.${code & 0xffff}: txproxy supports 3.0 to 3.2`,
      hint: 'Connect with a PostgreSQL client library speaking protocol 3.0 or 3.2.',
    };
  },

  directTlsWithoutTls(): Report {
    return {
      severity: 'FATAL',
      code: '08P01',
      message: 'received a direct TLS handshake, but TLS is not enabled on txproxy',
      hint: 'Connect with sslnegotiation=postgres and sslmode=prefer or disable, or configure tls.cert and tls.key.',
    };
  },

  /** PostgreSQL 17 requires ALPN on direct TLS, so that a TLS handshake meant for another protocol is not taken for ours. */
  directTlsWithoutAlpn(): Report {
    return {
      severity: 'FATAL',
      code: '08P01',
      message: 'received direct SSL connection request without ALPN protocol negotiation extension',
      hint: 'Direct TLS clients must offer the ALPN protocol "postgresql" (libpq 17 does), or connect with sslnegotiation=postgres.',
    };
  },

  dataAfterSslRequest(): Report {
    return {
      severity: 'FATAL',
      code: '08P01',
      message: 'received unencrypted data after SSL request',
      detail: 'This could be either a client-software bug or evidence of an attempted man-in-the-middle attack.',
    };
  },

  /**
   * The client supports SCRAM channel binding, but txproxy had to withhold
   * it (its TLS session with the client is not the server's): the server
   * would take the client's "binding supported, not offered" for a
   * downgrade attack.
   */
  channelBindingUnavailable(): Report {
    return {
      severity: 'FATAL',
      code: '28000', // invalid_authorization_specification, as the server's own "SCRAM channel binding negotiation error"
      message: 'SCRAM channel binding cannot pass through txproxy: its TLS session with the server is not the one the client sees',
      detail: 'The client supports channel binding, so the server would reject SCRAM-SHA-256 without it as a downgrade.',
      hint: "Connect without channel binding (libpq channel_binding=disable, node-postgres enableChannelBinding: false), or give txproxy the server's own certificate and key as tls.cert and tls.key so that binding holds end to end.",
    };
  },

  noUserInStartup(): Report {
    return {
      severity: 'FATAL',
      code: '28000', // invalid_authorization_specification
      message: 'no PostgreSQL user name specified in startup packet',
    };
  },

  startupTimeout(ms: number): Report {
    return {
      severity: 'FATAL',
      code: '08P01',
      message: `timeout: the client sent no complete startup packet within ${ms} ms (handshake_timeout)`,
    };
  },

  /** A client message over a length limit: max_message_length, or one PostgreSQL sets itself (then nothing can raise it). */
  invalidMessageLength(reason: string, limit: LimitSource = 'max_message_length'): Report {
    return {
      severity: 'FATAL',
      code: '08P01',
      message: `invalid message: ${reason}`,
      hint:
        limit === 'max_message_length'
          ? 'The connection is closed; an open transaction was rolled back. Raise max_message_length if the message was legitimate.'
          : 'The connection is closed; an open transaction was rolled back. PostgreSQL refuses a message this long too (it closes the connection): the client sent a malformed message.',
    };
  },

  /** A server message txproxy cannot frame: over max_message_length, or a nonsense length. */
  invalidServerMessage(upstream: string, reason: string): Report {
    return {
      severity: 'FATAL',
      code: '08P01',
      message: `invalid message from the upstream server at ${upstream}: ${reason}`,
      hint: 'The connection is closed; an open transaction was rolled back. Raise max_message_length if the message was legitimate.',
    };
  },

  invalidMessage(reason: string): Report {
    return {
      severity: 'FATAL',
      code: '08P01',
      message: `invalid message from the client: ${reason}`,
      hint: 'The connection is closed; an open transaction was rolled back.',
    };
  },
} as const;
