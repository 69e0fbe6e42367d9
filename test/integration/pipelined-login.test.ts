/**
 * Messages a client sends before the session is ready — behind its
 * StartupMessage (trust) or behind its last authentication message (md5,
 * cleartext, SCRAM client-final) — reach the server only once it is ready,
 * and on the same path as every later message: the policies judge them and
 * the tracker records them. A read-only policy refuses a pipelined INSERT,
 * an idle-in-transaction limit covers a pipelined BEGIN, and a fully
 * pipelined session that committed is traced as committed.
 */
import t from 'tap';
import { startPostgres } from '../helpers/postgres.js';
import { eventually, startProxy } from '../helpers/proxy.js';
import { errorOf, RawClient, transcript, type RawMessage } from '../helpers/raw-client.js';
import { serialize } from '../helpers/messages.js';

const postgres = await startPostgres({
  hba: [
    'local all all trust',
    'host all postgres 127.0.0.1/32 scram-sha-256',
    'host all trust_user 127.0.0.1/32 trust',
    'host all cleartext_user 127.0.0.1/32 password',
    'host all md5_user 127.0.0.1/32 md5',
    'host all scram_user 127.0.0.1/32 scram-sha-256',
    '',
  ].join('\n'),
});
const setup = await postgres.direct();
await setup.query('CREATE TABLE notes (body text)');
for (const [user, password] of [
  ['trust_user', null],
  ['cleartext_user', 'clear-secret'],
  ['scram_user', 'scram-secret'],
]) {
  await setup.query(`CREATE ROLE ${user} LOGIN${password === null ? '' : ` PASSWORD '${password}'`}`);
}
await setup.query("SET password_encryption = 'md5'");
await setup.query("CREATE ROLE md5_user LOGIN PASSWORD 'md5-secret'");
await setup.query('GRANT ALL ON notes TO PUBLIC');
await setup.end();

const proxy = await startProxy(postgres, {
  policies: {
    default: { mode: 'autocommit' },
    rules: [
      { name: 'readers', match: { application_name: 'reader' }, mode: 'read-only' },
      { name: 'idle-300ms', match: { application_name: 'idler' }, limits: { idle_in_transaction_timeout: '300ms' } },
    ],
  },
});
t.teardown(async () => {
  await proxy.stop();
  await postgres.stop();
});

t.beforeEach(async () => {
  await postgres.sql('TRUNCATE notes');
  proxy.trace.records.length = 0;
});

const LOGINS = [
  { user: 'trust_user', password: '', trusted: true },
  { user: 'cleartext_user', password: 'clear-secret', trusted: false },
  { user: 'md5_user', password: 'md5-secret', trusted: false },
  { user: 'scram_user', password: 'scram-secret', trusted: false },
];

function socketClosed(client: RawClient): Promise<void> {
  return client.socket.destroyed ? Promise.resolve() : new Promise((resolve) => client.socket.once('close', () => resolve()));
}

const notes = async () => (await postgres.sql('SELECT body FROM notes ORDER BY body')).rows.map((r) => r.body as string);

/** Logs in with `pipelined` in the same write as the last login message; returns the client and the answers up to the next ReadyForQuery. */
async function pipelinedLogin(login: (typeof LOGINS)[number], applicationName: string, pipelined: Buffer): Promise<{ client: RawClient; answers: RawMessage[] }> {
  const client = await RawClient.connect({
    port: proxy.port,
    user: login.user,
    password: login.password,
    trusted: login.trusted,
    params: { application_name: applicationName },
    pipelined,
  });
  return { client, answers: await client.readyForQuery() };
}

for (const login of LOGINS) {
  t.test(`${login.user}: an INSERT pipelined with the login is refused by a read-only policy`, async (t) => {
    const { client, answers } = await pipelinedLogin(login, 'reader', serialize.query("INSERT INTO notes VALUES ('sneaked in')"));
    t.same(transcript(answers), ['E:25006', 'Z:I'], 'refused like any later INSERT');
    t.match(errorOf(answers[0]), { severity: 'ERROR', message: /cannot execute INSERT in a read-only transaction: txproxy policy rule 'readers'/ });
    t.same(await notes(), [], 'nothing was written');
    t.same(transcript(await client.query('SELECT 1')), ['T', 'D', 'C:SELECT 1', 'Z:I'], 'the session goes on');
    await client.close();
    await eventually(() => proxy.trace.records.some((r) => r.kind === 'policy'), 2000, 'the policy record');
    t.match(
      proxy.trace.records.filter((r) => r.kind === 'policy'),
      [{ rule: 'readers', sqlstate: '25006' }],
    );
  });
}

t.test('a session pipelined from login to Terminate that committed is traced as committed', async (t) => {
  for (const login of LOGINS) {
    proxy.transactions.length = 0;
    const client = await RawClient.connect({
      port: proxy.port,
      user: login.user,
      password: login.password,
      trusted: login.trusted,
      pipelined: Buffer.concat([serialize.query(`INSERT INTO notes VALUES ('${login.user}')`), serialize.end()]),
    });
    t.same(transcript(await client.readyForQuery()), ['C:INSERT 0 1', 'Z:I'], `${login.user}: the INSERT ran`);
    await eventually(() => proxy.transactions.length === 1, 5000, 'the transaction record');
    t.match(proxy.transactions[0], { outcome: 'commit', implicit: true, statements: 1, writes: 1 }, login.user);
    await socketClosed(client);
  }
  t.same(await notes(), LOGINS.map((l) => l.user).sort());
});

t.test('idle_in_transaction_timeout covers a BEGIN pipelined with the login', async (t) => {
  for (const login of [LOGINS[0], LOGINS[3]]) {
    const { client, answers } = await pipelinedLogin(login, 'idler', serialize.query("BEGIN; INSERT INTO notes VALUES ('left idle')"));
    t.same(transcript(answers), ['C:BEGIN', 'C:INSERT 0 1', 'Z:T'], login.user);
    const [error] = await client.until((m) => m.type === 'E');
    t.match(errorOf(error), { severity: 'FATAL', code: '25P03', detail: /rule 'idle-300ms'/ }, `${login.user}: the limit applies`);
    await socketClosed(client);
    await eventually(async () => (await postgres.sql("SELECT count(*)::int AS n FROM pg_stat_activity WHERE state LIKE 'idle in transaction%'")).rows[0].n === 0);
  }
  t.same(await notes(), [], 'rolled back');
});

t.test('a message sent where the server expects a password reaches the server, which refuses it', async (t) => {
  const early = await RawClient.connect({
    port: proxy.port,
    user: 'md5_user',
    password: 'md5-secret',
    // Sent with the StartupMessage, ahead of the server's md5 request: it arrives where the password should.
    trusted: true,
    pipelined: serialize.query("INSERT INTO notes VALUES ('instead of a password')"),
  }).catch((e: Error) => e);
  t.type(early, Error);
  t.match((early as Error).message, /expected password response, got message type 81/);
  t.same(await notes(), []);
});
