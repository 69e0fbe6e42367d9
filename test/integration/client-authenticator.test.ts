/**
 * ClientAuthenticator behind a bare listener, logging in real node-postgres
 * clients: each method, a wrong password, an unknown user (the same answer).
 */
import net from 'node:net';
import t from 'tap';
import pg from 'pg';
import { ClientAuthenticator, type AuthMethod, type ServerCredentials } from '../../src/auth/client-authenticator.js';
import { md5Hash } from '../../src/auth/md5.js';
import { formatVerifier, scramKeysFor } from '../../src/auth/scram.js';
import { parseUserlist } from '../../src/auth/userlist.js';
import { readyForQuery } from '../../src/protocol/encode.js';

const users = parseUserlist(
  ['"plain" "s3cret"', `"hashed" "${md5Hash('hashed', 's3cret')}"`, `"verifier" "${formatVerifier(scramKeysFor('s3cret'))}"`].join('\n'),
);

/** A listener that logs clients in with `method` and then says ReadyForQuery; records what each login yielded. */
async function listener(method: AuthMethod): Promise<{ port: number; logins: ServerCredentials[]; close: () => void }> {
  const logins: ServerCredentials[] = [];
  const server = net.createServer((socket) => {
    let buffered = Buffer.alloc(0);
    let auth: ClientAuthenticator | null = null;
    let done = false;
    socket.on('error', () => undefined);
    socket.on('data', (chunk: Buffer) => {
      // After the login the client only says Terminate; that is not the authenticator's.
      if (done) return;
      buffered = Buffer.concat([buffered, chunk]);
      for (;;) {
        if (auth === null) {
          if (buffered.length < 4 || buffered.length < buffered.readInt32BE(0)) return;
          const length = buffered.readInt32BE(0);
          const fields = buffered.toString('utf8', 8, length - 1).split('\0');
          buffered = buffered.subarray(length);
          const user = fields[fields.indexOf('user') + 1];
          auth = new ClientAuthenticator(method, user, users.get(user) ?? null);
          if (!apply(auth.begin()) || done) return;
          continue;
        }
        if (buffered.length < 5 || buffered.length < 1 + buffered.readInt32BE(1)) return;
        const length = buffered.readInt32BE(1);
        const body = buffered.subarray(5, 1 + length);
        buffered = buffered.subarray(1 + length);
        if (!apply(auth.onPassword(body)) || done) return;
      }
    });
    function apply(step: ReturnType<ClientAuthenticator['begin']>): boolean {
      for (const message of step.send) socket.write(message);
      if (step.refused) {
        socket.end();
        return false;
      }
      if (step.loggedIn) {
        done = true;
        logins.push(step.loggedIn);
        socket.write(readyForQuery('I'));
      }
      return true;
    }
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { port: (server.address() as net.AddressInfo).port, logins, close: () => server.close() };
}

async function connect(port: number, user: string, password: string): Promise<{ ok: true } | { ok: false; code?: string; message: string }> {
  const client = new pg.Client({ host: '127.0.0.1', port, user, password, database: 'postgres' });
  try {
    await client.connect();
    await client.end().catch(() => undefined);
    return { ok: true };
  } catch (err) {
    return { ok: false, code: (err as pg.DatabaseError).code, message: (err as Error).message };
  }
}

t.test('scram-sha-256: plain passwords and SCRAM verifiers log in; md5 hashes cannot', async (t) => {
  const server = await listener('scram-sha-256');
  t.teardown(server.close);
  t.same(await connect(server.port, 'plain', 's3cret'), { ok: true });
  t.same(await connect(server.port, 'verifier', 's3cret'), { ok: true });
  t.match(server.logins, [{ kind: 'password', password: 's3cret' }, { kind: 'scram-keys' }], 'a verifier yields the keys for pass-through');
  t.same(await connect(server.port, 'hashed', 's3cret'), { ok: false, code: '28P01', message: 'password authentication failed for user "hashed"' });
});

t.test('a wrong password and an unknown user get the same answer', async (t) => {
  const server = await listener('scram-sha-256');
  t.teardown(server.close);
  const wrong = await connect(server.port, 'verifier', 'nope');
  const unknown = await connect(server.port, 'nobody', 'nope');
  t.same(wrong, { ok: false, code: '28P01', message: 'password authentication failed for user "verifier"' });
  t.same(unknown, { ok: false, code: '28P01', message: 'password authentication failed for user "nobody"' });
  t.equal(server.logins.length, 0);
});

t.test('md5: plain passwords and md5 hashes; a SCRAM verifier is asked for SCRAM, as PostgreSQL does', async (t) => {
  const server = await listener('md5');
  t.teardown(server.close);
  t.same(await connect(server.port, 'plain', 's3cret'), { ok: true });
  t.same(await connect(server.port, 'hashed', 's3cret'), { ok: true });
  t.same(await connect(server.port, 'verifier', 's3cret'), { ok: true });
  t.match(server.logins, [{ kind: 'password' }, { kind: 'md5', hash: md5Hash('hashed', 's3cret') }, { kind: 'scram-keys' }]);
  t.same(await connect(server.port, 'hashed', 'nope'), { ok: false, code: '28P01', message: 'password authentication failed for user "hashed"' });
  t.same(await connect(server.port, 'nobody', 'nope'), { ok: false, code: '28P01', message: 'password authentication failed for user "nobody"' });
});

t.test('trust: anyone, whatever the password', async (t) => {
  const server = await listener('trust');
  t.teardown(server.close);
  t.same(await connect(server.port, 'nobody', 'anything'), { ok: true });
  t.match(server.logins, [{ kind: 'none' }]);
});
