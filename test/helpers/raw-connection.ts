/**
 * A bare wire-protocol client for tests that must send exactly the bytes
 * they mean (odd startup packets, long cancel keys, nonsense lengths) and
 * see exactly what comes back.
 */
import { createHash } from 'node:crypto';
import net from 'node:net';
import type tls from 'node:tls';
import { decodeErrorFields, type ErrorFields } from '../../src/protocol/decode.js';

export interface RawMessage {
  /** The type letter, e.g. 'R', 'K', 'Z', 'E'. */
  type: string;
  /** The body, after the type byte and length. */
  body: Buffer;
  /** The whole message, header included. */
  raw: Buffer;
}

export class RawConnection {
  private buffer = Buffer.alloc(0);
  private waiter: (() => void) | null = null;
  private ended = false;
  /** Resolves when the socket is closed (by either side). */
  readonly closed: Promise<void>;

  constructor(readonly socket: net.Socket | tls.TLSSocket) {
    socket.on('data', (chunk: Buffer) => {
      this.buffer = Buffer.concat([this.buffer, chunk]);
      this.wake();
    });
    socket.on('error', () => undefined);
    this.closed = new Promise((resolve) => {
      socket.once('close', () => {
        this.ended = true;
        this.wake();
        resolve();
      });
    });
  }

  static connect(port: number, host = '127.0.0.1'): Promise<RawConnection> {
    return new Promise((resolve, reject) => {
      const socket = net.connect({ port, host }, () => {
        socket.off('error', reject);
        resolve(new RawConnection(socket));
      });
      socket.once('error', reject);
    });
  }

  write(...buffers: Buffer[]): void {
    this.socket.write(Buffer.concat(buffers));
  }

  end(): void {
    this.socket.end();
  }

  destroy(): void {
    this.socket.destroy();
  }

  /** One byte: the answer to SSLRequest / GSSENCRequest. */
  async readByte(timeoutMs = 5000): Promise<string> {
    await this.waitFor(1, timeoutMs);
    const byte = this.buffer[0];
    this.buffer = this.buffer.subarray(1);
    return String.fromCharCode(byte);
  }

  /** The next typed message. */
  async readMessage(timeoutMs = 5000): Promise<RawMessage> {
    await this.waitFor(5, timeoutMs);
    const length = this.buffer.readInt32BE(1);
    await this.waitFor(1 + length, timeoutMs);
    const raw = Buffer.from(this.buffer.subarray(0, 1 + length));
    this.buffer = this.buffer.subarray(1 + length);
    return { type: String.fromCharCode(raw[0]), body: raw.subarray(5), raw };
  }

  /** Messages up to and including the first of type `type`. */
  async readUntil(type: string, timeoutMs = 5000): Promise<RawMessage[]> {
    const messages: RawMessage[] = [];
    for (;;) {
      const message = await this.readMessage(timeoutMs);
      messages.push(message);
      if (message.type === type) return messages;
    }
  }

  /** Bytes received and not read yet. */
  get pending(): Buffer {
    return this.buffer;
  }

  private wake(): void {
    const waiter = this.waiter;
    this.waiter = null;
    waiter?.();
  }

  private async waitFor(bytes: number, timeoutMs: number): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (this.buffer.length < bytes) {
      if (this.ended) throw new Error(`connection closed with ${this.buffer.length} of ${bytes} bytes received`);
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`timed out after ${timeoutMs} ms waiting for ${bytes} bytes (have ${this.buffer.length})`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        this.waiter = () => {
          clearTimeout(timer);
          resolve();
        };
      });
    }
  }
}

/** The fields of an ErrorResponse / NoticeResponse. */
export function errorFieldsOf(message: RawMessage): ErrorFields {
  return decodeErrorFields(message.raw, 0, message.raw.length);
}

/** A StartupMessage with any protocol version (3.0 = 196608, 3.2 = 196610). */
export function startupMessage(params: Record<string, string>, version = 196608): Buffer {
  const pairs = Object.entries(params).flatMap(([k, v]) => [Buffer.from(k + '\0'), Buffer.from(v + '\0')]);
  const body = Buffer.concat([...pairs, Buffer.from([0])]);
  const packet = Buffer.alloc(8 + body.length);
  packet.writeInt32BE(packet.length, 0);
  packet.writeInt32BE(version, 4);
  body.copy(packet, 8);
  return packet;
}

/** A CancelRequest with a key of any length (4 bytes in 3.0, up to 256 in 3.2). */
export function cancelRequest(pid: number, key: Buffer): Buffer {
  const packet = Buffer.alloc(12 + key.length);
  packet.writeInt32BE(packet.length, 0);
  packet.writeInt32BE(80877102, 4);
  packet.writeInt32BE(pid, 8);
  key.copy(packet, 12);
  return packet;
}

/** A bodiless startup-phase request: SSLRequest (80877103) or GSSENCRequest (80877104). */
export function startupRequest(code: number): Buffer {
  const packet = Buffer.alloc(8);
  packet.writeInt32BE(8, 0);
  packet.writeInt32BE(code, 4);
  return packet;
}

/** The answer to AuthenticationMD5Password: 'md5' + md5(md5(password + user) + salt). */
export function md5PasswordMessage(user: string, password: string, salt: Buffer): Buffer {
  const inner = createHash('md5').update(password + user).digest('hex');
  const outer = 'md5' + createHash('md5').update(Buffer.concat([Buffer.from(inner), salt])).digest('hex');
  const body = Buffer.from(outer + '\0');
  const message = Buffer.alloc(5 + body.length);
  message[0] = 0x70; // p
  message.writeInt32BE(4 + body.length, 1);
  body.copy(message, 5);
  return message;
}

/** A typed message with an arbitrary (possibly false) length field. */
export function messageWithLength(type: string, length: number, body: Buffer = Buffer.alloc(0)): Buffer {
  const header = Buffer.alloc(5);
  header[0] = type.charCodeAt(0);
  header.writeInt32BE(length, 1);
  return Buffer.concat([header, body]);
}
