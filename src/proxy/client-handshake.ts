/**
 * The client's side of connection startup, up to its StartupMessage or
 * CancelRequest: answers SSLRequest (and upgrades to TLS when configured),
 * refuses GSSENCRequest, accepts direct TLS (PostgreSQL 17 `sslnegotiation=direct`),
 * and refuses anything else with a FATAL error, as PostgreSQL's
 * ProcessStartupPacket does: each encryption request is answered once (a
 * second one is an unknown protocol version), and a nonsense length word
 * closes the connection without a reply.
 * https://www.postgresql.org/docs/current/protocol-flow.html#PROTOCOL-FLOW-START-UP
 */
import type net from 'node:net';
import tls from 'node:tls';
import { StartupCode } from '../protocol/codes.js';
import { decodeStartupPacket } from '../protocol/decode.js';
import { errorResponse, SSL_ACCEPT, SSL_REFUSE, type Report } from '../protocol/encode.js';
import { StartupLengthError, StartupPacketError, StartupReader } from '../protocol/startup-reader.js';
import { endClient } from './end-client.js';
import { ProxyErrors } from './errors.js';

/** Length word, request code and backend pid: a CancelRequest shorter than this names no backend. */
const CANCEL_REQUEST_MIN_LENGTH = 12;

/** The ALPN protocol name PostgreSQL registered; required for direct TLS. */
export const POSTGRESQL_ALPN = 'postgresql';

export type HandshakeResult =
  | {
      kind: 'startup';
      socket: net.Socket;
      /** The StartupMessage exactly as the client sent it, to forward unchanged. */
      packet: Buffer;
      params: Record<string, string>;
      major: number;
      minor: number;
      tls: boolean;
      /** Bytes the client sent after the StartupMessage. */
      rest: Buffer;
    }
  | { kind: 'cancel'; socket: net.Socket; packet: Buffer; pid: number; key: Buffer }
  /**
   * The client left, or was refused and closed. `refusal` is the error we
   * sent (null when the client just went away or its TLS handshake failed,
   * or when it broke the protocol in a way PostgreSQL answers with silence:
   * then `violation` is set).
   */
  | { kind: 'closed'; reason: string; refusal: Report | null; violation?: boolean };

export interface HandshakeOptions {
  /** Present when TLS is configured for clients. */
  tlsContext: tls.SecureContext | null;
  timeoutMs: number;
}

export function clientHandshake(socket: net.Socket, options: HandshakeOptions): Promise<HandshakeResult> {
  return new Promise((resolve) => {
    let current = socket;
    let reader = new StartupReader();
    let secure = false;
    /** The TLS handshake is under way: nothing can be written in the clear or encrypted. */
    let handshaking = false;
    /**
     * SSLRequest / GSSENCRequest already answered: PostgreSQL answers each
     * once (a TLS session settles both) and reads a second one as an
     * unknown protocol version.
     */
    let sslDone = false;
    let gssDone = false;
    let settled = false;

    const timer = setTimeout(() => refuse(ProxyErrors.startupTimeout(options.timeoutMs)), options.timeoutMs);

    function finish(result: HandshakeResult): void {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      detach();
      // The session takes over a live socket and resumes it when ready.
      if (result.kind !== 'closed') current.pause();
      resolve(result);
    }

    /**
     * Sends `report` and closes. Input is read on and discarded, so the
     * client's own close is noticed; a client that never closes is cut off
     * after a grace period.
     */
    function refuse(report: Report): void {
      if (settled) return;
      const refused = current;
      finish({ kind: 'closed', reason: report.message, refusal: report });
      if (handshaking) {
        // Mid TLS handshake: no way to send an ErrorResponse.
        refused.destroy();
        return;
      }
      // After finish(), which pauses the socket: endClient reads on until the client's FIN.
      endClient(refused, errorResponse(report));
    }

    /** Closes without a word, as PostgreSQL does for a broken length word (it only logs it). */
    function closeSilently(reason: string): void {
      if (settled) return;
      const broken = current;
      finish({ kind: 'closed', reason, refusal: null, violation: true });
      broken.destroy();
    }

    function attach(): void {
      current.on('data', onData);
      current.on('error', onGone);
      // A client that half-closes before its startup packet is done, as for PostgreSQL.
      current.on('end', onGone);
      current.on('close', onGone);
    }

    function detach(): void {
      current.off('data', onData);
      current.off('error', onGone);
      current.off('end', onGone);
      current.off('close', onGone);
    }

    function onGone(err?: Error | boolean): void {
      const reason =
        err instanceof Error
          ? `${handshaking ? 'TLS handshake failed' : 'socket error'}: ${err.message.trim()}`
          : 'client closed the connection during startup';
      const gone = current;
      finish({ kind: 'closed', reason, refusal: null });
      gone.destroy();
    }

    /**
     * Hands the connection to a TLS server socket. `initial` holds bytes
     * already read (a direct-TLS ClientHello): they are put back so the TLS
     * layer reads them first. `direct` requires the client to have
     * negotiated ALPN "postgresql", as PostgreSQL does.
     */
    function startTls(tlsContext: tls.SecureContext, initial: Buffer | null, direct: boolean): void {
      detach();
      current.pause();
      if (initial !== null) current.unshift(initial);
      const tlsSocket = new tls.TLSSocket(current, {
        isServer: true,
        secureContext: tlsContext,
        // A client offering other protocols only gets a fatal alert, as from PostgreSQL.
        ALPNProtocols: [POSTGRESQL_ALPN],
      });
      current = tlsSocket;
      secure = true;
      handshaking = true;
      reader = new StartupReader();
      tlsSocket.once('secure', () => {
        handshaking = false;
        if (direct && tlsSocket.alpnProtocol !== POSTGRESQL_ALPN) refuse(ProxyErrors.directTlsWithoutAlpn());
      });
      attach();
      tlsSocket.resume();
    }

    function onData(chunk: Buffer): void {
      let read;
      try {
        read = reader.push(chunk);
        while (read.kind === 'packet') {
          if (!handlePacket(read.packet)) return;
          read = reader.next();
        }
      } catch (err) {
        if (err instanceof StartupLengthError) closeSilently(err.message);
        else refuse(ProxyErrors.invalidStartupPacket(err instanceof StartupPacketError ? err.message : (err as Error).message));
        return;
      }
      if (read.kind === 'tls') {
        // Only the very first bytes of a connection may open a direct TLS handshake.
        if (options.tlsContext === null || secure) refuse(ProxyErrors.directTlsWithoutTls());
        else startTls(options.tlsContext, read.bytes, true);
      }
    }

    /** Returns false when the handshake is over (or moved to a new socket). */
    function handlePacket(packet: Buffer): boolean {
      if (packet.readInt32BE(4) === StartupCode.Cancel && packet.length < CANCEL_REQUEST_MIN_LENGTH) {
        // PostgreSQL only logs a CancelRequest too short to hold a backend pid, and closes.
        closeSilently('invalid length of cancel request packet');
        return false;
      }
      const decoded = decodeStartupPacket(packet);
      switch (decoded.kind) {
        case 'ssl':
          if (sslDone) {
            refuse(ProxyErrors.unsupportedProtocol(StartupCode.SSL));
            return false;
          }
          sslDone = true;
          if (options.tlsContext === null || secure) {
            current.write(SSL_REFUSE);
            return true;
          }
          // A TLS session settles the GSS question too.
          gssDone = true;
          if (reader.takeRest().length > 0) {
            // Plaintext pipelined behind SSLRequest could be injected by a
            // man in the middle (CVE-2021-23214): refuse it.
            refuse(ProxyErrors.dataAfterSslRequest());
            return false;
          }
          current.write(SSL_ACCEPT);
          startTls(options.tlsContext, null, false);
          return false;
        case 'gssenc':
          if (gssDone) {
            refuse(ProxyErrors.unsupportedProtocol(StartupCode.GSSENC));
            return false;
          }
          gssDone = true;
          current.write(SSL_REFUSE);
          return true;
        case 'cancel':
          finish({ kind: 'cancel', socket: current, packet, pid: decoded.pid, key: decoded.key });
          return false;
        case 'startup':
          if (decoded.params.user === undefined || decoded.params.user === '') {
            refuse(ProxyErrors.noUserInStartup());
            return false;
          }
          finish({
            kind: 'startup',
            socket: current,
            packet,
            params: decoded.params,
            major: decoded.major,
            minor: decoded.minor,
            tls: secure,
            rest: Buffer.from(reader.takeRest()),
          });
          return false;
        case 'unknown':
          refuse(ProxyErrors.unsupportedProtocol(decoded.code));
          return false;
      }
    }

    attach();
    current.resume();
  });
}
