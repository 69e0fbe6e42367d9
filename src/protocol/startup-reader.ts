/**
 * Framing of the startup phase, where packets have no type byte: an int32
 * length (counting itself) and an int32 code. A client sends one such packet
 * at a time (SSLRequest, then StartupMessage) and waits for the answer, but
 * may pipeline the StartupMessage behind an SSLRequest refusal, and its first
 * messages behind the StartupMessage: what follows a packet stays pending.
 */
import { MAX_STARTUP_PACKET_LENGTH, TLS_HANDSHAKE_BYTE } from './codes.js';

export class StartupPacketError extends Error {
  override name = 'StartupPacketError';
}

/**
 * A length word below 8, or above MAX_STARTUP_PACKET_LENGTH plus the length
 * word itself (10004). PostgreSQL only
 * logs "invalid length of startup packet" and closes without a reply; a
 * client that gets none can tell it from a server that is gone, which is
 * what clients rely on (node-postgres' `connect(); end()` sends Terminate as
 * its first bytes).
 */
export class StartupLengthError extends StartupPacketError {
  override name = 'StartupLengthError';
  constructor(readonly length: number) {
    super(`invalid length of startup packet: ${length}`);
  }
}

export type StartupRead =
  | { kind: 'incomplete' }
  | { kind: 'packet'; packet: Buffer }
  /** The client opened with a TLS ClientHello (direct SSL negotiation). */
  | { kind: 'tls'; bytes: Buffer };

export class StartupReader {
  private pending: Buffer = Buffer.alloc(0);

  push(chunk: Buffer): StartupRead {
    this.pending = this.pending.length === 0 ? chunk : Buffer.concat([this.pending, chunk]);
    return this.next();
  }

  /** Tries to cut one packet from what is pending. */
  next(): StartupRead {
    const buf = this.pending;
    if (buf.length > 0 && buf[0] === TLS_HANDSHAKE_BYTE) {
      this.pending = Buffer.alloc(0);
      return { kind: 'tls', bytes: buf };
    }
    if (buf.length < 4) return { kind: 'incomplete' };
    const length = buf.readInt32BE(0);
    // PostgreSQL's cap counts the packet without its length word.
    if (length < 8 || length - 4 > MAX_STARTUP_PACKET_LENGTH) {
      throw new StartupLengthError(length);
    }
    if (buf.length < length) return { kind: 'incomplete' };
    // Copy: the caller keeps the packet; what follows stays pending.
    const packet = Buffer.from(buf.subarray(0, length));
    this.pending = buf.subarray(length);
    return { kind: 'packet', packet };
  }

  /** Bytes received after the last packet returned. */
  takeRest(): Buffer {
    const rest = this.pending;
    this.pending = Buffer.alloc(0);
    return rest;
  }
}
