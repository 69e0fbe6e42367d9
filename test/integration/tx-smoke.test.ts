import t from 'tap';
import pg from 'pg';
import { parseSecret } from '../../src/auth/userlist.js';
import { startPostgres } from '../helpers/postgres.js';
import { startProxy } from '../helpers/proxy.js';

const postgres = await startPostgres();
const proxy = await startProxy(
  postgres,
  { pool: { mode: 'transaction', default_pool_size: 1 }, auth: { type: 'scram-sha-256' } },
  { app: { userlist: new Map([[postgres.user, parseSecret(postgres.password)]]) } },
);
t.teardown(async () => {
  await proxy.stop();
  await postgres.stop();
});

t.test('two clients on a pool of one', async (t) => {
  const a = await proxy.client({ application_name: 'a' });
  const b = await proxy.client({ application_name: 'b' });
  t.teardown(async () => { await a.end(); await b.end(); });
  const ra = await a.query("select pg_backend_pid() pid, current_setting('application_name') app");
  const rb = await b.query("select pg_backend_pid() pid, current_setting('application_name') app");
  t.equal(ra.rows[0].pid, rb.rows[0].pid);
  t.equal(ra.rows[0].app, 'a');
  t.equal(rb.rows[0].app, 'b');
  await a.query('set statement_timeout = 1234');
  t.equal((await b.query('show statement_timeout')).rows[0].statement_timeout, '0');
  t.equal((await a.query('show statement_timeout')).rows[0].statement_timeout, '1234ms');
  const q = { name: 'p1', text: 'select $1::int + 1 as x', values: [1] };
  t.equal((await a.query(q)).rows[0].x, 2);
  t.equal((await b.query({ name: 'p1', text: 'select $1::int * 10 as x', values: [3] })).rows[0].x, 30);
  t.equal((await a.query({ ...q, values: [5] })).rows[0].x, 6);
  await a.query('begin');
  const p = b.query('select 42 as x');
  await a.query('select 1');
  await a.query('commit');
  t.equal((await p).rows[0].x, 42);
});
