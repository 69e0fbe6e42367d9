/**
 * A large result read by a slow client arrives byte for byte as PostgreSQL
 * sent it, with sockets read into a reused buffer (the default) and with a
 * fresh buffer per read. A slow reader makes the proxy's writes to it wait
 * on the kernel, which is when a reused buffer must not be overwritten.
 */
import { createHash } from 'node:crypto';
import net from 'node:net';
import t from 'tap';
import { startupMessage } from '../helpers/raw-connection.js';
import { startPostgres } from '../helpers/postgres.js';
import { startProxy } from '../helpers/proxy.js';
import { TRUST_LOCAL } from '../helpers/exact-client.js';

const ROWS = 200_000;
const QUERY = `SELECT i, repeat(md5(i::text), 5) AS filler FROM generate_series(1, ${ROWS}) AS i`;
/** The client stops reading for a moment after each such run of bytes. */
const READ_RUN = 1 << 20;
const STALL_MS = 15;

const server = await startPostgres({ hba: TRUST_LOCAL });
t.teardown(() => server.stop());

function queryMessage(sql: string): Buffer {
  const text = Buffer.from(`${sql}\0`);
  const header = Buffer.alloc(5);
  header[0] = 0x51; // Q
  header.writeInt32BE(4 + text.length, 1);
  return Buffer.concat([header, text]);
}

/**
 * Logs in (trust), runs the query and returns the SHA-256 and length of every
 * byte that answered it, up to and including ReadyForQuery, reading slowly.
 */
async function slowlyRead(port: number): Promise<{ sha256: string; bytes: number }> {
  const socket = net.connect({ port, host: '127.0.0.1' });
  await new Promise<void>((resolve, reject) => socket.once('connect', resolve).once('error', reject));
  socket.write(startupMessage({ user: 'postgres', database: 'postgres' }));
  return new Promise((resolve, reject) => {
    const hash = createHash('sha256');
    let loggedIn = false;
    let pending = Buffer.alloc(0);
    let bytes = 0;
    let sinceStall = 0;
    socket.on('error', reject);
    socket.on('close', () => reject(new Error(`closed after ${bytes} bytes of the answer`)));
    socket.on('data', (chunk: Buffer) => {
      if (!loggedIn) {
        // The login answer is small; find its ReadyForQuery and start the query after it.
        pending = Buffer.concat([pending, chunk]);
        let offset = 0;
        while (pending.length >= offset + 5) {
          const length = pending.readInt32BE(offset + 1);
          if (pending.length < offset + 1 + length) break;
          const type = String.fromCharCode(pending[offset]);
          offset += 1 + length;
          if (type === 'E') return reject(new Error('login refused'));
          if (type === 'Z') {
            loggedIn = true;
            socket.write(queryMessage(QUERY));
            chunk = pending.subarray(offset);
            break;
          }
        }
        if (!loggedIn || chunk.length === 0) return;
      }
      hash.update(chunk);
      bytes += chunk.length;
      sinceStall += chunk.length;
      // The answer ends with ReadyForQuery 'I': Z, length 5, I.
      const tail = chunk.length >= 6 ? chunk.subarray(-6) : null;
      if (tail !== null && tail.equals(Buffer.from([0x5a, 0, 0, 0, 5, 0x49]))) {
        socket.removeAllListeners('close');
        socket.destroy();
        return resolve({ sha256: hash.digest('hex'), bytes });
      }
      if (sinceStall >= READ_RUN) {
        sinceStall = 0;
        socket.pause();
        setTimeout(() => socket.resume(), STALL_MS);
      }
    });
  });
}

const direct = await slowlyRead(server.port);
t.ok(direct.bytes > 30_000_000, `the result is large: ${direct.bytes} bytes`);

for (const readBuffer of ['reused', 'per_read'] as const) {
  t.test(`read_buffer: ${readBuffer} — the result arrives byte for byte under backpressure`, async (t) => {
    const proxy = await startProxy(server, { read_buffer: readBuffer });
    t.teardown(() => proxy.stop());
    const through = await slowlyRead(proxy.port);
    t.equal(through.bytes, direct.bytes, 'as many bytes as directly');
    t.equal(through.sha256, direct.sha256, 'the same bytes as directly');
  });
}
