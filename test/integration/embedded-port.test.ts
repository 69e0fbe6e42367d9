/**
 * The embedded server's free port is chosen after initdb and, when another
 * process takes it before the server binds, the server starts again on
 * another one instead of failing the test file (or `npm start`).
 */
import net from 'node:net';
import t from 'tap';
import pg from 'pg';
import { freePort, startEmbeddedPostgres } from '../../src/embedded/embedded-postgres.js';

t.test('a port taken between choosing it and binding it is replaced by another', async (t) => {
  const squatter = net.createServer();
  await new Promise<void>((resolve) => squatter.listen(0, '127.0.0.1', resolve));
  t.teardown(() => squatter.close());
  const taken = (squatter.address() as net.AddressInfo).port;

  const handedOut: number[] = [];
  const server = await startEmbeddedPostgres({
    dataDir: null,
    port: 0,
    user: 'postgres',
    password: 'postgres',
    pickPort: async () => {
      const port = handedOut.length === 0 ? taken : await freePort();
      handedOut.push(port);
      return port;
    },
  });
  t.teardown(() => server.stop());

  t.equal(handedOut.length, 2, 'a second port was asked for after the first could not be bound');
  t.equal(server.port, handedOut[1], 'the server reports the port it really listens on');
  const client = new pg.Client({ host: server.host, port: server.port, user: 'postgres', password: 'postgres', database: 'postgres' });
  await client.connect();
  t.same((await client.query('SELECT 1 AS one')).rows, [{ one: 1 }]);
  await client.end();
});

t.test('an explicit port that is taken fails with the server log, not a retry elsewhere', async (t) => {
  const squatter = net.createServer();
  await new Promise<void>((resolve) => squatter.listen(0, '127.0.0.1', resolve));
  t.teardown(() => squatter.close());
  const taken = (squatter.address() as net.AddressInfo).port;
  await t.rejects(
    startEmbeddedPostgres({ dataDir: null, port: taken, user: 'postgres', password: 'postgres' }),
    /embedded PostgreSQL failed to start[\s\S]*(could not bind|Address already in use)/,
  );
});
