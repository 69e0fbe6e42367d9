/**
 * ServerLink against a real server: txproxy's own login, control
 * statements with their answers, the server going away, and a wrong
 * password reported with the server's own error.
 */
import t from 'tap';
import { ServerLink, LinkError } from '../../src/server-link/server-link.js';
import { parseUpstreamUrl } from '../../src/upstream/target.js';
import { startPostgres } from '../helpers/postgres.js';
import { eventually } from '../helpers/proxy.js';

const server = await startPostgres();
t.teardown(() => server.stop());
const target = parseUpstreamUrl(`${server.url}?sslmode=disable`);
const credentials = { kind: 'password', password: 'postgres' } as const;

t.test('logs in, reports the backend and parameters, runs control statements', async (t) => {
  const link = await ServerLink.open(target, { user: 'postgres', database: 'postgres', parameters: { application_name: 'pool-link' } }, credentials, 3000);
  t.teardown(() => link.close());
  const seen = await server.sql('SELECT application_name, usename FROM pg_stat_activity WHERE pid = $1', [link.backendPid]);
  t.same(seen.rows, [{ application_name: 'pool-link', usename: 'postgres' }], 'the backend txproxy logged in');
  t.equal(link.parameters.get('application_name'), 'pool-link');

  t.same(await link.run("BEGIN; SET LOCAL TimeZone = 'UTC'"), { tags: ['BEGIN', 'SET'], error: null, status: 'T', rows: [], notifications: [] });
  t.equal(link.parameters.get('TimeZone'), 'UTC', 'ParameterStatus read while txproxy runs its statements');
  const failed = await link.run('SELECT 1/0');
  t.match(failed, { tags: [], error: { code: '22012' }, status: 'E' });
  t.same(await link.run('ROLLBACK'), { tags: ['ROLLBACK'], error: null, status: 'I', rows: [], notifications: [] });
  // Several statements in one Query form one transaction, where DISCARD ALL cannot run: the reset goes alone.
  t.match(await link.run('SELECT 1; DISCARD ALL'), { error: { code: '25001' } });
  t.same(await link.run('DISCARD ALL'), { tags: ['DISCARD ALL'], error: null, status: 'I', rows: [], notifications: [] });
  t.same((await link.run("SELECT 1 AS a, NULL AS b, 'x' UNION ALL SELECT 2, 'y', ''")).rows, [['1', null, 'x'], ['2', 'y', '']], 'rows as text, NULL as null');
});

t.test('a notification that comes while txproxy runs its own statements is kept for the listener', async (t) => {
  const link = await ServerLink.open(target, { user: 'postgres', database: 'postgres' }, credentials, 3000);
  t.teardown(() => link.close());
  await link.run('LISTEN jobs');
  const running = link.run('SELECT pg_sleep(0.5)');
  await eventually(async () => (await server.sql("SELECT 1 FROM pg_stat_activity WHERE pid = $1 AND state = 'active'", [link.backendPid])).rowCount === 1, 5000, 'the sleep to run');
  await server.sql("NOTIFY jobs, 'one'");
  const result = await running;
  t.equal(result.notifications.length, 1, 'one NotificationResponse');
  const message = result.notifications[0];
  t.equal(String.fromCharCode(message[0]), 'A');
  t.equal(message.readInt32BE(1), message.length - 1, 'whole, its length as on the wire');
  t.match(message.toString('latin1'), /jobs\0one\0$/);
});

t.test('a backend terminated while idle: the link knows it is closed', async (t) => {
  const link = await ServerLink.open(target, { user: 'postgres', database: 'postgres' }, credentials, 3000);
  const reasons: string[] = [];
  link.onClosed((reason) => reasons.push(reason));
  await server.sql('SELECT pg_terminate_backend($1)', [link.backendPid]);
  await eventually(() => link.closed, 5000, 'the link to notice');
  await t.rejects(link.run('SELECT 1'), LinkError);
  // The server's FATAL is read as the end, before the socket's close event.
  t.match(link.closeReason, /terminating connection due to administrator command \(57P01\)/);
  t.same(reasons, [link.closeReason], 'onClosed listeners are told once');
  link.onClosed((reason) => reasons.push(reason));
  await eventually(() => reasons.length === 2, 1000, 'a late listener to be told too');
});

t.test('a wrong password: the server error, and no socket left open', async (t) => {
  const err = await ServerLink.open(target, { user: 'postgres', database: 'postgres' }, { kind: 'password', password: 'nope' }, 3000).catch((e) => e);
  t.type(err, LinkError);
  t.match(err, { message: 'password authentication failed for user "postgres"', fields: { code: '28P01' } });
});

t.test('close() says Terminate: the backend exits', async (t) => {
  const link = await ServerLink.open(target, { user: 'postgres', database: 'postgres' }, credentials, 3000);
  const pid = link.backendPid;
  link.close();
  await eventually(async () => (await server.sql('SELECT count(*)::int AS n FROM pg_stat_activity WHERE pid = $1', [pid])).rows[0].n === 0, 5000, 'the backend to exit');
  t.ok(link.closed);
});
