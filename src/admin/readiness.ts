/**
 * Is the upstream server there, and does it answer? Opens a connection as
 * sessions do (SSLRequest and TLS as the URL's sslmode asks), sends a
 * StartupMessage, and waits for the server's first message in full — as
 * pg_isready does. Any complete authentication request or error proves a
 * live server, credentials or not; only "the database system is starting
 * up / shutting down" (57P03) counts as not ready. A server that accepts
 * the connection but stalls, even in the middle of a message, is not ready.
 * The probe closes right after that message: the server exits quietly.
 * https://www.postgresql.org/docs/current/app-pg-isready.html
 */
import type net from 'node:net';
import { performance } from 'node:perf_hooks';
import { decodeErrorFields } from '../protocol/decode.js';
import { serialize } from '../protocol/frontend-messages.js';
import { connectUpstream } from '../proxy/upstream.js';
import { describeTarget, type UpstreamTarget } from '../upstream/target.js';

export type Readiness = { ready: true; ms: number } | { ready: false; reason: string };

/** What the probe calls itself in pg_stat_activity and the server's log. */
const PROBE_APPLICATION_NAME = 'txproxy readiness probe';

const AUTHENTICATION = 0x52; // R
const ERROR_RESPONSE = 0x45; // E
const NEGOTIATE_PROTOCOL_VERSION = 0x76; // v
/** cannot_connect_now: starting up, shutting down, in recovery without hot standby. */
const CANNOT_CONNECT_NOW = '57P03';

export function probeUpstream(target: UpstreamTarget, timeoutMs: number): Promise<Readiness> {
  const started = performance.now();
  const name = describeTarget(target);
  return new Promise((resolve) => {
    let socket: net.Socket | null = null;
    let settled = false;
    const done = (result: Readiness) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      socket?.destroy();
      resolve(result);
    };
    const timer = setTimeout(() => done({ ready: false, reason: `no complete answer from ${name} within ${timeoutMs} ms` }), timeoutMs);
    connectUpstream(target, timeoutMs).then(
      (connection) => {
        socket = connection.socket;
        if (settled) {
          socket.destroy();
          return;
        }
        awaitFirstMessage(socket, name, started, done);
        socket.write(
          serialize.startup({
            user: target.user ?? 'postgres',
            database: target.database ?? target.user ?? 'postgres',
            application_name: PROBE_APPLICATION_NAME,
          }),
        );
      },
      (err: Error) => done({ ready: false, reason: `cannot connect to ${name}: ${err.message}` }),
    );
  });
}

/** Reads until the server's first message is complete and judges it. */
function awaitFirstMessage(socket: net.Socket, name: string, started: number, done: (result: Readiness) => void): void {
  let received = Buffer.alloc(0);
  socket.on('data', (chunk: Buffer) => {
    received = Buffer.concat([received, chunk]);
    if (received.length < 5) return;
    const type = received[0];
    const length = received.readInt32BE(1);
    if ((type !== AUTHENTICATION && type !== ERROR_RESPONSE && type !== NEGOTIATE_PROTOCOL_VERSION) || length < 4 || length > 65536) {
      done({ ready: false, reason: `${name} answered the StartupMessage with something that is not a PostgreSQL message (type 0x${type.toString(16)}, length ${length}): not a PostgreSQL server?` });
      return;
    }
    if (received.length < 1 + length) return;
    if (type === ERROR_RESPONSE) {
      let error;
      try {
        error = decodeErrorFields(received, 0, 1 + length);
      } catch {
        done({ ready: false, reason: `${name} answered with an unreadable ErrorResponse: not a PostgreSQL server?` });
        return;
      }
      if (error.code === CANNOT_CONNECT_NOW) {
        done({ ready: false, reason: `${name} does not accept connections now: ${error.message}` });
        return;
      }
    }
    done({ ready: true, ms: performance.now() - started });
  });
  socket.on('error', (err) => done({ ready: false, reason: `connection to ${name} failed: ${err.message}` }));
  socket.on('close', () => done({ ready: false, reason: `${name} closed the connection without a complete answer` }));
  socket.resume();
}
