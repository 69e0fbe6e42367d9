/**
 * txproxy as a real process with few file descriptors (`ulimit -n 128`),
 * under a flood of TCP connections that never send a startup packet and
 * reconnect as soon as they are closed: real clients get a clear
 * FATAL 53300 (max_pending_handshakes) instead of a dropped connection, the
 * process stays up, and once the flood stops clients get in again.
 */
import net from 'node:net';
import t from 'tap';
import pg from 'pg';
import { startPostgres } from '../helpers/postgres.js';
import { eventually } from '../helpers/proxy.js';
import { startCli } from '../helpers/txproxy-cli.js';

const FILE_LIMIT = 128;
const PENDING = 20;
const FLOOD = 300;

const postgres = await startPostgres();
const cli = await startCli(
  ['--upstream', `${postgres.url}?sslmode=disable`, '--listen', '127.0.0.1:0', '--http', 'off', '--trace', 'off', '--log-level', 'warn'],
  { TXPROXY_MAX_PENDING_HANDSHAKES: String(PENDING), TXPROXY_MAX_CLIENT_CONN: '20' },
  30_000,
  { fileLimit: FILE_LIMIT },
);
t.teardown(async () => {
  cli.kill('SIGKILL');
  await cli.exited;
  await postgres.stop();
});

/** Silent connections that reconnect whenever they are closed, until stopped. */
function flood(count: number): { stop(): void; opened: () => number } {
  let stopped = false;
  let opened = 0;
  const sockets = new Set<net.Socket>();
  const open = () => {
    if (stopped) return;
    const socket = net.connect({ host: '127.0.0.1', port: cli.port });
    opened++;
    sockets.add(socket);
    socket.on('error', () => undefined);
    // Sends nothing; reads (and drops) what comes, so txproxy's close is seen and answered by a new connection.
    socket.resume();
    socket.on('close', () => {
      sockets.delete(socket);
      setImmediate(open);
    });
  };
  for (let i = 0; i < count; i++) open();
  return {
    opened: () => opened,
    stop() {
      stopped = true;
      for (const socket of sockets) socket.destroy();
    },
  };
}

const connection = { host: '127.0.0.1', port: cli.port, user: postgres.user, password: postgres.password, database: 'postgres' };

t.test(`${FLOOD} silent connections against ${FILE_LIMIT} file descriptors: clients are told why, and get in afterwards`, async (t) => {
  const silent = flood(FLOOD);
  t.teardown(() => silent.stop());
  await eventually(() => silent.opened() > FLOOD * 2, 10_000, 'the flood to be refused and renewed');

  for (let i = 0; i < 5; i++) {
    const err = (await new pg.Client(connection).connect().catch((e) => e)) as pg.DatabaseError;
    t.match(err, { severity: 'FATAL', code: '53300', message: /max_pending_handshakes/ }, `client ${i + 1}: FATAL 53300, not a dropped connection`);
  }
  t.equal(cli.child.exitCode, null, 'txproxy is still running');

  silent.stop();
  // The silent connections in their handshake are gone once their sockets close.
  await eventually(
    async () => {
      const client = new pg.Client(connection);
      try {
        await client.connect();
      } catch {
        return false;
      }
      const { rows } = await client.query('SELECT 1 AS one');
      await client.end();
      return rows[0].one === 1;
    },
    10_000,
    'a client to get in',
  );
  t.notMatch(cli.stderr(), /could not accept a client connection/, 'no accept failed for want of descriptors');
});
