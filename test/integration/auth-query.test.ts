/**
 * auth_query against a real server: secrets read as an auth user, the
 * default pg_shadow query and a SECURITY DEFINER function for an
 * unprivileged auth user, the cache's lifetime, bound and shared lookups.
 */
import t from 'tap';
import pg from 'pg';
import { AuthQueryCache, type RunAuthQuery } from '../../src/auth/auth-query.js';
import { startPostgres } from '../helpers/postgres.js';

const server = await startPostgres();
t.teardown(() => server.stop());
await server.sql("CREATE ROLE alice LOGIN PASSWORD 's3cret'; CREATE ROLE nopass LOGIN; CREATE ROLE authuser LOGIN PASSWORD 'auth'");
await server.sql(`CREATE FUNCTION public.user_lookup(name text, OUT usename name, OUT passwd text) RETURNS record
  LANGUAGE sql SECURITY DEFINER SET search_path = pg_catalog AS $$ SELECT usename, passwd FROM pg_shadow WHERE usename = name $$`);
await server.sql('REVOKE ALL ON FUNCTION public.user_lookup(text) FROM public; GRANT EXECUTE ON FUNCTION public.user_lookup(text) TO authuser');

async function runner(user: string, password: string): Promise<{ run: RunAuthQuery; calls: () => number; close: () => Promise<void> }> {
  const client = new pg.Client({ host: server.host, port: server.port, user, password, database: 'postgres' });
  await client.connect();
  let calls = 0;
  return {
    run: async (query, name) => {
      calls++;
      return client.query(query, [name]);
    },
    calls: () => calls,
    close: () => client.end(),
  };
}

t.test('the default query as a superuser: a SCRAM verifier, or null for no user and no password', async (t) => {
  const r = await runner('postgres', 'postgres');
  t.teardown(r.close);
  const cache = new AuthQueryCache(r.run, { ttlMs: 60_000, maxEntries: 100 });
  t.match(await cache.lookup('alice'), { kind: 'scram-sha-256', iterations: 4096 });
  t.equal(await cache.lookup('nobody'), null);
  t.equal(await cache.lookup('nopass'), null);
});

t.test('an unprivileged auth user through a SECURITY DEFINER function', async (t) => {
  const r = await runner('authuser', 'auth');
  t.teardown(r.close);
  const cache = new AuthQueryCache(r.run, { query: 'SELECT usename, passwd FROM public.user_lookup($1)', ttlMs: 60_000, maxEntries: 100 });
  t.match(await cache.lookup('alice'), { kind: 'scram-sha-256' });
});

t.test('answers are reused for their lifetime, then asked again; concurrent logins share one query', async (t) => {
  const r = await runner('postgres', 'postgres');
  t.teardown(r.close);
  let clock = 0;
  const cache = new AuthQueryCache(r.run, { ttlMs: 1000, maxEntries: 100, now: () => clock });
  await Promise.all([cache.lookup('alice'), cache.lookup('alice'), cache.lookup('alice')]);
  t.equal(r.calls(), 1, 'one query for three logins at once');
  clock = 999;
  await cache.lookup('alice');
  t.equal(r.calls(), 1, 'still fresh');
  await server.sql("ALTER ROLE alice PASSWORD 'changed'");
  const before = await cache.lookup('alice');
  clock = 1000;
  const after = await cache.lookup('alice');
  t.equal(r.calls(), 2, 'asked again once the answer expired');
  t.notSame(after, before, 'and the changed password is seen');
  cache.forget('alice');
  await cache.lookup('alice');
  t.equal(r.calls(), 3, 'forget asks again at once');
});

t.test('at most maxEntries answers are kept, the oldest dropped first', async (t) => {
  const r = await runner('postgres', 'postgres');
  t.teardown(r.close);
  const cache = new AuthQueryCache(r.run, { ttlMs: 60_000, maxEntries: 2 });
  for (const name of ['u1', 'u2', 'u3']) await cache.lookup(name);
  t.equal(cache.size, 2);
  await cache.lookup('u3');
  await cache.lookup('u2');
  t.equal(r.calls(), 3, 'the newest two are cached');
  await cache.lookup('u1');
  t.equal(r.calls(), 4, 'the oldest was dropped');
});
