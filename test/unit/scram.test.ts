import t from 'tap';
import { formatVerifier, ScramClientExchange, ScramError, scramKeysFor, ScramServerExchange } from '../../src/auth/scram.js';
import { parseSecret } from '../../src/auth/userlist.js';

function exchange(clientPassword: string, storedPassword: string) {
  const server = new ScramServerExchange(scramKeysFor(storedPassword));
  const client = new ScramClientExchange({ password: clientPassword });
  const serverFirst = server.start(client.start());
  const result = server.finish(client.respond(serverFirst));
  return { client, result };
}

t.test('the right password: the server accepts the proof and proves itself back', async (t) => {
  const { client, result } = exchange('s3cret', 's3cret');
  t.ok(result, 'proof accepted');
  t.doesNotThrow(() => client.verify(result!.serverFinal));
  t.equal(result!.clientKey.length, 32, 'the ClientKey is recovered for pass-through');
});

t.test('a wrong password is refused, without an exception', async (t) => {
  t.equal(exchange('wrong', 's3cret').result, null);
});

t.test('a server that does not know the verifier is caught by the client', async (t) => {
  const { client } = exchange('s3cret', 's3cret');
  t.throws(() => client.verify(`v=${Buffer.alloc(32).toString('base64')}`), ScramError);
});

t.test('pass-through: keys recovered from one exchange log in again without the password', async (t) => {
  const keys = scramKeysFor('s3cret');
  const first = exchange('s3cret', 's3cret');
  t.ok(first.result);
  // A second server holding the same verifier.
  const verifier = parseSecret(formatVerifier(keys));
  t.equal(verifier.kind, 'scram-sha-256');
  const server = new ScramServerExchange(keys);
  const againstClient = new ScramClientExchange({ password: 's3cret' });
  const recovered = server.finish(againstClient.respond(server.start(againstClient.start())))!;
  const upstream = new ScramServerExchange(keys);
  const passThrough = new ScramClientExchange({ clientKey: recovered.clientKey, serverKey: keys.serverKey, salt: keys.salt, iterations: keys.iterations });
  const final = upstream.finish(passThrough.respond(upstream.start(passThrough.start())));
  t.ok(final, 'the upstream accepts the proof made from the recovered ClientKey');
  t.doesNotThrow(() => passThrough.verify(final!.serverFinal));
});

t.test('pass-through refuses a server whose salt differs', async (t) => {
  const keys = scramKeysFor('s3cret');
  const other = new ScramServerExchange(scramKeysFor('s3cret'));
  const client = new ScramClientExchange({ clientKey: Buffer.alloc(32), serverKey: keys.serverKey, salt: keys.salt, iterations: keys.iterations });
  t.throws(() => client.respond(other.start(client.start())), /salt or iteration count differ/);
});

t.test('malformed client messages are SCRAM errors, and channel binding is refused', async (t) => {
  t.throws(() => new ScramServerExchange(scramKeysFor('x')).start('garbage'), /malformed/);
  t.throws(() => new ScramServerExchange(scramKeysFor('x')).start('p=tls-server-end-point,,n=,r=abc'), /channel binding is not supported/);
  const server = new ScramServerExchange(scramKeysFor('x'));
  server.start('n,,n=,r=abc');
  t.throws(() => server.finish('c=biws,r=other,p=AAAA'), /nonce does not match/);
});
