/**
 * A server that ends an idle session says so with a FATAL ErrorResponse
 * before it closes the socket (pg_terminate_backend, idle_session_timeout).
 * The link must count as closed from that message on, so the pool drops it
 * and never lends it in the gap before the close arrives. A scripted server
 * keeps its socket open after the FATAL to hold that gap open.
 */
import net from 'node:net';
import t from 'tap';
import { serverLinkConnector } from '../../src/pool/link-connector.js';
import { defaultPoolConfig } from '../../src/pool/pool-config.js';
import { PoolManager } from '../../src/pool/pool-manager.js';
import { errorResponse, readyForQuery } from '../../src/protocol/encode.js';
import { parseUpstreamUrl } from '../../src/proxy/upstream.js';
import { eventually } from '../helpers/proxy.js';

/** AuthenticationOk, BackendKeyData (pid, key), ReadyForQuery 'I'. */
function loggedIn(pid: number): Buffer {
  const ok = Buffer.from([0x52, 0, 0, 0, 8, 0, 0, 0, 0]);
  const key = Buffer.alloc(13);
  key[0] = 0x4b;
  key.writeInt32BE(12, 1);
  key.writeInt32BE(pid, 5);
  key.writeInt32BE(7, 9);
  return Buffer.concat([ok, key, readyForQuery('I')]);
}

const sockets: net.Socket[] = [];
const server = net.createServer((socket) => {
  sockets.push(socket);
  socket.once('data', () => socket.write(loggedIn(100 + sockets.length)));
  socket.on('error', () => {});
});
await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
t.teardown(() => {
  for (const socket of sockets) socket.destroy();
  server.close();
});
const { port } = server.address() as net.AddressInfo;

t.test('an idle link whose server sends FATAL is dropped before its socket closes, and the next loan gets a new one', async (t) => {
  const pools = new PoolManager({
    config: defaultPoolConfig({ server_reset_query: '', server_check_query: '' }),
    connect: serverLinkConnector({ target: parseUpstreamUrl(`postgres://127.0.0.1:${port}/db?sslmode=disable`), credentials: () => ({ kind: 'none' }) }),
  });
  t.teardown(() => pools.close({ force: true }));
  const first = await pools.acquire('db', 'u');
  t.equal(first.backendPid, 101);
  await pools.release(first);
  t.equal(pools.snapshot()[0].servers.idle, 1);

  sockets[0].write(errorResponse({ severity: 'FATAL', code: '57P01', message: 'terminating connection due to administrator command' }));
  await eventually(() => pools.snapshot()[0].servers.idle === 0, 5000, 'the pool to drop the link');
  t.ok(first.closed, 'the link counts as closed');
  t.match(first.closeReason, /administrator command \(57P01\)/);

  const next = await pools.acquire('db', 'u');
  t.equal(next.backendPid, 102, 'a new server connection for the next borrower');
  await pools.release(next);
});
