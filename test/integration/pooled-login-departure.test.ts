/**
 * A pooled client that leaves between its login and the start of its
 * session (while its server connection is being given its startup
 * parameters) must not keep that server connection: the session sees the
 * departure however early it came, and the link goes back to the pool.
 */
import t from 'tap';
import pg from 'pg';
import { parseSecret } from '../../src/auth/userlist.js';
import type { ServerLink } from '../../src/server-link/server-link.js';
import { startPostgres } from '../helpers/postgres.js';
import { eventually, startProxy } from '../helpers/proxy.js';

const postgres = await startPostgres();
const proxy = await startProxy(
  postgres,
  { pool: { mode: 'session', default_pool_size: 2 }, auth: { type: 'scram-sha-256' } },
  { app: { userlist: new Map([[postgres.user, parseSecret(postgres.password)]]) } },
);
t.teardown(async () => {
  await proxy.stop();
  await postgres.stop();
});

const lender = proxy.app.pools!;

/** Lends links whose first query (the startup settings) waits for `gate`; resolves `held` when one does. */
function holdStartupSettings(gate: Promise<void>): { held: Promise<void>; restore(): void } {
  const acquire = lender.acquire;
  let onHeld!: () => void;
  const held = new Promise<void>((resolve) => (onHeld = resolve));
  lender.acquire = async (...args: Parameters<typeof acquire>) => {
    const link: ServerLink = await acquire.apply(lender, args);
    const run = link.run;
    link.run = async (sql: string) => {
      link.run = run;
      onHeld();
      await gate;
      return run.call(link, sql);
    };
    return link;
  };
  return { held, restore: () => (lender.acquire = acquire) };
}

function servers() {
  const pools = lender.manager.snapshot();
  return pools[0].servers;
}

for (const how of ['end', 'destroy'] as const) {
  t.test(`a client that leaves (${how}) while its server connection gets its settings gives it back`, async (t) => {
    let open!: () => void;
    const gate = new Promise<void>((resolve) => (open = resolve));
    const hold = holdStartupSettings(gate);
    t.teardown(hold.restore);

    const client = new pg.Client(proxy.connection({ application_name: 'leaves-early' }));
    client.on('error', () => {});
    const connecting = client.connect().catch((err: Error) => err);
    await hold.held;
    const stream = (client as unknown as { connection: { stream: import('node:net').Socket } }).connection.stream;
    if (how === 'end') stream.end();
    else stream.destroy();
    await new Promise((resolve) => setTimeout(resolve, 100));
    open();
    if (how === 'end') t.notOk((await connecting) instanceof Error, 'a half-closed client still reads its welcome');
    else t.type(await connecting, Error, 'the client never got a session');

    await eventually(() => servers().active === 0 && servers().idle >= 1, 5000, 'the server connection back in the pool');
    await eventually(() => proxy.app.server.sessions.size === 0, 5000, 'no session left behind');
  });
}
