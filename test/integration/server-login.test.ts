/**
 * ServerLogin against a real PostgreSQL with each pg_hba method: trust,
 * password (cleartext), md5 and scram-sha-256, with each kind of
 * credentials a client login leaves.
 */
import t from 'tap';
import type { ServerCredentials } from '../../src/auth/client-authenticator.js';
import { md5Hash } from '../../src/auth/md5.js';
import { ServerLogin, type LoginStep } from '../../src/auth/server-login.js';
import { RawConnection, startupMessage } from '../helpers/raw-connection.js';
import { startPostgres } from '../helpers/postgres.js';

const server = await startPostgres({
  hba: [
    'local all all trust',
    'host all trusting 127.0.0.1/32 trust',
    'host all cleartext 127.0.0.1/32 password',
    'host all hashed 127.0.0.1/32 md5',
    'host all all 127.0.0.1/32 scram-sha-256',
    '',
  ].join('\n'),
});
t.teardown(() => server.stop());
await server.sql("CREATE ROLE trusting LOGIN; CREATE ROLE cleartext LOGIN PASSWORD 's3cret'; CREATE ROLE scrammed LOGIN PASSWORD 's3cret'");
await server.sql("SET password_encryption = 'md5'; CREATE ROLE hashed LOGIN PASSWORD 's3cret'");

async function login(user: string, credentials: ServerCredentials): Promise<LoginStep> {
  const conn = await RawConnection.connect(server.port);
  t.teardown(() => conn.destroy());
  conn.write(startupMessage({ user, database: 'postgres', application_name: 'login-test' }));
  const state = new ServerLogin(user, credentials);
  for (;;) {
    const message = await conn.readMessage();
    const step = state.onMessage(message.type, message.body);
    for (const out of step.send ?? []) conn.write(out);
    if (step.done !== undefined || step.failed !== undefined) return step;
  }
}

const password: ServerCredentials = { kind: 'password', password: 's3cret' };

t.test('every method with a password, and the backend identity and parameters collected', async (t) => {
  for (const user of ['trusting', 'cleartext', 'hashed', 'scrammed']) {
    const step = await login(user, password);
    t.ok(step.done, `${user} logged in`);
    t.ok(step.done!.backendPid > 0, 'backend pid');
    t.equal(step.done!.backendKey.length, 4, 'the secret key of protocol 3.0');
    t.equal(step.done!.parameters.get('application_name'), 'login-test');
    t.equal(step.done!.parameters.get('session_authorization'), user);
  }
});

t.test('md5 with only the stored hash', async (t) => {
  const step = await login('hashed', { kind: 'md5', hash: md5Hash('hashed', 's3cret') });
  t.ok(step.done);
});

t.test('a wrong password: the server error, with its fields', async (t) => {
  const step = await login('scrammed', { kind: 'password', password: 'nope' });
  t.match(step.failed, { message: 'password authentication failed for user "scrammed"', fields: { code: '28P01', severity: 'FATAL' } });
});

t.test('credentials that cannot answer the method say which and for whom', async (t) => {
  t.match((await login('cleartext', { kind: 'md5', hash: md5Hash('cleartext', 's3cret') })).failed, {
    message: 'the server asks for a cleartext password, and txproxy has an md5 hash for user "cleartext"',
  });
  t.match((await login('scrammed', { kind: 'none' })).failed, { message: 'the server asks for SCRAM-SHA-256, and txproxy has no password for user "scrammed"' });
});
