/**
 * Authentication passes through untouched, so txproxy never needs a
 * password (trust, cleartext, md5, SCRAM). The one exception is SCRAM
 * channel binding: it binds the TLS session the client sees (with txproxy)
 * to the one the server sees, which holds only when txproxy shows the
 * client the server's own certificate (tls-server-end-point hashes it).
 * Otherwise SCRAM-SHA-256-PLUS is taken out of the server's offer.
 */
import type net from 'node:net';
import tls from 'node:tls';
import { AuthCode } from '../protocol/codes.js';
import { decodeAuthCode } from '../protocol/decode.js';
import type { Report } from '../protocol/encode.js';
import { FORWARD, type Verdict } from '../protocol/message-scanner.js';
import { decodeSaslInitialResponse, withoutChannelBinding } from '../protocol/sasl.js';
import { ProxyErrors } from './errors.js';

/** Thrown from a client message handler to end the session with `report`. */
export class ClientRefused extends Error {
  constructor(readonly report: Report) {
    super(report.message);
    this.name = 'ClientRefused';
  }
}

export class AuthenticationRelay {
  /** SCRAM-SHA-256-PLUS was taken out of the server's AuthenticationSASL. */
  private channelBindingWithheld = false;

  constructor(
    private readonly client: net.Socket,
    private readonly upstream: net.Socket,
    private readonly upstreamTls: boolean,
  ) {}

  /** An Authentication ('R') request from the server. */
  serverRequest(buf: Buffer, start: number, end: number): Verdict {
    if (!this.upstreamTls || decodeAuthCode(buf, start) !== AuthCode.SASL || this.channelBindingHolds()) return FORWARD;
    // Our TLS session with the server is not the client's: channel
    // binding (SCRAM-SHA-256-PLUS) would fail, so do not offer it.
    const stripped = withoutChannelBinding(buf, start, end);
    if (stripped === null) return FORWARD;
    this.channelBindingWithheld = true;
    return stripped;
  }

  /**
   * The client's answer ('p'). After SCRAM-SHA-256-PLUS was withheld, a
   * client that supports channel binding says so (gs2 flag `y`), and a TLS
   * server rightly takes that for a downgrade attack and fails with a
   * cryptic message; refuse it here with one that says what to do.
   */
  clientResponse(buf: Buffer, start: number, end: number): Verdict {
    if (!this.channelBindingWithheld) return FORWARD;
    this.channelBindingWithheld = false; // only the SASLInitialResponse carries the flag
    const { mechanism, flag } = decodeSaslInitialResponse(buf, start, end);
    if (mechanism === 'SCRAM-SHA-256' && flag === 'y') throw new ClientRefused(ProxyErrors.channelBindingUnavailable());
    return FORWARD;
  }

  private channelBindingHolds(): boolean {
    if (!(this.client instanceof tls.TLSSocket) || !(this.upstream instanceof tls.TLSSocket)) return false;
    const ours = this.client.getCertificate();
    const theirs = this.upstream.getPeerCertificate();
    return ours !== null && 'raw' in ours && Buffer.isBuffer(ours.raw) && Buffer.isBuffer(theirs?.raw) && ours.raw.equals(theirs.raw);
  }
}
