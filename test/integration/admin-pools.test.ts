/**
 * `GET /pools` on the admin endpoint with pooled clients (`pool.mode:
 * session`) of two users against a real PostgreSQL: each link names the
 * backend pid and the client session holding it, as `/sessions` knows them;
 * the route requires the admin token like the others.
 */
import t from 'tap';
import pg from 'pg';
import type { PoolJson, PoolsAnswer } from '../../src/admin/pools-view.js';
import type { SessionJson } from '../../src/admin/sessions-view.js';
import { parseSecret } from '../../src/auth/userlist.js';
import { request } from '../helpers/admin.js';
import { startPostgres } from '../helpers/postgres.js';
import { eventually, startProxy } from '../helpers/proxy.js';

const TOKEN = 'f3b8a1c9d07e42a6b5c4d3e2f1a0b9c8';
const AUTHORIZED = { authorization: `Bearer ${TOKEN}` };
const VIEWER = { user: 'pool_viewer', password: 'viewer-secret' };
/** txproxy holds a password for this user that the server no longer takes. */
const STALE = { user: 'pool_stale', password: 'stale-secret' };

const postgres = await startPostgres();
await postgres.sql(`CREATE ROLE ${VIEWER.user} LOGIN PASSWORD '${VIEWER.password}'`);
await postgres.sql(`CREATE ROLE ${STALE.user} LOGIN PASSWORD 'changed-on-the-server'`);
const proxy = await startProxy(
  postgres,
  {
    http: '127.0.0.1:0',
    admin: { token: TOKEN },
    // One link for the viewer, so a second viewer client waits for it.
    pool: { mode: 'session', default_pool_size: 2, users: { [VIEWER.user]: { pool_size: 1 } } },
    auth: { type: 'scram-sha-256' },
  },
  {
    app: {
      userlist: new Map([
        [postgres.user, parseSecret(postgres.password)],
        [VIEWER.user, parseSecret(VIEWER.password)],
        [STALE.user, parseSecret(STALE.password)],
      ]),
    },
  },
);
const adminPort = proxy.app.adminPort!;
t.teardown(async () => {
  await proxy.stop();
  await postgres.stop();
});

async function authorized<T>(path: string): Promise<T> {
  const res = await request(adminPort, path, 'GET', AUTHORIZED);
  if (res.status !== 200) throw new Error(`${path} answered ${res.status}: ${res.body}`);
  return JSON.parse(res.body) as T;
}

async function poolsNow(): Promise<PoolsAnswer> {
  return authorized<PoolsAnswer>('/pools');
}

function poolOf(answer: PoolsAnswer, user: string): PoolJson | undefined {
  return answer.pools.find((p) => p.user === user && p.database === 'postgres');
}

async function sessionsNow(): Promise<SessionJson[]> {
  return (await authorized<{ sessions: SessionJson[] }>('/sessions')).sessions;
}

async function backendPid(client: pg.Client): Promise<number> {
  return (await client.query('SELECT pg_backend_pid() AS pid')).rows[0].pid as number;
}

t.test('/pools without the token is 401, like every other route', async (t) => {
  const res = await request(adminPort, '/pools');
  t.equal(res.status, 401);
  t.equal(res.headers['www-authenticate'], 'Bearer realm="txproxy"');
  t.notMatch(res.body, /backendPid|pool_viewer/, 'nothing of the pools is told');
  const wrong = await request(adminPort, '/pools', 'GET', { authorization: `Bearer ${TOKEN.slice(0, -1)}0` });
  t.equal(wrong.status, 401);
  t.equal(wrong.headers['www-authenticate'], 'Bearer realm="txproxy", error="invalid_token"');
});

t.test('two pools: each link names its backend pid and the client session holding it', async (t) => {
  const admin = await proxy.client();
  const viewer = await proxy.client(VIEWER);
  t.teardown(async () => {
    await admin.end().catch(() => undefined);
    await viewer.end().catch(() => undefined);
  });
  const adminPid = await backendPid(admin);
  const viewerPid = await backendPid(viewer);
  await admin.query('BEGIN');

  const answer = await poolsNow();
  t.equal(answer.mode, 'session');
  const adminPool = poolOf(answer, postgres.user)!;
  const viewerPool = poolOf(answer, VIEWER.user)!;
  t.ok(adminPool, `a pool of (postgres, ${postgres.user})`);
  t.ok(viewerPool, `a pool of (postgres, ${VIEWER.user})`);

  const sessions = await sessionsNow();
  const adminSession = sessions.find((s) => s.user === postgres.user && s.backendPid === adminPid);
  const viewerSession = sessions.find((s) => s.user === VIEWER.user && s.backendPid === viewerPid);
  t.ok(adminSession, '/sessions shows the backend pid the pooled session holds');
  t.ok(viewerSession, '/sessions shows the viewer session with its pooled backend pid');
  t.equal(adminSession!.state, 'idle_in_transaction');

  t.match(adminPool, { mode: 'session', clients: { active: 1, waiting: 0 }, servers: { active: 1 }, maxWaitSeconds: 0, loginError: null });
  t.match(adminPool.links, [{ backendPid: adminPid, state: 'active', sessionId: adminSession!.id }]);
  t.equal(adminPool.links.length, 1);
  t.ok(adminPool.links[0].ageSeconds >= adminPool.links[0].idleSeconds && adminPool.links[0].idleSeconds >= 0, 'age and idle time in seconds');
  t.same(viewerPool.links.map((l) => [l.backendPid, l.state, l.sessionId]), [[viewerPid, 'active', viewerSession!.id]]);

  // The viewer's pool has one link: the next viewer client waits, then gets it.
  const next = new pg.Client(proxy.connection(VIEWER));
  const connected = next.connect();
  t.teardown(() => next.end().catch(() => undefined));
  await eventually(async () => poolOf(await poolsNow(), VIEWER.user)?.clients.waiting === 1, 10_000, 'a viewer client waiting');
  await eventually(async () => (poolOf(await poolsNow(), VIEWER.user)?.maxWaitSeconds ?? 0) > 0, 10_000, 'its wait to show');
  await viewer.end();
  await connected;
  t.equal(await backendPid(next), viewerPid, 'the waiting client got the link back from the pool');
  const nextSession = (await sessionsNow()).find((s) => s.user === VIEWER.user && s.backendPid === viewerPid)!;
  t.not(nextSession.id, viewerSession!.id, 'a new session');
  const afterHandOver = poolOf(await poolsNow(), VIEWER.user)!;
  t.match(afterHandOver, { clients: { active: 1, waiting: 0 }, maxWaitSeconds: 0 });
  t.same(afterHandOver.links.map((l) => [l.backendPid, l.state, l.sessionId]), [[viewerPid, 'active', nextSession.id]], 'the link now names the new holder');

  // Back in the pool, a link is held by nobody.
  await admin.query('COMMIT');
  await admin.end();
  await eventually(async () => {
    const pool = poolOf(await poolsNow(), postgres.user)!;
    return pool.clients.active === 0 && pool.links.every((l) => l.sessionId === null && (l.state === 'idle' || l.state === 'used'));
  }, 10_000, 'the admin link idle, held by nobody');
  t.match(poolOf(await poolsNow(), postgres.user)!.links, [{ backendPid: adminPid, sessionId: null }]);
});

t.test('a failed server login shows as the pool\'s loginError while txproxy holds off the next attempt', async (t) => {
  const client = new pg.Client(proxy.connection(STALE));
  const refused = await client.connect().then(
    () => null,
    (err: unknown) => err as { code?: string },
  );
  t.equal(refused?.code, '28P01', 'the client gets the server\'s refusal');
  const pool = poolOf(await poolsNow(), STALE.user);
  t.match(pool, {
    clients: { active: 0, waiting: 0 },
    servers: { active: 0, idle: 0, login: 0 },
    loginError: { code: '28P01', message: /password authentication failed for user "pool_stale"/ },
    links: [],
  });
  t.ok(pool!.loginError!.retryInSeconds > 0 && pool!.loginError!.retryInSeconds <= 15, 'seconds until the next attempt (server_login_retry)');
});

t.test('without pooling /pools answers 200 with mode none and no pools', async (t) => {
  const unpooled = await startProxy(postgres, { http: '127.0.0.1:0', pool: { mode: 'none' } });
  t.teardown(() => unpooled.stop());
  const client = await unpooled.client();
  t.teardown(() => client.end());
  const pid = await backendPid(client);
  const res = await request(unpooled.app.adminPort!, '/pools');
  t.equal(res.status, 200);
  t.same(JSON.parse(res.body), { mode: 'none', pools: [] });
  const sessions = JSON.parse((await request(unpooled.app.adminPort!, '/sessions')).body).sessions as SessionJson[];
  t.same(sessions.map((s) => s.backendPid), [pid], '/sessions shows the backend pid of the session\'s own connection');
});
