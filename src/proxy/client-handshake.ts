/**
 * The client's side of connection startup, up to its StartupMessage or
 * CancelRequest: answers SSLRequest (and upgrades to TLS when configured),
 * refuses GSSENCRequest, accepts direct TLS (PostgreSQL 17 `sslnegotiation=direct`),
 * and refuses anything else with a FATAL protocol_violation.
 * https://www.postgresql.org/docs/current/protocol-flow.html#PROTOCOL-FLOW-START-UP
 */
import type net from 'node:net';
import tls from 'node:tls';
import { decodeStartupPacket } from '../protocol/decode.js';
import { errorResponse, SSL_ACCEPT, SSL_REFUSE, type Report } from '../protocol/encode.js';
import { StartupPacketError, StartupReader } from '../protocol/startup-reader.js';
import { endClient } from './end-client.js';
import { ProxyErrors } from './errors.js';

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
  /** The client left, or was refused and closed. */
  | { kind: 'closed'; reason: string };

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
    let settled = false;

    const timer = setTimeout(() => refuse(ProxyErrors.startupTimeout(options.timeoutMs)), options.timeoutMs);

    function finish(result: HandshakeResult): void {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      detach();
      current.pause();
      resolve(result);
    }

    function refuse(report: Report): void {
      if (settled) return;
      finish({ kind: 'closed', reason: report.message });
      // After finish(), which pauses the socket: endClient reads on until the client's FIN.
      endClient(current, errorResponse(report));
    }

    function attach(): void {
      current.on('data', onData);
      current.on('error', onGone);
      current.on('close', onGone);
    }

    function detach(): void {
      current.off('data', onData);
      current.off('error', onGone);
      current.off('close', onGone);
    }

    function onGone(): void {
      finish({ kind: 'closed', reason: 'client closed the connection during startup' });
      current.destroy();
    }

    function startTls(initial: Buffer | null): void {
      if (options.tlsContext === null) return;
      detach();
      current.pause();
      // Bytes already read (a direct-TLS ClientHello) are fed to the TLS layer first.
      if (initial !== null) current.unshift(initial);
      const tlsSocket = new tls.TLSSocket(current, {
        isServer: true,
        secureContext: options.tlsContext,
        // PostgreSQL requires this ALPN for direct TLS; libpq sends it always.
        ALPNProtocols: ['postgresql'],
      });
      current = tlsSocket;
      secure = true;
      reader = new StartupReader();
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
        if (err instanceof StartupPacketError) refuse(ProxyErrors.invalidStartupPacket(err.message));
        else refuse(ProxyErrors.invalidStartupPacket((err as Error).message));
        return;
      }
      if (read.kind === 'tls') {
        if (options.tlsContext === null || secure) refuse(ProxyErrors.directTlsWithoutTls());
        else startTls(read.bytes);
      }
    }

    /** Returns false when the handshake is over (or moved to a new socket). */
    function handlePacket(packet: Buffer): boolean {
      const decoded = decodeStartupPacket(packet);
      switch (decoded.kind) {
        case 'ssl':
          if (options.tlsContext === null || secure) {
            current.write(SSL_REFUSE);
            return true;
          }
          if (reader.takeRest().length > 0) {
            // Plaintext pipelined behind SSLRequest could be injected by a
            // man in the middle (CVE-2021-23214): refuse it.
            refuse(ProxyErrors.dataAfterSslRequest());
            return false;
          }
          current.write(SSL_ACCEPT);
          startTls(null);
          return false;
        case 'gssenc':
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
