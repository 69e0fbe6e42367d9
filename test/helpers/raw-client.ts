/**
 * A client that speaks the wire protocol byte for byte, for exchanges no
 * driver produces on its own: several extended batches (each with its Sync)
 * in one write, COPY through the extended protocol, replication streams in
 * CopyBoth mode. It authenticates like libpq (SCRAM-SHA-256, MD5 or
 * cleartext, with pg's SCRAM implementation), then hands over the raw
 * message stream.
 */
import crypto from 'node:crypto';
import { createRequire } from 'node:module';
import net from 'node:net';
import { decodeErrorFields, type ErrorFields } from '../../src/protocol/decode.js';
import { serialize } from '../../src/protocol/frontend-messages.js';

const require = createRequire(import.meta.url);
const sasl = require('pg/lib/crypto/sasl.js') as {
  startSession(mechanisms: string[], stream?: unknown): { mechanism: string; response: string; message: string };
  continueSession(session: object, password: string, serverData: string, stream?: unknown): Promise<void>;
  finalizeSession(session: object, serverData: string): void;
};

/** One backend message: its type letter and body (header excluded). */
export interface RawMessage {
  type: string;
  body: Buffer;
}

export interface RawConnectOptions {
  port: number;
  host?: string;
  user: string;
  password: string;
  database?: string;
  /** More startup parameters, e.g. `{ replication: 'database' }`. */
  params?: Record<string, string>;
  /**
   * Messages sent in the same write as the client's last login message,
   * before the server said ReadyForQuery: the StartupMessage when the server
   * trusts the client, else the password or the SCRAM client-final message.
   */
  pipelined?: Buffer;
  /** The server trusts the client: `pipelined` goes with the StartupMessage. */
  trusted?: boolean;
}

export class RawClient {
  private buffer: Buffer = Buffer.alloc(0);
  private readonly inbox: RawMessage[] = [];
  private waiter: (() => void) | null = null;
  private ended: Error | null = null;
  backendPid = 0;
  /** ParameterStatus values seen so far. */
  readonly parameters = new Map<string, string>();

  private constructor(readonly socket: net.Socket) {
    socket.on('data', (chunk: Buffer) => this.onData(chunk));
    socket.on('error', (err) => this.stop(err));
    socket.on('close', () => this.stop(new Error('connection closed')));
  }

  static async connect(options: RawConnectOptions): Promise<RawClient> {
    const socket = net.connect(options.port, options.host ?? '127.0.0.1');
    socket.setNoDelay(true);
    await new Promise<void>((resolve, reject) => {
      socket.once('connect', resolve);
      socket.once('error', reject);
    });
    const client = new RawClient(socket);
    const startup = serialize.startup({ user: options.user, database: options.database ?? 'postgres', ...options.params });
    const pipelined = options.pipelined ?? null;
    const trusted = options.trusted === true;
    socket.write(pipelined !== null && trusted ? Buffer.concat([startup, pipelined]) : startup);
    await client.authenticate(options.user, options.password, trusted ? null : pipelined);
    return client;
  }

  private async authenticate(user: string, password: string, pipelined: Buffer | null = null): Promise<void> {
    /** The last login message, with what the caller pipelines behind it. */
    const last = (message: Buffer) => (pipelined === null ? message : Buffer.concat([message, pipelined]));
    let session: { mechanism: string; response: string; message: string } | null = null;
    for (;;) {
      const m = await this.next();
      if (m.type === 'E') throw new Error(`startup failed: ${decodeErrorFields(framed(m), 0, framed(m).length).message}`);
      if (m.type === 'K') this.backendPid = m.body.readInt32BE(0);
      if (m.type === 'S') {
        const [name, value] = cstrings(m.body);
        this.parameters.set(name, value);
      }
      if (m.type === 'Z') return;
      if (m.type !== 'R') continue;
      const code = m.body.readInt32BE(0);
      if (code === 3) this.send(last(serialize.password(password)));
      else if (code === 5) this.send(last(serialize.password(md5Password(user, password, m.body.subarray(4, 8)))));
      else if (code === 10) {
        session = sasl.startSession(cstrings(m.body.subarray(4)).filter((s) => s !== ''));
        this.send(serialize.sendSASLInitialResponseMessage(session.mechanism, session.response));
      } else if (code === 11) {
        await sasl.continueSession(session!, password, m.body.subarray(4).toString('utf8'));
        this.send(last(serialize.sendSCRAMClientFinalMessage(session!.response)));
      } else if (code === 12) {
        sasl.finalizeSession(session!, m.body.subarray(4).toString('utf8'));
      } else if (code !== 0) {
        throw new Error(`unsupported authentication request ${code}`);
      }
    }
  }

  /** Writes all the buffers in one write, as a pipelining client does. */
  send(...buffers: Buffer[]): void {
    this.socket.write(buffers.length === 1 ? buffers[0] : Buffer.concat(buffers));
  }

  /** The next backend message. */
  async next(timeoutMs = 10_000): Promise<RawMessage> {
    const deadline = Date.now() + timeoutMs;
    while (this.inbox.length === 0) {
      if (this.ended !== null) throw this.ended;
      const left = deadline - Date.now();
      if (left <= 0) throw new Error('timed out waiting for a backend message');
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        this.waiter = () => {
          clearTimeout(timer);
          resolve();
        };
      });
    }
    return this.inbox.shift()!;
  }

  /** Collects messages up to and including the `count`-th one that `stop` accepts. */
  async until(stop: (m: RawMessage) => boolean, count = 1, timeoutMs = 10_000): Promise<RawMessage[]> {
    const out: RawMessage[] = [];
    let seen = 0;
    while (seen < count) {
      const m = await this.next(timeoutMs);
      out.push(m);
      if (stop(m)) seen++;
    }
    return out;
  }

  /** Collects messages through `count` ReadyForQuery messages. */
  readyForQuery(count = 1, timeoutMs = 10_000): Promise<RawMessage[]> {
    return this.until((m) => m.type === 'Z', count, timeoutMs);
  }

  /** A simple Query and everything up to its ReadyForQuery. */
  async query(sql: string): Promise<RawMessage[]> {
    this.send(serialize.query(sql));
    return this.readyForQuery();
  }

  /** Terminate, then wait for the socket to close. */
  async close(): Promise<void> {
    if (this.ended !== null) return;
    const closed = new Promise((resolve) => this.socket.once('close', resolve));
    this.socket.end(serialize.end());
    await closed;
  }

  private onData(chunk: Buffer): void {
    this.buffer = this.buffer.length === 0 ? chunk : Buffer.concat([this.buffer, chunk]);
    let pos = 0;
    while (this.buffer.length - pos >= 5) {
      const length = this.buffer.readInt32BE(pos + 1);
      if (this.buffer.length - pos < 1 + length) break;
      this.inbox.push({ type: String.fromCharCode(this.buffer[pos]), body: Buffer.from(this.buffer.subarray(pos + 5, pos + 1 + length)) });
      pos += 1 + length;
    }
    this.buffer = this.buffer.subarray(pos);
    this.wake();
  }

  private stop(err: Error): void {
    this.ended ??= err;
    this.wake();
  }

  private wake(): void {
    const waiter = this.waiter;
    this.waiter = null;
    waiter?.();
  }
}

// ------------------------------------------------------------ decoding helpers

/** The message again with its header, for the decoders in src/protocol. */
function framed(m: RawMessage): Buffer {
  const header = Buffer.alloc(5);
  header[0] = m.type.charCodeAt(0);
  header.writeInt32BE(4 + m.body.length, 1);
  return Buffer.concat([header, m.body]);
}

function cstrings(body: Buffer): string[] {
  return body.toString('utf8').split('\0').slice(0, -1);
}

function md5Password(user: string, password: string, salt: Buffer): string {
  const inner = crypto.createHash('md5').update(password + user).digest('hex');
  return 'md5' + crypto.createHash('md5').update(Buffer.concat([Buffer.from(inner), salt])).digest('hex');
}

/** The fields of an ErrorResponse or NoticeResponse. */
export function errorOf(m: RawMessage): ErrorFields {
  const buf = framed(m);
  return decodeErrorFields(buf, 0, buf.length);
}

/**
 * A compact transcript of a message list: `C:INSERT 0 1`, `E:22012`, `Z:I`,
 * `N:NOTICE`, the bare letter for the rest ('1' ParseComplete, 'D' DataRow …).
 */
export function transcript(messages: RawMessage[], keep: (m: RawMessage) => boolean = () => true): string[] {
  return messages.filter(keep).map((m) => {
    switch (m.type) {
      case 'C':
        return `C:${cstrings(m.body)[0]}`;
      case 'E':
        return `E:${errorOf(m).code}`;
      case 'N':
        return `N:${errorOf(m).severityV ?? errorOf(m).severity}`;
      case 'Z':
        return `Z:${String.fromCharCode(m.body[0])}`;
      default:
        return m.type;
    }
  });
}

/** A DataRow's column values as text (NULL → null). */
export function dataRowValues(m: RawMessage): (string | null)[] {
  const n = m.body.readInt16BE(0);
  const values: (string | null)[] = [];
  let pos = 2;
  for (let i = 0; i < n; i++) {
    const length = m.body.readInt32BE(pos);
    pos += 4;
    if (length < 0) {
      values.push(null);
      continue;
    }
    values.push(m.body.toString('utf8', pos, pos + length));
    pos += length;
  }
  return values;
}

/** An extended-protocol statement as one batch: Parse, Bind, Describe, Execute, Sync. */
export function extendedBatch(text: string, values: unknown[] = [], name = ''): Buffer {
  return Buffer.concat([
    serialize.parse({ name, text }),
    serialize.bind({ statement: name, values: values.map((v) => (v === null ? null : String(v))) }),
    serialize.describe({ type: 'P' }),
    serialize.execute({}),
    serialize.sync(),
  ]);
}
