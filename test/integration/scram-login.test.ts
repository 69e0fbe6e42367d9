/**
 * txproxy's SCRAM client against a real PostgreSQL: with the password, and
 * by pass-through with the ClientKey a client revealed while proving itself
 * against the server's own verifier (read from pg_authid).
 */
import t from 'tap';
import { ScramClientExchange, ScramServerExchange, type ScramCredentials } from '../../src/auth/scram.js';
import { parseSecret } from '../../src/auth/userlist.js';
import { RawConnection, startupMessage } from '../helpers/raw-connection.js';
import { startPostgres } from '../helpers/postgres.js';

const server = await startPostgres();
t.teardown(() => server.stop());

function password(body: Buffer): Buffer {
  const header = Buffer.alloc(5);
  header[0] = 0x70; // p
  header.writeInt32BE(4 + body.length, 1);
  return Buffer.concat([header, body]);
}

function saslInitialResponse(mechanism: string, data: string): Buffer {
  const payload = Buffer.from(data);
  const length = Buffer.alloc(4);
  length.writeInt32BE(payload.length);
  return password(Buffer.concat([Buffer.from(`${mechanism}\0`), length, payload]));
}

/** Logs in as `postgres` with `credentials`; the authentication codes seen and the final message type. */
async function login(credentials: ScramCredentials): Promise<{ codes: number[]; end: string; error?: string }> {
  const conn = await RawConnection.connect(server.port);
  t.teardown(() => conn.destroy());
  conn.write(startupMessage({ user: 'postgres', database: 'postgres' }));
  const scram = new ScramClientExchange(credentials);
  const codes: number[] = [];
  for (;;) {
    const message = await conn.readMessage();
    if (message.type === 'E') return { codes, end: 'E', error: message.body.toString('latin1') };
    if (message.type === 'Z') return { codes, end: 'Z' };
    if (message.type !== 'R') continue;
    const code = message.body.readInt32BE(0);
    codes.push(code);
    if (code === 10) conn.write(saslInitialResponse('SCRAM-SHA-256', scram.start()));
    if (code === 11) conn.write(password(Buffer.from(scram.respond(message.body.subarray(4).toString()))));
    if (code === 12) scram.verify(message.body.subarray(4).toString());
  }
}

t.test('logs in with the password', async (t) => {
  t.same(await login({ password: 'postgres' }), { codes: [10, 11, 12, 0], end: 'Z' });
});

t.test('a wrong password gets the server 28P01', async (t) => {
  const result = await login({ password: 'nope' });
  t.equal(result.end, 'E');
  t.match(result.error, /28P01[\s\S]*password authentication failed for user "postgres"/);
});

t.test('pass-through: the ClientKey of a client checked against the server verifier logs in', async (t) => {
  const stored = (await server.sql("SELECT rolpassword FROM pg_authid WHERE rolname = 'postgres'")).rows[0].rolpassword as string;
  const secret = parseSecret(stored);
  if (secret.kind !== 'scram-sha-256') throw new Error(`unexpected secret kind ${secret.kind}`);
  // A client proves itself to txproxy with the password; txproxy keeps only what the proof reveals.
  const checker = new ScramServerExchange(secret);
  const client = new ScramClientExchange({ password: 'postgres' });
  const checked = checker.finish(client.respond(checker.start(client.start())));
  t.ok(checked, 'the client proved itself against the server verifier');
  const result = await login({ clientKey: checked!.clientKey, serverKey: secret.serverKey, salt: secret.salt, iterations: secret.iterations });
  t.same(result, { codes: [10, 11, 12, 0], end: 'Z' }, 'logged in without a password');
});
